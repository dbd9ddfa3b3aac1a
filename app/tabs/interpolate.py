"""The Interpolate tab: two classes, blend or switch, samples redrawn live while a slider moves,
the classifier's verdict, and the strip across every alpha."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from .. import text
from ..common import BLEND, CONDITIONAL, FG, INTERPOLATED, SWITCH
from .common import HIDDEN, IMAGE_KW, Wiring, about

# Redraws while a slider is dragged: one at a time, and gradio's "always_last" keeps only the
# newest position waiting, so a drag never queues stale runs and pictures arrive in order.
LIVE = dict(concurrency_id="interpolate-live", concurrency_limit=1, trigger_mode="always_last",
            show_progress="hidden")
SEED_LABEL = {BLEND: "Seed (the same for every alpha)", SWITCH: "Seed (the same for every sigma*)"}
ALPHA_LABEL = {FG: "alpha: 0 = centroid of A, 1 = centroid of B (redrawn as you drag)",
               CONDITIONAL: "alpha: 0 = class embedding of A, 1 = that of B (redrawn as you drag)"}


@dataclass
class InterpolateTab:
    a: gr.Dropdown
    b: gr.Dropdown
    grid: gr.Image
    probs: gr.Plot
    summary: gr.Markdown
    warn: gr.Markdown
    strip: gr.Image
    strip_fig: gr.Plot
    strip_cols: gr.Markdown
    method: gr.Radio                  # centroids or class embeddings (a set with a conditional network)
    alpha: gr.Slider
    truth_box: gr.Column              # the ground truth (a set with a held-out class)
    truth: gr.Plot
    truth_note: gr.Markdown

    @property
    def results(self) -> list:
        return [self.grid, self.probs, self.strip, self.strip_fig]

    @property
    def texts(self) -> list:
        return [self.summary, self.warn, self.strip_cols]

    def shown(self, d: dict, truth) -> dict:
        """A model set's switch: the choice of what to interpolate when it has a conditional network,
        its ground truth (truth: app.views.interpolate.Truth) when it has a held-out class."""
        return {self.method: gr.update(visible=d["conditional"], value=FG), self.alpha: gr.update(label=ALPHA_LABEL[FG]),
                self.truth_box: gr.update(visible=d["truth"]), self.truth: truth.figure, self.truth_note: truth.note}


def build(w: Wiring) -> InterpolateTab:
    d = w.d
    about(text.INTERPOLATE, text.INTERPOLATE_MORE)
    with gr.Row(equal_height=True):
        a = gr.Dropdown(w.class_choices, value=d["pair"][0], label="Class A", scale=1, min_width=140,
                        elem_id="interp-a")
        b = gr.Dropdown(w.class_choices, value=d["pair"][1], label="Class B", scale=1, min_width=140,
                        elem_id="interp-b")
        mode = gr.Radio([("blend (alpha)", BLEND), ("switch class at sigma*", SWITCH)], value=BLEND,
                        label="Mode", scale=2, min_width=200, elem_id="interp-mode")
        method = gr.Radio([(INTERPOLATED[FG], FG), (INTERPOLATED[CONDITIONAL], CONDITIONAL)], value=FG,
                          label="Interpolate", scale=3, min_width=300, visible=d["conditional"],
                          elem_id="interp-method")
        n = gr.Slider(1, 16, value=8, step=1, label="Samples", scale=1, min_width=110, elem_id="interp-n")
        seed = gr.Number(0, precision=0, minimum=0, label=SEED_LABEL[BLEND], scale=1, min_width=110,
                         elem_id="interp-seed")
    with gr.Row(equal_height=True):
        alpha = gr.Slider(-0.5, 1.5, value=0.5, step=0.05, scale=4, elem_id="interp-alpha", label=ALPHA_LABEL[FG])
        sigma = gr.Slider(0.02, 0.9, value=0.3, step=0.01, visible=False, scale=4, elem_id="interp-sigma",
                          label="sigma*: class A above this noise level, class B below it (redrawn as you drag)")
        run_button = gr.Button("Sample", variant="primary", scale=1, elem_id="interp-run")
    warn = gr.Markdown(elem_id="interp-warn", elem_classes=["view-error"])
    summary = gr.Markdown(label="summary", elem_id="interp-summary")     # above the pictures: in view
    with gr.Row():
        grid = gr.Image(label="samples", height=330, elem_id="interp-grid", **IMAGE_KW)
        probs = gr.Plot(label="classifier probabilities", show_label=False, elem_id="interp-probs")
        with gr.Column(visible=d["truth"], elem_id="interp-truth-box") as truth_box:
            truth = gr.Plot(label="ground truth", show_label=False, elem_id="interp-truth")
            truth_note = gr.Markdown(elem_id="interp-truth-note", elem_classes=["explain"])
    with gr.Accordion("Strip across alpha: every alpha at once, with the classifier's verdict against alpha",
                      open=True):
        with gr.Row(equal_height=True):
            strip_n = gr.Slider(1, 6, value=3, step=1, label="Samples per alpha", scale=2)
            strip_run = gr.Button("Draw the strip", scale=1, elem_id="interp-strip-run")
        strip = gr.Image(label="strip", show_label=False, height=330, elem_id="interp-strip", **IMAGE_KW)
        strip_cols = gr.Markdown(elem_id="interp-strip-cols", elem_classes=["explain"])
        strip_fig = gr.Plot(label="probabilities against alpha", show_label=False, elem_id="interp-strip-fig")
        strip_table = gr.JSON(label="probabilities by alpha", **HIDDEN)
    tab = InterpolateTab(a, b, grid, probs, summary, warn, strip, strip_fig, strip_cols, method, alpha, truth_box,
                         truth, truth_note)

    inputs = [a, b, mode, alpha, sigma, n, seed, method, w.pick]
    outputs = [grid, probs, summary]
    gr.Button("interpolate", **HIDDEN).click(w.api("interpolate"), inputs, outputs, api_name="interpolate", **w.heavy)
    draw = w.page("interpolate", 5)
    page_out = outputs + [truth, truth_note, warn]
    run_button.click(draw, inputs, page_out, api_visibility="private", **w.heavy)
    # every control redraws the samples, so the view always shows what the controls say
    for control in (alpha, sigma, n, seed):
        control.input(draw, inputs, page_out, api_visibility="private", **LIVE)

    def mode_shown(m):
        return gr.update(visible=m == BLEND), gr.update(visible=m == SWITCH), gr.update(label=SEED_LABEL[m])

    mode.input(mode_shown, mode, [alpha, sigma, seed], api_visibility="private", queue=False).then(
        draw, inputs, page_out, api_visibility="private", **LIVE)

    def pair_changed():
        """A new pair (or what is interpolated): the strip of the old one goes (it is drawn on demand,
        being slow)."""
        return None, None, ""

    gr.on([a.input, b.input], pair_changed, None, [strip, strip_fig, strip_cols],
          api_visibility="private", queue=False).then(draw, inputs, page_out, api_visibility="private", **LIVE)

    def method_changed(m):
        """What is interpolated changed: the slider says what alpha blends; the strip of the other goes."""
        return (gr.update(label=ALPHA_LABEL.get(m, ALPHA_LABEL[FG])), *pair_changed())

    method.input(method_changed, method, [alpha, strip, strip_fig, strip_cols], api_visibility="private",
                 queue=False).then(draw, inputs, page_out, api_visibility="private", **LIVE)

    strip_in = [a, b, strip_n, seed, method, w.pick]
    gr.Button("strip", **HIDDEN).click(w.api("interpolate_strip"), strip_in, [strip, strip_fig, strip_table],
                                       api_name="interpolate_strip", **w.heavy)
    strip_run.click(w.page("interpolate_strip", 4), strip_in, [strip, strip_fig, strip_table, strip_cols, warn],
                    api_visibility="private", **w.heavy)
    return tab
