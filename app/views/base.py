"""What every view of one model shares: its context, the names it accepts, the held-out crops
and the classifier's reading of samples, uploads read as the model sees them."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from engine.config import SamplerSettings
from engine.errors import EngineError
from engine.placement import crops_at_scale, place_images
from engine.sampler import sample

from .. import imaging
from ..common import CONDITIONAL, FG, MAX_UPLOADS, file_list, possessive
from ..context import Context


def progress_fraction(sigma: float, settings: SamplerSettings) -> float:
    """How far the coarse-to-fine run is, in log sigma from sigma_0 down to sigma_L."""
    import math
    if sigma <= 0:
        return 1.0
    f = math.log(settings.sigma_0 / sigma) / math.log(settings.sigma_0 / settings.sigma_L)
    return min(1.0, max(0.0, f))


@dataclass
class Uploads:
    """Uploaded files as the model sees them: every crop, the file each came from, what was done."""
    images: np.ndarray          # (M, C, size, size)
    names: list[str]            # the users' file names, one per file
    how: list[str]              # one line per file: its size and how it became crops

    def words(self) -> str:
        return "; ".join(f"{n}: {h}" for n, h in zip(self.names, self.how))


class ViewBase:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    def class_name(self, name, what: str = "class") -> str:
        if name is None or name == "":
            raise EngineError(f"choose a {what}")
        if str(name) not in self.ctx.classes:
            raise EngineError(f"unknown {what} '{name}'; the model knows {', '.join(self.ctx.classes)}")
        return str(name)

    def atlas_or_none(self):
        return self.ctx.atlas.get()

    def real_crops(self, names: list[str], k: int) -> np.ndarray | None:
        """The first k held-out test crops of each named class, from the atlas (None while it is
        being prepared)."""
        atlas = self.atlas_or_none()
        if atlas is None:
            return None
        return np.concatenate([atlas.images[atlas.labels == atlas.classes.index(name)][:k] for name in names])

    def probabilities(self, samples: np.ndarray):
        clf = self.ctx.classifier.get()
        return None if clf is None else clf.probabilities(samples)

    def readings(self, samples: np.ndarray) -> Counter | None:
        """How many samples the independent classifier assigns to each class (None while it is
        being prepared)."""
        clf = self.ctx.classifier.get()
        return None if clf is None else clf.readings(samples)

    def reading_text(self, counts: Counter | None, n: int, target: str | None) -> str:
        if counts is None:
            return self.ctx.classifier.status()
        head = "the independent classifier reads "
        if target is not None:
            others = Counter(counts)
            hits = others.pop(target, 0)
            rest = ", ".join(f"{c} {k}" for c, k in others.most_common())
            return head + f"<b>{hits} of {n}</b> as {target}" + (f" (the others as {rest})" if rest else "")
        return head + "them as " + ", ".join(f"{c} {k}" for c, k in counts.most_common())

    # -- uploads
    def read_uploads(self, files) -> Uploads:
        """Every uploaded file read and cut into crops of the model's size at its own scale
        (engine.placement.crops_at_scale); a refusal names every bad file."""
        paths = file_list(files)
        if not paths:
            raise EngineError("upload one or more conditioning images first (or condition on a class)")
        if len(paths) > MAX_UPLOADS:
            raise EngineError(f"{len(paths)} images uploaded; condition on at most {MAX_UPLOADS}")
        c, _, size = self.ctx.fg.shape
        crops, refused = [], []
        for p in paths:
            try:
                crops.append(crops_at_scale(imaging.read_image(p, c), size))
            except EngineError as e:
                refused.append(str(e))
        if refused:
            many = len(refused) > 1
            advice = "; use a PNG, JPEG, BMP, GIF, TIFF or WebP file"
            said = [r.replace(advice, "") for r in refused]
            raise EngineError(("; ".join(said)) + (f" ({len(refused)} of {len(paths)} files refused)" if many else "")
                              + ". Remove " + ("them" if many else "it") + " and upload PNG, JPEG, BMP, GIF, TIFF or "
                              "WebP images instead")
        return Uploads(np.concatenate([k.images for k in crops]), [imaging.upload_name(p) for p in paths],
                       [k.describe(size) for k in crops])

    def placement(self, arrays: np.ndarray):
        """Where images' mean features lie against the class centroids (layer 'all', the atlas's
        smallest sigma): engine.placement; None while the atlas is being prepared."""
        atlas = self.atlas_or_none()
        if atlas is None or FG not in atlas.models:
            return None
        return place_images(atlas, self.ctx.fg, FG, arrays).nearest

    def placement_text(self, near, what: str = "your images", short: bool = False) -> str:
        if near is None:
            return ""
        name = self.ctx.classes[near.index]
        if short:
            return (f"**Far from every class** (nearest: {name}, at {near.ratio:.1f} times its spread)" if near.far
                    else f"nearest class: **{name}** ({near.ratio:.1f} times its spread: within it)")
        if near.far:
            return (f"**Far from every class:** {what} lie nearest to {name}, at {near.ratio:.1f} times "
                    f"{possessive(name)} own spread (95% of its test images lie within 1); expect samples of "
                    "whichever classes the features fall nearest, not copies of your images.")
        return f"{what.capitalize()} lie nearest to **{name}** ({near.ratio:.1f} times its own spread: within the class)."

    # -- the class-conditional partner
    def conditional(self, what: str):
        """The model set's class-conditional network, or a refusal that says `what` needs it."""
        if self.ctx.conditional is None:
            raise EngineError(f"{what} needs a class-conditional model, and the model set {self.ctx.label} has "
                              "none; pick a model set that has one, or start the app with --conditional DIR "
                              "(a model trained with `python -m engine train --kind conditional` on the same data)")
        return self.ctx.conditional

    def interpolated(self, method) -> tuple[object, str]:
        """The checkpoint whose targets an interpolation mixes, by method ("feature_guided": centroids,
        "conditional": class embeddings), and how the summary names them."""
        method = FG if method in (None, "") else str(method)
        if method == FG:
            return self.ctx.fg, "centroids"
        if method == CONDITIONAL:
            return self.conditional("interpolating class embeddings"), "class embeddings (conditional network)"
        raise EngineError(f"method must be '{FG}' (centroids) or '{CONDITIONAL}' (class embeddings), got {method!r}")

    # -- sampling to the end
    def run_batch(self, target, n: int, seed: int, settings: SamplerSettings, progress=None,
                  what: str = "sampling", ckpt=None) -> tuple[np.ndarray, int]:
        """Run the sampler to the end on ckpt (default: the feature-guided model), reporting progress
        in log sigma; (samples, steps)."""
        step = None
        for step in sample(ckpt or self.ctx.fg, target, n=n, seed=seed, settings=settings):
            if progress is not None and not step.final:
                active = step.active
                sig = float(step.sigma[active].max()) if bool(active.any()) else settings.sigma_L
                progress(progress_fraction(sig, settings), desc=f"{what}: step {step.t}, sigma {sig:.3f}")
        return imaging.as_array(step.denoised), step.t
