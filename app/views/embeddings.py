"""The Embeddings view: held-out test images placed by their features, an upload placed among
them, and the images of a class or of a clicked dot."""
from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr
import numpy as np

from engine.errors import EngineError
from engine.placement import place_images

from .. import figures, imaging
from ..common import FG, PAGE, Result, file_list, number, possessive, whole
from ..errors import user_errors
from .base import ViewBase


@dataclass
class Embedding(Result):
    """/embedding: the map and a note on what it shows; the page also keeps which projection is
    drawn ("none" while the atlas is being prepared), to redraw once a better one is ready."""
    map: object
    note: str
    shown: str = field(default="none", metadata=PAGE)


@dataclass
class Images(Result):
    """Test images for the side gallery, with a caption."""
    gallery: object
    caption: str


@dataclass
class TestGallery(Result):
    """A few test images of every class to pick from, and their indices in the atlas."""
    gallery: list
    indices: list


class EmbeddingsView(ViewBase):
    @user_errors
    def embedding(self, model: str = FG, layer: str = "mid", sigma: float = 0.05, method: str = "umap",
                  image=None) -> Embedding:
        """The map of held-out test images in one (model, layer, sigma); an uploaded image as a star.
        While the atlas is being prepared the figure says so."""
        atlas = self.atlas_or_none()
        if atlas is None:
            fig = figures.message_figure(self.ctx.atlas.status())
            fig.update_layout(title=dict(text=f"{self.ctx.label}: the map is being prepared"))
            return Embedding(fig, self.ctx.atlas.status(), "none")
        if model not in atlas.models:
            raise EngineError(f"no '{model}' model in this atlas; it has {', '.join(atlas.models)}"
                              + ("" if self.ctx.mixture is not None else " (start the app with --mixture DIR)"))
        sigma = number(sigma, "sigma")
        emb = atlas.embedding(model, layer, sigma, method)
        s = atlas.sigmas[atlas.sigma_index(sigma)]
        name = "feature-guided" if model == FG else "mixture"
        title = f"{self.ctx.label}: {name} model, layer {layer}, sigma = {s:g} ({emb.method.upper()})"
        fig = figures.map_figure(emb.coords, atlas.labels, atlas.classes, emb.centroids, title, emb.method)
        note = [f"{len(atlas.labels)} held-out test images, {len(atlas.classes)} classes; "
                f"map: **{emb.method.upper()}**."]
        if method == "umap" and emb.method != "umap":
            note.append("The UMAP of this map is still being fitted in the background; PCA is shown meanwhile.")
        if file_list(image):
            path = file_list(image)[0]
            up = self.read_uploads([path])
            placed = place_images(atlas, self.ctx.checkpoints[model], model, up.images, layer, s)
            xy = atlas.place(model, layer, s, placed.phi.mean(0), method=emb.method)
            near = placed.nearest
            nearest = atlas.classes[near.index]
            label = up.names[0] + (" (far from every class)" if near.far else "")
            figures.add_points(fig, xy, "your image", [label], far=near.far)
            note.append(f"Your image ({up.words()}) is the star, placed by the mean of its crops' features "
                        f"phi(x + sigma z) at sigma = {s:g}: nearest centroid {nearest}, at {near.ratio:.1f} times "
                        f"{possessive(nearest)} own spread (95% of its test images lie within 1)"
                        + (". **It is unlike every class**: the map puts it beside its nearest neighbours, "
                           "but it belongs to none of them." if near.far else "."))
        return Embedding(fig, "\n\n".join(note), emb.method)

    @user_errors
    def class_images(self, class_name: str) -> Images:
        """Up to 24 held-out test images of a class, for the gallery."""
        atlas = self.atlas_or_none()
        if not class_name:
            return Images(gr.skip(), gr.skip())           # cleared when a dot was clicked: keep its image
        if atlas is None:
            return Images([], self.ctx.atlas.status())
        c = atlas.classes.index(self.class_name(class_name))
        idx = np.nonzero(atlas.labels == c)[0][:24]
        return Images([(imaging.single(atlas.images[i], px=64), f"#{i}") for i in idx],
                      f"Test images of **{class_name}** ({int((atlas.labels == c).sum())} in the atlas).")

    @user_errors
    def point_images(self, index) -> Images:
        """One test image (clicked in the map, or typed)."""
        atlas = self.atlas_or_none()
        if index is None or str(index).strip() == "":
            return Images(gr.skip(), gr.skip())           # cleared when a class was chosen: keep its gallery
        if atlas is None:
            return Images([], self.ctx.atlas.status())
        i = whole(index, "test image number")
        if not 0 <= i < len(atlas.labels):
            raise EngineError(f"test image #{i} does not exist; the atlas has images #0 to #{len(atlas.labels) - 1}")
        name = atlas.classes[atlas.labels[i]]
        return Images([(imaging.single(atlas.images[i], px=192), f"#{i} ({name})")],
                      f"Test image **#{i}**, class **{name}**.")

    @user_errors
    def test_gallery(self, per_class: int = 2) -> TestGallery:
        """A few test images of every class to pick from (the Denoise view's)."""
        atlas = self.atlas_or_none()
        if atlas is None:
            return TestGallery([], [])
        idx = [int(i) for c in range(len(atlas.classes)) for i in np.nonzero(atlas.labels == c)[0][:per_class]]
        return TestGallery([(imaging.single(atlas.images[i], px=64), atlas.classes[atlas.labels[i]]) for i in idx], idx)
