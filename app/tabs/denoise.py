"""The Denoise tab: pick a test image (or upload one), noise it at sigma, and see each class's
output against the mixture's. Every control redraws at once, so the view always shows what the
controls say."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from .. import text
from .common import HIDDEN, Wiring, about

LIVE = dict(trigger_mode="always_last", concurrency_id="denoise-live", concurrency_limit=1)


@dataclass
class DenoiseTab:
    pick: gr.Gallery
    indices: gr.State
    index: gr.Number
    image: gr.File
    out: gr.Gallery
    fig: gr.Plot
    numbers: gr.JSON
    error: gr.Markdown

    @property
    def results(self) -> list:
        return [self.out, self.fig, self.numbers]


def build(w: Wiring) -> DenoiseTab:
    about(text.DENOISE, text.DENOISE_MORE)
    with gr.Row():
        with gr.Column(scale=3):
            pick = gr.Gallery(label="Test images: click one to denoise it", columns=8, height=260, format="png",
                              allow_preview=False, object_fit="contain", elem_classes=["pixelated", "captioned"],
                              elem_id="den-pick")
        with gr.Column(scale=2):
            with gr.Row(equal_height=True):
                index = gr.Number(0, precision=0, minimum=0, label="Test image #", min_width=90, elem_id="den-index")
                image = gr.File(label="or upload an image", height=110, elem_id="den-upload")
            with gr.Row(equal_height=True):
                sigma = gr.Slider(0.02, 1.5, value=0.5, step=0.01, label="Noise sigma", scale=2, min_width=200,
                                  elem_id="den-sigma")
                seed = gr.Number(0, precision=0, minimum=0, label="Noise seed", scale=1, min_width=90)
                run_button = gr.Button("Denoise", variant="primary", elem_id="den-run", scale=1, min_width=90)
    error = gr.Markdown(elem_classes=["view-error"], elem_id="den-error")
    with gr.Row():
        out = gr.Gallery(label="clean, noisy, the mixture's output, then conditioned on each class, with PSNR",
                         columns=6, height="auto", format="png", allow_preview=False, object_fit="contain",
                         elem_classes=["pixelated", "captioned"], elem_id="den-out", scale=3)
        fig = gr.Plot(label="gain", show_label=False, elem_id="den-fig", scale=2)
    with gr.Accordion("The numbers (JSON)", open=False):
        numbers = gr.JSON(label="numbers")
    indices = gr.State([])
    tab = DenoiseTab(pick, indices, index, image, out, fig, numbers, error)

    inputs = [index, image, sigma, seed, w.pick]
    outputs = [out, fig, numbers]
    gr.Button("denoise", **HIDDEN).click(w.api("denoise"), inputs, outputs, api_name="denoise", **w.heavy)
    draw = w.page("denoise", 3)
    run_button.click(draw, inputs, outputs + [error], api_visibility="private", **w.heavy)

    def pick_test(known, evt: gr.SelectData):
        return (known[evt.index], None) if known and evt.index is not None else (gr.skip(), gr.skip())

    pick.select(pick_test, [indices], [index, image], api_visibility="private", queue=False).then(
        draw, inputs, outputs + [error], api_visibility="private", **LIVE)
    # an upload replaces the test image: the gallery's highlight goes, and the upload (or its refusal) shows at once
    # gradio keeps a gallery's selection whatever the server sends: the page drops the highlight itself
    unpick = "() => document.querySelectorAll('#den-pick .selected').forEach(e => e.classList.remove('selected'))"
    image.upload(None, None, None, js=unpick, api_visibility="private", queue=False).then(
        draw, inputs, outputs + [error], api_visibility="private", **LIVE)
    image.clear(draw, inputs, outputs + [error], api_visibility="private", **LIVE)
    index.input(lambda: None, None, image, api_visibility="private", queue=False).then(
        draw, inputs, outputs + [error], api_visibility="private", **LIVE)
    for control in (sigma, seed):
        control.input(draw, inputs, outputs + [error], api_visibility="private", show_progress="hidden", **LIVE)
    return tab
