"""The Model tab: a short table of the model, its training loss over the whole lineage, and folded
below its card, how to read each view and the full configuration."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from .. import figures, text
from ..context import Context


@dataclass
class ModelTab:
    summary: gr.Markdown
    loss: gr.Plot
    sheet: gr.Image
    card: gr.Markdown
    config: gr.JSON

    @property
    def outputs(self) -> list:
        return [self.summary, self.loss, self.sheet, self.card, self.config]


def build() -> ModelTab:
    gr.Markdown(text.MODEL, elem_classes=["explain"])
    with gr.Row():
        with gr.Column(scale=3):
            summary = gr.Markdown(elem_classes=["summary-table"], elem_id="model-summary")
        with gr.Column(scale=2):
            loss = gr.Plot(show_label=False, elem_id="model-loss")
    with gr.Accordion("Samples beside real crops: per class, 8 real held-out crops (left) and 8 samples "
                      "at the default sampler (right)", open=True):
        sheet = gr.Image(show_label=False, interactive=False, elem_id="model-sheet", buttons=["download", "fullscreen"])
    with gr.Accordion("Model card and measurements", open=False):
        card = gr.Markdown(elem_classes=["tidy"], elem_id="model-card")
    with gr.Accordion("What the app shows, and how to read each view", open=False):
        gr.Markdown(text.INTRO + "\n" + text.HOW_TO_READ)
    with gr.Accordion("Full configuration (JSON)", open=False):
        config = gr.JSON(label="checkpoints")
    return ModelTab(summary, loss, sheet, card, config)


def contents(c: Context) -> tuple:
    """What the Model tab shows of a model, in ModelTab.outputs' order."""
    sheet = text.sample_sheet(c.fg)
    return (text.model_summary(c), figures.loss_figure(text.lineage_segments(c.fg), model=c.label),
            gr.Image(value=sheet, visible=sheet is not None),
            text.model_card(c.fg, c.mixture) + "\n\n" + (text.shipped_card(c.fg) or "No model card beside this checkpoint."),
            text.config_json(c))
