"""The Embeddings tab: the map, its controls, an upload placed in it, the images of a class or dot."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from .. import figures, text
from ..common import FG, MIXTURE
from ..context import Context
from ..errors import user_errors
from .common import HIDDEN, Wiring, about, error_line


def model_choices(ctx: Context) -> list[tuple[str, str]]:
    return [("feature-guided", FG)] + ([("mixture", MIXTURE)] if ctx.mixture is not None else [])


@dataclass
class EmbeddingsTab:
    model: gr.Radio
    layer: gr.Dropdown
    sigma: gr.Dropdown
    method: gr.Radio
    image: gr.File
    map: gr.Plot
    note: gr.Markdown
    cls: gr.Dropdown
    point: gr.Textbox
    gallery: gr.Gallery
    caption: gr.Markdown
    shown: gr.State
    timer: gr.Timer

    @property
    def inputs(self) -> list:
        return [self.model, self.layer, self.sigma, self.method, self.image]


def draw(w: Wiring, model=FG, layer="mid", sigma=0.05, method="umap", image=None, key=None):
    """The page's map (map, note, shown); a refused upload is named in the note and the map drawn
    without it."""
    views = w.views(key)
    try:
        r = user_errors(views.embedding)(model, layer, sigma, method, image)
    except gr.Error as e:
        if image is None:
            return figures.message_figure(e.message), error_line(e.message), "none"
        r = user_errors(views.embedding)(model, layer, sigma, method, None)
        r.note = error_line(f"{e.message}; the map is drawn without it.") + "\n\n" + r.note
    return r.map, r.note, r.shown


def build(w: Wiring) -> EmbeddingsTab:
    d, ctx = w.d, w.registry.context()
    about(text.EMBEDDINGS, text.EMBEDDINGS_MORE)
    with gr.Row(equal_height=True):
        model = gr.Radio(model_choices(ctx), value=FG, label="Features of", scale=2)
        layer = gr.Dropdown(d["layers"], value=d["layer"], label="Layer", scale=1, min_width=110)
        # custom values: an API caller may send "0.05" or 0.07; the nearest map sigma is used
        sigma = gr.Dropdown(d["sigmas"], value=d["sigmas"][0], allow_custom_value=True, label="Noise sigma",
                            scale=1, min_width=110)
        method = gr.Radio([("UMAP", "umap"), ("PCA", "pca")], value="umap", label="Map", scale=1, min_width=190)
        image = gr.File(label="Place an image of yours", height=90, scale=2, elem_id="emb-upload")
    with gr.Row():
        with gr.Column(scale=3):
            emap = gr.Plot(label="embedding", show_label=False, elem_id="emb-map")
            note = gr.Markdown(label="note", elem_id="emb-note")
        with gr.Column(scale=1, min_width=300):
            cls = gr.Dropdown(w.class_choices, value=None, label="Show images of class", elem_id="emb-class")
            point = gr.Textbox(None, label="or test image # (click a dot)", placeholder="click a dot",
                               max_lines=1, elem_id="emb-point")
            gallery = gr.Gallery(label="Images", columns=3, height=380, format="png", object_fit="contain",
                                 elem_classes=["pixelated", "captioned"], elem_id="emb-gallery")
            caption = gr.Markdown(elem_id="emb-caption")
    tab = EmbeddingsTab(model, layer, sigma, method, image, emap, note, cls, point, gallery, caption,
                        gr.State("none"), gr.Timer(2.0))

    gr.Button("embedding", **HIDDEN).click(w.api("embedding"), tab.inputs + [w.pick], [emap, note],
                                           api_name="embedding", **w.light)
    gr.on([model.change, layer.change, sigma.change, method.change, image.change],
          lambda *a: draw(w, *a), tab.inputs + [w.pick], [emap, note, tab.shown], api_visibility="private",
          **w.light)

    def show_class(name, key):
        r = w.views(key).class_images(name)
        return r.gallery, r.caption, None

    def show_point(index, key):
        r = w.views(key).point_images(index)
        return r.gallery, r.caption, (gr.skip() if index is None or str(index).strip() == "" else None)

    cls.input(user_errors(show_class), [cls, w.pick], [gallery, caption, point], api_visibility="private", **w.light)
    point.change(user_errors(show_point), [point, w.pick], [gallery, caption, cls], api_visibility="private",
                 **w.light)
    return tab
