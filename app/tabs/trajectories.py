"""The Trajectories tab: targets and seed, the distance between the paths, the paths in the map,
the step scrubber with the images of every target, and where each pair parts."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from .. import text
from .common import HIDDEN, Wiring, about


@dataclass
class TrajectoriesTab:
    targets: gr.Dropdown
    layer: gr.Dropdown
    sigma: gr.Dropdown
    map: gr.Plot
    dist: gr.Plot
    pictures: gr.Gallery
    step: gr.Slider
    step_note: gr.Markdown
    table: gr.Dataframe
    error: gr.Markdown
    data: gr.State

    @property
    def results(self) -> list:
        return [self.map, self.dist, self.pictures, self.data]

    @property
    def texts(self) -> list:
        return [self.step_note, self.error]


def pair_rows(data, summary) -> list:
    return [[k.replace(" vs ", " and "), "-" if v is None else f"{v:.3g}", f"{summary['final_distance'][k]:.3f}"]
            for k, v in summary["bifurcation_sigma"].items()]


def build(w: Wiring) -> TrajectoriesTab:
    d = w.d
    about(text.TRAJECTORIES, text.TRAJECTORIES_MORE)
    with gr.Row(equal_height=True):
        targets = gr.Dropdown(w.class_choices, value=d["targets"], multiselect=True, label="Targets (two to six classes)",
                              scale=3, elem_id="traj-targets")
        seed = gr.Number(0, precision=0, minimum=0, label="Seed", scale=1, min_width=110)
        layer = gr.Dropdown(d["layers"], value=d["layer"], label="Map layer", scale=1, min_width=110)
        sigma = gr.Dropdown(d["sigmas"], value=d["sigmas"][0], allow_custom_value=True, label="Map sigma", scale=1,
                            min_width=110)
        run_button = gr.Button("Run", variant="primary", scale=1, elem_id="traj-run")
    error = gr.Markdown(elem_classes=["view-error"], elem_id="traj-error")
    with gr.Row():
        with gr.Column(scale=4, min_width=360):
            dist = gr.Plot(label="distance", show_label=False, elem_id="traj-dist")
            step = gr.Slider(0, 100, value=0, step=1, label="Step (drag to scrub through the run)", elem_id="traj-step")
            step_note = gr.Markdown(label="step", elem_id="traj-step-note")
        with gr.Column(scale=4, min_width=360):
            tmap = gr.Plot(label="paths", show_label=False, elem_id="traj-map")
        with gr.Column(scale=3, min_width=300):
            # y_t, f(y_t) of two targets a row: every picture in view at this width
            pictures = gr.Gallery(label="y_t and f(y_t) of every target at this step", columns=4, height=270,
                                  format="png", allow_preview=False, object_fit="contain",
                                  elem_classes=["pixelated", "captioned"], elem_id="traj-pic")
            table = gr.Dataframe(headers=["pair", "parts at σ", "final distance"], label="where each pair parts",
                                 interactive=False, elem_id="traj-table", max_height=200)
    summary = gr.JSON(label="summary", **HIDDEN)
    data = gr.State(None)
    tab = TrajectoriesTab(targets, layer, sigma, tmap, dist, pictures, step, step_note, table, error, data)

    inputs = [targets, seed, layer, sigma, w.pick]
    outputs = [tmap, dist, pictures, summary]
    gr.Button("trajectories", **HIDDEN).click(w.api("trajectories"), inputs, outputs, api_name="trajectories",
                                              **w.heavy)

    def after_run(run, summary):
        if not run:
            return gr.skip(), "", []
        last = run["y"].shape[1] - 1
        return gr.update(maximum=last, value=last), "Step **{}** (the end); drag to scrub.".format(last), \
            pair_rows(run, summary)

    run_button.click(w.page("trajectories", 5), inputs, outputs + [data, error], api_visibility="private",
                     **w.heavy).then(after_run, [data, summary], [step, step_note, table], api_visibility="private",
                                     queue=False)

    def scrub(run, at, key):
        return w.views(key).scrub(run, at).outputs()

    # one scrub at a time, newest value last: the pictures never arrive out of order
    step.input(scrub, [data, step, w.pick], [pictures, tmap, dist, step_note], api_visibility="private",
               trigger_mode="always_last", show_progress="hidden", concurrency_id="scrub", concurrency_limit=1)
    return tab
