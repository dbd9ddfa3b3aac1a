"""The Distances tab: the heatmaps and the scatter, drawn when the tab opens, the verdict on how
well they agree, the numbers by sigma, and samples of a pair (a click on the scatter picks it)."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from .. import text
from ..errors import user_errors
from ..views.distances import NUMBERS_HEADERS
from .common import HIDDEN, IMAGE_KW, Wiring, about, error_line


@dataclass
class DistancesTab:
    tab: gr.Tab
    layer: gr.Dropdown
    sigma: gr.Dropdown
    a: gr.Dropdown
    b: gr.Dropdown
    centroid: gr.Plot
    density: gr.Plot
    scatter: gr.Plot
    verdict: gr.Markdown
    numbers: gr.Dataframe
    pair_a: gr.Image
    pair_b: gr.Image
    pair_error: gr.Markdown
    error: gr.Markdown

    @property
    def results(self) -> list:
        return [self.centroid, self.density, self.scatter, self.pair_a, self.pair_b]

    @property
    def texts(self) -> list:
        return [self.verdict, self.pair_error, self.error]


def build(w: Wiring, tab: gr.Tab) -> DistancesTab:
    d = w.d
    about(text.DISTANCES, text.DISTANCES_MORE)
    with gr.Row(equal_height=True):
        layer = gr.Dropdown(d["layers"], value=d["layer"], label="Layer (centroid distance)", scale=1)
        sigma = gr.Dropdown(d["sigmas"], value=d["sigmas"][0], allow_custom_value=True,
                            label="sigma (centroid distance)", scale=1)
        redraw = gr.Button("Redraw", variant="primary", scale=1, elem_id="dist-run")
    verdict = gr.Markdown(elem_id="dist-text")
    error = gr.Markdown(elem_classes=["view-error"], elem_id="dist-error")
    with gr.Row():
        centroid = gr.Plot(label="centroid distances", show_label=False, elem_id="dist-centroid")
        density = gr.Plot(label="density distances", show_label=False, elem_id="dist-density")
        scatter = gr.Plot(label="scatter", show_label=False, elem_id="dist-scatter")
    with gr.Row(elem_id="dist-pairs"):
        with gr.Column(scale=1, min_width=240):
            gr.Markdown("**Samples of a pair** (same seed for both; or click a point of the scatter)")
            with gr.Row():
                a = gr.Dropdown(w.class_choices, value=d["pair"][0], label="Class A", min_width=100,
                                elem_id="dist-a-class")
                b = gr.Dropdown(w.class_choices, value=d["pair"][1], label="Class B", min_width=100,
                                elem_id="dist-b-class")
            with gr.Row():
                n = gr.Slider(1, 16, value=8, step=1, label="Samples", min_width=100)
                seed = gr.Number(0, precision=0, minimum=0, label="Seed", min_width=80)
            pair_run = gr.Button("Sample the pair", elem_id="dist-pair-run")
            pair_error = gr.Markdown(elem_classes=["view-error"], elem_id="dist-pair-error")
            pick = gr.Textbox(elem_id="dist-pick", elem_classes=["pick-box"], show_label=False)
        pair_a = gr.Image(label="samples of class A", height=260, scale=2, elem_id="dist-a", **IMAGE_KW)
        pair_b = gr.Image(label="samples of class B", height=260, scale=2, elem_id="dist-b", **IMAGE_KW)
    with gr.Accordion("The numbers: where the density distance comes from, sigma by sigma", open=False):
        numbers = gr.Dataframe(headers=NUMBERS_HEADERS, interactive=False, elem_id="dist-numbers")
        summary = gr.JSON(label="summary", **HIDDEN)
    view = DistancesTab(tab, layer, sigma, a, b, centroid, density, scatter, verdict, numbers, pair_a, pair_b,
                        pair_error, error)

    inputs = [layer, sigma, w.pick]
    outputs = [centroid, density, scatter, summary]
    gr.Button("distances", **HIDDEN).click(w.api("distances"), inputs, outputs, api_name="distances", **w.heavy)
    draw = w.page("distances", 6)
    for ev in (redraw.click, tab.select):
        ev(draw, inputs, outputs + [verdict, numbers, error], api_visibility="private", **w.heavy)

    p_inputs = [a, b, n, seed, w.pick]
    gr.Button("pairs", **HIDDEN).click(w.api("pair_samples"), p_inputs, [pair_a, pair_b], api_name="pair_samples",
                                       **w.heavy)

    def pair_page(class_a, class_b, count, s, key, progress=gr.Progress()):
        """The pair's samples, headed by the classes' names; a mistake clears them and says why under
        the controls (the verdict line above stays)."""
        try:
            r = user_errors(w.views(key).pair_samples)(class_a, class_b, count, s, progress)
        except gr.Error as e:
            return (gr.update(value=None, label="samples of class A"), gr.update(value=None, label="samples of class B"),
                    error_line(e.message))
        return (gr.update(value=r.a, label=f"samples of {class_a}"), gr.update(value=r.b, label=f"samples of {class_b}"),
                "")

    pair_run.click(pair_page, p_inputs, [pair_a, pair_b, pair_error], api_visibility="private", **w.heavy)

    def picked(value):
        parts = (value or "").split("|")
        return (parts[0], parts[1]) if len(parts) >= 2 else (gr.skip(), gr.skip())

    pick.change(picked, pick, [a, b], api_visibility="private", queue=False).then(
        pair_page, p_inputs, [pair_a, pair_b, pair_error], api_visibility="private", **w.heavy)
    return view
