"""The callbacks behind every view and named API endpoint.

Each public method of `Views` is one endpoint (layout.py gives it its api_name); its
parameter names are the keyword names a gradio_client caller uses (docs/app.md). Methods
only call the engine (checkpoints, sampler, atlas, analysis, figures) and turn results
into pictures and files; user mistakes surface as EngineError -> a message in the page.
"""
from __future__ import annotations

import math
import time
from collections import Counter
from pathlib import Path

import gradio as gr
import numpy as np
import torch

from engine import analysis, measures
from engine.atlas import ALL, noisy_phi
from engine.config import SamplerSettings
from engine.config import check_seed as engine_check_seed
from engine.errors import EngineError
from engine.sampler import ClassTarget, ImageTarget, Interpolation, Switch, Unconditional, sample

from . import figures, imaging, runs
from .context import FG, Context
from .errors import user_errors

CLASS, IMAGES, MIXTURE_MODE = "class", "uploaded images", "mixture model (unconditional)"
BLEND, SWITCH = "blend", "switch"
PATH_SAMPLES, PATH_STEPS = 4, 6      # the path picture at the end of a run: samples x noise levels
FRAME_SECONDS = 0.25          # stream a picture at most this often (the sampler runs faster)
MAX_SAMPLES = 64
MAX_UPLOADS = 16


def correlation_words(r: float, rho: float) -> str:
    """How strong a correlation is, in words (|r| < 0.3 weak, < 0.6 moderate, else strong)."""
    if not math.isfinite(r):
        return "no correlation can be computed (fewer than three pairs, or constant distances)"
    strength = "weak" if abs(r) < 0.3 else "moderate" if abs(r) < 0.6 else "strong"
    sign = "positive" if r > 0 else "negative"
    return (f"a {strength} {sign} correlation (Pearson r = {r:.2f}, Spearman rho = {rho:.2f}): "
            + ("the two distances rank the pairs alike" if strength == "strong" else
               "the centroid distance predicts only part of the density distance here; other layers or "
               "sigmas may follow it better"))


class FrameRecorder:
    """Keeps at most ~`most` evenly spaced steps of a run for the trajectory GIF, whatever its length."""

    def __init__(self, most: int = 48):
        self.most, self.stride, self.kept = most, 1, []

    def add(self, t: int, y: np.ndarray, denoised: np.ndarray, sigma: float, last: bool = False) -> None:
        if t % self.stride == 0 or last:
            self.kept.append((t, y, denoised, sigma))
        if len(self.kept) > self.most:
            self.kept = self.kept[::2]
            self.stride *= 2

    def path(self, rows: int = PATH_SAMPLES, cols: int = PATH_STEPS) -> tuple[np.ndarray, list[float]]:
        """y_t of the first `rows` samples at `cols` kept steps from the first to the last: one row per
        sample, noise falling left to right (no captions in the pixels; the sigmas are returned)."""
        pick = sorted(set(np.linspace(0, len(self.kept) - 1, cols).round().astype(int).tolist()))
        n = min(rows, self.kept[0][1].shape[0])
        cells = np.stack([self.kept[k][1][:n] for k in pick], 1)        # (n, cols, C, H, W)
        return imaging.grid(cells.reshape(-1, *cells.shape[2:]), ncol=len(pick), scale=2), \
            [self.kept[k][3] for k in pick]

    def frames(self) -> list[np.ndarray]:
        return [imaging.labelled_row([imaging.grid(y, px=300), imaging.grid(d, px=300)],
                                     [f"y_t   step {t}   sigma {s:.3f}", "f(y_t)"]) for t, y, d, s in self.kept]


def progress_fraction(sigma: float, settings: SamplerSettings) -> float:
    """How far the coarse-to-fine run is, in log sigma from sigma_0 down to sigma_L."""
    if sigma <= 0:
        return 1.0
    f = math.log(settings.sigma_0 / sigma) / math.log(settings.sigma_0 / settings.sigma_L)
    return min(1.0, max(0.0, f))


GRID_PX = 420          # a 4 x 4 grid of 32-pixel samples at 3x: 96 pixels each


def markdown_bold(text: str) -> str:
    """**x** -> <b>x</b>, for a line of markdown put into the status HTML."""
    import re
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)


def status_html(text: str, fraction: float | None = None, kind: str = "") -> str:
    bar = "" if fraction is None else \
        f'<progress class="run-progress" value="{fraction:.3f}" max="1"></progress>'
    return f'<div class="run-status {kind}">{bar}<span>{text}</span></div>'


def settings_from(beta: float, h0: float, guidance: float, eps_scale: float) -> SamplerSettings:
    return SamplerSettings(beta=number(beta, "beta"), h0=number(h0, "h0"), guidance=number(guidance, "guidance"),
                           eps_scale=number(eps_scale, "epsilon scaling"))


def whole(v, what: str) -> int:
    """v as an int, if it is a whole number (2.0 is, 2.5 and NaN are not)."""
    try:
        if isinstance(v, float) and not v.is_integer():
            raise ValueError
        i = int(v)
    except (TypeError, ValueError, OverflowError):
        raise EngineError(f"{what} must be a whole number, got {v!r}") from None
    return i


def number(v, what: str) -> float:
    """v as a finite float (the API may send strings such as '0.05', or NaN)."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise EngineError(f"{what} must be a number, got {v!r}") from None
    if not math.isfinite(x):
        raise EngineError(f"{what} must be a finite number, got {v!r}")
    return x


def check_count(n, most: int = MAX_SAMPLES, what: str = "number of samples") -> int:
    n = whole(n, what)
    if not 1 <= n <= most:
        raise EngineError(f"{what} must be between 1 and {most}, got {n}")
    return n


def check_seed(seed) -> int:
    return engine_check_seed(whole(seed, "seed"))


def file_list(files) -> list[str]:
    """Uploaded files as paths, whatever shape gradio or a client hands them in."""
    if files is None:
        return []
    if isinstance(files, (str, Path)):
        files = [files]
    out = []
    for f in files:
        if isinstance(f, dict):
            f = f.get("path")
        elif hasattr(f, "path"):
            f = f.path
        if f:
            out.append(str(f))
    return out


class Views:
    def __init__(self, ctx: Context):
        self.ctx = ctx

    # ------------------------------------------------------------------ helpers
    def class_name(self, name, what: str = "class") -> str:
        if name is None or name == "":
            raise EngineError(f"choose a {what}")
        if str(name) not in self.ctx.classes:
            raise EngineError(f"unknown {what} '{name}'; the model knows {', '.join(self.ctx.classes)}")
        return str(name)

    def read_uploads(self, files) -> tuple[np.ndarray, list[str]]:
        """Every uploaded file read and fitted to the model's size; a refusal names every bad file."""
        paths = file_list(files)
        if not paths:
            raise EngineError("upload one or more conditioning images first (or condition on a class)")
        if len(paths) > MAX_UPLOADS:
            raise EngineError(f"{len(paths)} images uploaded; condition on at most {MAX_UPLOADS}")
        c, _, size = self.ctx.fg.shape
        arrays, refused = [], []
        for p in paths:
            try:
                arrays.append(imaging.read_upload(p, c, size))
            except EngineError as e:
                refused.append(str(e))
        if refused:
            many = len(refused) > 1
            advice = "; use a PNG, JPEG, BMP, GIF, TIFF or WebP file"
            said = [r.replace(advice, "") for r in refused]
            raise EngineError(("; ".join(said)) + (f" ({len(refused)} of {len(paths)} files refused)" if many else "")
                              + ". Remove " + ("them" if many else "it") + " and upload PNG, JPEG, BMP, GIF, TIFF or "
                              "WebP images instead")
        return np.stack(arrays), [imaging.upload_name(p) for p in paths]

    def placement(self, arrays: np.ndarray) -> measures.Nearest | None:
        """Where images' mean features lie against the class centroids (layer 'all', the atlas's
        smallest sigma): the nearest class and the distance in units of that class's own spread."""
        atlas = self.atlas_or_none()
        if atlas is None or FG not in atlas.models:
            return None
        s = atlas.sigmas[0]
        phi = noisy_phi(self.ctx.fg, np.ascontiguousarray(arrays, np.float32), s, seed=0)
        ref = atlas.layer_phi(FG, ALL, s)
        cents = atlas.layer_centroids(FG, ALL, s)
        spreads = measures.class_spreads(ref, atlas.labels, cents)
        return measures.nearest_centroid(phi.mean(0), cents, spreads)

    def placement_text(self, near: measures.Nearest | None, what: str = "your images", short: bool = False) -> str:
        if near is None:
            return ""
        name = self.ctx.classes[near.index]
        if short:
            return (f"**Far from every class** (nearest: {name}, at {near.ratio:.1f} times its spread)" if near.far
                    else f"nearest class: **{name}** ({near.ratio:.1f} times its spread: within it)")
        if near.far:
            return (f"**Far from every class:** {what} lie nearest to {name}, at {near.ratio:.1f} times that "
                    f"class's own spread (95% of its test images lie within 1); expect samples of whichever "
                    "classes the features fall nearest, not copies of your images.")
        return f"{what.capitalize()} lie nearest to **{name}** ({near.ratio:.1f} times its own spread: within the class)."

    # ------------------------------------------------------------------ /sample
    @user_errors
    def preview_uploads(self, images):
        """The conditioning images as the model sees them (fitted to its size; the page shows them where
        the real images to compare go), with where their features lie, or a clear refusal."""
        paths = file_list(images)
        if not paths:
            return None, ""
        try:
            arrays, names = self.read_uploads(paths)
        except EngineError as e:          # shown beside the upload, in the page; the server carries on
            return None, f"**Refused:** {e}."
        return imaging.grid(arrays, px=300), (
            f"{len(names)} conditioning image(s) read and fitted to {self.ctx.fg.shape[2]} pixels (right); "
            + self.placement_text(self.placement(arrays), short=True) + ".")

    @user_errors
    def sample(self, condition: str = CLASS, class_name: str = "", images=None, n: int = 16,
               seed: int = 0, beta: float = SamplerSettings.beta, h0: float = SamplerSettings.h0,
               guidance: float = SamplerSettings.guidance, eps_scale: float = SamplerSettings.eps_scale):
        """Stream a sampling run: (y_t picture, f(y_t) picture, status, final grid, downloads,
        real images to compare with).

        condition: "class" (class_name), "uploaded images" (images: image files) or
        "mixture model (unconditional)". The last output comes with the first frame; the final
        status adds the independent classifier's reading of the samples."""
        n, seed = check_count(n), check_seed(seed)
        settings = settings_from(beta, h0, guidance, eps_scale)
        names, arrays = None, None
        ckpt = self.ctx.fg
        if condition == CLASS:
            target = ClassTarget(self.class_name(class_name))
            what = f"class {target.name}"
        elif condition == IMAGES:
            arrays, names = self.read_uploads(images)
            target = ImageTarget(torch.from_numpy(arrays), seed=seed)
            what = f"{len(names)} uploaded image(s)"
        elif condition == MIXTURE_MODE:
            if self.ctx.mixture is None:
                raise EngineError("no mixture model is loaded; start the app with --mixture DIR")
            ckpt, target = self.ctx.mixture, Unconditional()
            what = "nothing (mixture model)"
        else:
            raise EngineError(f"condition must be '{CLASS}', '{IMAGES}' or '{MIXTURE_MODE}', got {condition!r}")

        t0 = time.perf_counter()
        last_shown = -1.0
        frames = FrameRecorder()
        # the upload message above the run says it in full; the status keeps the short form
        where = self.placement_text(self.placement(arrays), short=True) if arrays is not None else ""
        step = None
        compare = self.comparison(condition, class_name, arrays)
        for step in sample(ckpt, target, n=n, seed=seed, settings=settings):
            y, d = imaging.as_array(step.y), imaging.as_array(step.denoised)
            active = int(step.active.sum())
            sig = float(step.sigma[step.active].max()) if active else float(step.sigma.max())
            frames.add(step.t, y, d, sig, last=step.final)
            now = time.perf_counter()
            if step.final or now - last_shown >= FRAME_SECONDS:
                last_shown = now
                if step.final:
                    break
                text = (f"conditioned on {what} &middot; <b>step {step.t}</b> &middot; &sigma; = {sig:.3f} &middot; {active} of {n} images "
                        f"still denoising &middot; {step.nfe} network evaluations per image &middot; "
                        f"{now - t0:.1f} s")
                yield (imaging.grid(y, px=GRID_PX), imaging.grid(d, px=GRID_PX),
                       status_html(text, progress_fraction(sig, settings)),
                       None, None, compare if step.t == 0 else gr.skip())
        seconds = time.perf_counter() - t0
        steps = step.t - 1                         # updates of y_t; the last step is the final f(y_T)
        samples = imaging.as_array(step.denoised)
        counts = self.readings(samples)
        reading = {} if counts is None else {"classifier_reading": dict(counts.most_common())}
        record = runs.run_record(ckpt.path, target.describe() if condition != CLASS else
                                 {"mode": "class", "class": target.name}, n, seed, settings, names,
                                 steps=steps, nfe_per_image=step.nfe, seconds=round(seconds, 3),
                                 device=str(ckpt.device), model=self.ctx.label, **reading)
        files = runs.write_downloads(self.ctx.new_run_dir(), samples, frames.frames(), record)
        path, sigmas = frames.path()
        text = (f"<b>done</b>: {n} samples conditioned on {what} in {seconds:.1f} s &middot; {steps} steps &middot; "
                f"{step.nfe} network evaluations per image &middot; seed {seed} &middot; model {self.ctx.label}<br>"
                + self.reading_text(counts, n, target.name if condition == CLASS else None)
                + f" &middot; left: the path of the first {min(n, PATH_SAMPLES)} samples, &sigma; = "
                + ", ".join(f"{v:.2g}" for v in sigmas) + " from left to right."
                + (f" &middot; {markdown_bold(where)}" if where else ""))
        yield (path, imaging.grid(samples, px=GRID_PX), status_html(text, 1.0, "done"),
               imaging.grid(samples, px=GRID_PX), files, gr.skip())

    def comparison(self, condition: str, class_name: str, uploads: np.ndarray | None) -> np.ndarray | None:
        """Real images to judge the samples against: held-out test crops of the class (of every
        class for the mixture model), or the conditioning images as the model sees them."""
        if condition == IMAGES:
            return imaging.grid(uploads, px=300)
        if condition == CLASS:
            crops = self.real_crops([class_name], 16)
        else:
            crops = self.real_crops(self.ctx.classes, 2)
        return None if crops is None else imaging.grid(crops, px=300)

    def real_crops(self, names: list[str], k: int) -> np.ndarray | None:
        """The first k held-out test crops of each named class, from the atlas (None while it is
        being prepared)."""
        atlas = self.atlas_or_none()
        if atlas is None:
            return None
        return np.concatenate([atlas.images[atlas.labels == atlas.classes.index(name)][:k] for name in names])

    def readings(self, samples: np.ndarray) -> Counter | None:
        """How many samples the independent classifier assigns to each class (None while it is
        being prepared)."""
        clf = self.ctx.classifier.get()
        return None if clf is None else clf.readings(samples)

    def reading_text(self, counts: Counter | None, n: int, target: str | None) -> str:
        if counts is None:
            return self.ctx.classifier.status()
        head = "the independent classifier (trained on real crops) reads "
        if target is not None:
            others = Counter(counts)
            hits = others.pop(target, 0)
            rest = ", ".join(f"{c} {k}" for c, k in others.most_common())
            return head + f"<b>{hits} of {n}</b> as {target}" + (f" (the others as {rest})" if rest else "")
        return head + "them as " + ", ".join(f"{c} {k}" for c, k in counts.most_common())

    # ------------------------------------------------------------------ /embedding
    def atlas_or_none(self):
        return self.ctx.atlas.get()

    @user_errors
    def embedding(self, model: str = FG, layer: str = "mid", sigma: float = 0.05, method: str = "umap",
                  image=None):
        """The map of held-out test images in one (model, layer, sigma); an uploaded image as a star.

        Returns (figure, note). While the atlas is being prepared the figure says so."""
        atlas = self.atlas_or_none()
        if atlas is None:
            fig = figures.message_figure(self.ctx.atlas.status())
            fig.update_layout(title=dict(text=f"{self.ctx.label}: the map is being prepared"))
            return fig, self.ctx.atlas.status()
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
                f"map: **{emb.method.upper()}**"]
        if method == "umap" and emb.method != "umap":
            note.append("(the UMAP of this map is still being fitted in the background; PCA is shown meanwhile)")
        if file_list(image):
            path = file_list(image)[0]
            c, _, size = self.ctx.fg.shape
            x = imaging.read_upload(path, c, size)
            ckpt = self.ctx.checkpoints[model]
            phi = noisy_phi(ckpt, x[None], s, seed=0)
            xy = atlas.place(model, layer, s, phi, method=emb.method)
            # far from every class: distance to the nearest centroid against that class's own spread
            cents = atlas.layer_centroids(model, layer, s)
            own = atlas.layer_phi(model, layer, s)
            near = measures.nearest_centroid(atlas._slice(model, layer, phi)[0], cents,
                                             measures.class_spreads(own, atlas.labels, cents))
            nearest = atlas.classes[near.index]
            label = imaging.upload_name(path) + (" (far from every class)" if near.far else "")
            figures.add_points(fig, xy, "your image", [label], far=near.far)
            note.append(f"Your image ({imaging.upload_name(path)}) is the star, placed by its features "
                        f"phi(x + sigma z) at sigma = {s:g}: nearest centroid {nearest}, at {near.ratio:.1f} times "
                        "that class's own spread (95% of its test images lie within 1)"
                        + (". **It is unlike every class**: the map puts it beside its nearest neighbours, "
                           "but it belongs to none of them." if near.far else "."))
        return fig, " ".join(note)

    @user_errors
    def class_images(self, class_name: str):
        """Up to 24 held-out test images of a class, for the gallery."""
        atlas = self.atlas_or_none()
        if not class_name:
            return gr.skip(), gr.skip()             # cleared when a dot was clicked: keep its image
        if atlas is None:
            return [], self.ctx.atlas.status()
        c = atlas.classes.index(self.class_name(class_name))
        idx = np.nonzero(atlas.labels == c)[0][:24]
        return ([(imaging.single(atlas.images[i], px=96), f"#{i}") for i in idx],
                f"Test images of **{class_name}** ({int((atlas.labels == c).sum())} in the atlas).")

    @user_errors
    def point_images(self, index):
        """One test image (clicked in the map, or typed) with its nearest classmates in the list."""
        atlas = self.atlas_or_none()
        if index is None or str(index).strip() == "":
            return gr.skip(), gr.skip()             # cleared when a class was chosen: keep its gallery
        if atlas is None:
            return [], self.ctx.atlas.status()
        i = whole(index, "test image number")
        if not 0 <= i < len(atlas.labels):
            raise EngineError(f"test image #{i} does not exist; the atlas has images #0 to #{len(atlas.labels) - 1}")
        name = atlas.classes[atlas.labels[i]]
        return [(imaging.single(atlas.images[i], px=192), f"#{i} ({name})")], \
            f"Test image **#{i}**, class **{name}**."

    # ------------------------------------------------------------------ /denoise
    @user_errors
    def test_gallery(self, per_class: int = 2):
        """A few test images of every class to pick from: (gallery, indices)."""
        atlas = self.atlas_or_none()
        if atlas is None:
            return [], []
        idx = [int(i) for c in range(len(atlas.classes)) for i in np.nonzero(atlas.labels == c)[0][:per_class]]
        return [(imaging.single(atlas.images[i], px=96), atlas.classes[atlas.labels[i]]) for i in idx], idx

    @user_errors
    def denoise(self, test_index: int = 0, image=None, sigma: float = 0.5, seed: int = 0):
        """Paper fig. 2 for one image: (picture of the outputs with their PSNR, PSNR figure, summary).

        The image is the uploaded file if one is given, else held-out test image #test_index."""
        sigma = number(sigma, "sigma")
        if not 0 < sigma <= 2:
            raise EngineError(f"sigma must be in (0, 2], got {sigma}")
        seed = check_seed(seed)
        fg, mix = self.ctx.fg, self.ctx.mixture
        c, _, size = fg.shape
        if file_list(image):
            path = file_list(image)[0]
            x, true, source = imaging.read_upload(path, c, size), None, imaging.upload_name(path)
        else:
            atlas = self.ctx.atlas.require()
            i = whole(test_index if test_index is not None else 0, "test image number")
            if not 0 <= i < len(atlas.labels):
                raise EngineError(f"test image #{i} does not exist; choose 0 to {len(atlas.labels) - 1}")
            x, true, source = atlas.images[i], int(atlas.labels[i]), f"test image #{i}"
        xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))[None]
        y = analysis.noisy(xt, sigma, torch.Generator().manual_seed(seed))
        k = len(fg.classes)
        outs = analysis.conditioned_outputs(fg, y, sigma, k)[:, 0]                # (K, C, H, W)
        p_cond = analysis.psnr(outs, xt.expand(k, -1, -1, -1)).numpy()
        p_noisy = float(analysis.psnr(y, xt)[0])
        mixed = analysis.plain_denoise(mix, y)[0] if mix is not None else None
        p_mix = float(analysis.psnr(mixed[None], xt)[0]) if mix is not None else None

        px = 96
        outputs = [(imaging.single(x, px), f"clean: {fg.classes[true]}" if true is not None else "clean (yours)"),
                   (imaging.single(y[0], px), f"noisy: {p_noisy:.1f} dB")]
        if mixed is not None:
            outputs.append((imaging.single(mixed, px), f"mixture: {p_mix:.1f} dB"))
        outputs += [(imaging.single(outs[q], px), f"{fg.classes[q]}{'*' if q == true else ''}: {p_cond[q]:.1f} dB")
                    for q in range(k)]
        fig = figures.psnr_gain(fg.classes, p_cond, true, p_mix, p_noisy, sigma, self.ctx.label)
        summary = {"image": source, "true_class": fg.classes[true] if true is not None else None,
                   "sigma": sigma, "seed": seed, "psnr_noisy": round(p_noisy, 3),
                   "psnr_mixture": None if p_mix is None else round(p_mix, 3),
                   "psnr_by_class": {name: round(float(v), 3) for name, v in zip(fg.classes, p_cond)},
                   "gain_over_mixture_db": None if p_mix is None else
                   {name: round(float(v) - p_mix, 3) for name, v in zip(fg.classes, p_cond)},
                   "best_class": fg.classes[int(np.argmax(p_cond))], "model": self.ctx.label}
        return outputs, fig, summary

    # ------------------------------------------------------------------ /interpolate
    def run_batch(self, target, n: int, seed: int, settings: SamplerSettings, progress=None,
                  what: str = "sampling") -> tuple[np.ndarray, int]:
        """Run the sampler to the end, reporting progress in log sigma; (samples, steps)."""
        step = None
        for step in sample(self.ctx.fg, target, n=n, seed=seed, settings=settings):
            if progress is not None and not step.final:
                active = step.active
                sig = float(step.sigma[active].max()) if bool(active.any()) else settings.sigma_L
                progress(progress_fraction(sig, settings), desc=f"{what}: step {step.t}, sigma {sig:.3f}")
        return imaging.as_array(step.denoised), step.t

    def probabilities(self, samples: np.ndarray):
        clf = self.ctx.classifier.get()
        return None if clf is None else clf.probabilities(samples)

    @user_errors
    def interpolate(self, class_a: str, class_b: str, mode: str = BLEND, alpha: float = 0.5,
                    sigma_star: float = 0.3, n: int = 8, seed: int = 0,
                    progress=gr.Progress()):
        """Samples for a blended target (mode "blend": (1 - alpha) A + alpha B) or a switched one
        (mode "switch": A while sigma > sigma_star, then B): (grid, classifier probabilities, summary)."""
        a, b = self.class_name(class_a, "class A"), self.class_name(class_b, "class B")
        if a == b:
            raise EngineError(f"class A and class B are both {a}; choose two different classes to interpolate")
        n, seed = check_count(n, 32), check_seed(seed)
        if mode == BLEND:
            alpha = number(alpha, "alpha")
            if not -2 <= alpha <= 3:
                raise EngineError(f"alpha must be between -2 and 3, got {alpha}")
            target, label = Interpolation(a, b, alpha), f"alpha = {alpha:g}"
        elif mode == SWITCH:
            sigma_star = number(sigma_star, "sigma*")
            if not 0 < sigma_star < SamplerSettings.sigma_0:
                raise EngineError(f"sigma* must be between 0 and {SamplerSettings.sigma_0:g}, got {sigma_star}")
            target, label = Switch(a, b, sigma_star), f"switch at sigma* = {sigma_star:g}"
        else:
            raise EngineError(f"mode must be '{BLEND}' or '{SWITCH}', got {mode!r}")
        settings = SamplerSettings()
        samples, steps = self.run_batch(target, n, seed, settings, progress)
        probs = self.probabilities(samples)
        if probs is None:
            fig = figures.message_figure(self.ctx.classifier.status(), height=330)
        else:
            fig = figures.probability_bars(probs, self.ctx.classes, [a, b],
                                           f"Classifier's probabilities for these samples ({label})"
                                           f"<br><sup>{self.ctx.label}</sup>")
        summary = (f"**{a}** to **{b}**, {label}: {n} samples, seed {seed}, {steps - 1} steps, model {self.ctx.label}. "
                   + ("" if probs is None else
                      f"Mean probability of {a}: {probs[:, self.ctx.classes.index(a)].mean():.2f}, "
                      f"of {b}: {probs[:, self.ctx.classes.index(b)].mean():.2f}."))
        return imaging.grid(samples, ncol=4, px=GRID_PX), fig, summary

    @user_errors
    def interpolate_strip(self, class_a: str, class_b: str, n: int = 3, seed: int = 0,
                          progress=gr.Progress(track_tqdm=True)):
        """One column of n samples per alpha (engine.analysis.ALPHAS), same seed everywhere, with the
        classifier's mean probability of A and B against alpha: (strip picture, figure, table)."""
        a, b = self.class_name(class_a, "class A"), self.class_name(class_b, "class B")
        if a == b:
            raise EngineError(f"class A and class B are both {a}; choose two different classes to interpolate")
        n, seed = check_count(n, 8), check_seed(seed)
        clf = self.ctx.classifier.wait(progress)
        res = analysis.interpolation(self.ctx.fg, a, b, n=n, seed=seed, classifier=clf, progress=True)
        columns = [res.samples[i] for i in range(len(res.alphas))]
        real_a, real_b = self.real_crops([a], n), self.real_crops([b], n)
        if real_a is not None:                    # real crops at both ends, to judge the strip by
            columns = [real_a, *columns, real_b]
        # one picture, no captions in its pixels: the page names the columns under it
        cells = np.stack([c[:n] for c in columns], 1)                  # (n, columns, C, H, W)
        strip = imaging.grid(cells.reshape(-1, *cells.shape[2:]), ncol=len(columns), scale=3)
        fig = figures.strip_probabilities(res.alphas, res.prob_a, res.prob_b, a, b, self.ctx.label)
        return strip, fig, res.table()

    def strip_columns(self, class_a: str, class_b: str, real: bool = True) -> str:
        alphas = ", ".join(f"{v:g}" for v in analysis.ALPHAS)
        return (f"Columns, left to right: {'real ' + class_a + ' | ' if real else ''}alpha = {alphas}"
                f"{' | real ' + class_b if real else ''}; rows: seeds. Alpha 0 is {class_a}'s centroid, 1 is {class_b}'s.")

    # ------------------------------------------------------------------ /trajectories
    @user_errors
    def trajectories(self, targets=None, seed: int = 0, layer: str = "mid", sigma: float = 0.05,
                     progress=gr.Progress()):
        """One sample per target class from the same seed: (map with phi paths, distance vs sigma,
        final images, summary). The per-step images go to the page's step scrubber."""
        names = [self.class_name(t) for t in (targets or [])]
        if len(names) < 2 or len(set(names)) != len(names):
            raise EngineError("choose two or more different target classes")
        if len(names) > 6:
            raise EngineError("choose at most 6 targets")
        seed = check_seed(seed)
        settings = SamplerSettings()
        fg = self.ctx.fg

        def report(k, t, sig):
            progress((k + progress_fraction(sig, settings)) / len(names),
                     desc=f"target {names[k]}: step {t}, sigma {sig:.3f}")

        traj = measures.class_trajectories(fg, names, seed=seed, settings=settings, callback=report)
        ys, ds, sig = traj["y"], traj["denoised"], traj["sigma"]
        t = ys.shape[1]
        phi = fg.phi(torch.from_numpy(ys.reshape(-1, *ys.shape[2:])), batch=256).cpu().numpy()
        data = {"names": names, "y": ys, "denoised": ds, "sigma": sig, "phi": phi.reshape(len(names), t, -1),
                "seed": seed, "layer": layer, "map_sigma": number(sigma, "map sigma")}
        data.update(self.pair_distances(data))
        map_fig = self.trajectory_map(data, step=None)
        dist_fig = self.trajectory_distance_figure(data)
        summary = {"targets": names, "seed": seed, "steps": int(t), "model": self.ctx.label,
                   "bifurcation_sigma": {k: (None if not math.isfinite(v) else round(v, 4))
                                         for k, v in data["bifurcation"].items()},
                   "final_distance": {k: round(float(d[-1]), 4) for k, (_, d) in data["curves"].items()},
                   "final_sigma": {n_: round(float(s[-1]), 4) for n_, s in zip(names, sig)}}
        return map_fig, dist_fig, self.step_picture(data, t - 1), summary, data

    def pair_distances(self, data: dict) -> dict:
        """RMS pixel distance between every pair of trajectories, and where they part
        (engine.measures.trajectory_distances)."""
        curves, marks = measures.trajectory_distances(data["y"], data["sigma"], data["names"])
        return {"curves": curves, "bifurcation": marks}

    def trajectory_map(self, data: dict, step: int | None):
        atlas = self.atlas_or_none()
        if atlas is None:
            return figures.message_figure(self.ctx.atlas.status())
        layer, s = data["layer"], data["map_sigma"]
        emb = atlas.embedding(FG, layer, s, "umap")
        s_used = atlas.sigmas[atlas.sigma_index(s)]
        fig = figures.map_figure(emb.coords, atlas.labels, atlas.classes, emb.centroids,
                                 f"phi(y_t) paths in the map of layer {layer}, sigma = {s_used:g} "
                                 f"({emb.method.upper()})", emb.method, faint=True)
        paths = [atlas.place(FG, layer, s_used, p, method=emb.method) for p in data["phi"]]
        cols = [figures.colour(self.ctx.classes.index(n_)) for n_ in data["names"]]
        return figures.add_paths(fig, paths, data["names"], cols, list(data["sigma"]), step)

    def trajectory_distance_figure(self, data: dict, step: int | None = None):
        s_line = None
        if step is not None:
            s_line = float(np.exp(np.log(np.maximum(data["sigma"][:, step], 1e-12)).mean()))
        s = SamplerSettings()
        return figures.distance_figure(data["curves"], data["bifurcation"], (s.sigma_L, s.sigma_0), s_line,
                                       height=330, model=self.ctx.label)

    def step_picture(self, data: dict, step: int) -> list[tuple[np.ndarray, str]]:
        """y_t and f(y_t) of every target at one step, captioned by text (a gallery: two per target)."""
        step = int(min(max(step, 0), data["y"].shape[1] - 1))
        out = []
        for k, name in enumerate(data["names"]):
            out.append((imaging.single(data["y"][k, step], px=128), f"{name}: y_t"))
            out.append((imaging.single(data["denoised"][k, step], px=128), f"{name}: f(y_t)"))
        return out

    def scrub(self, data, step):
        """The step scrubber (page only): images at step t and the step marked in both figures."""
        if not data:
            return None, gr.skip(), gr.skip(), "Run the trajectories first."
        step = int(step)
        t = data["y"].shape[1]
        step = min(max(step, 0), t - 1)
        sig = ", ".join(f"{n_}: {data['sigma'][k, step]:.3f}" for k, n_ in enumerate(data["names"]))
        return (self.step_picture(data, step), self.trajectory_map(data, step),
                self.trajectory_distance_figure(data, step), f"Step **{step}** of {t - 1}; sigma {sig}.")

    # ------------------------------------------------------------------ /distances
    @user_errors
    def distances(self, layer: str = "mid", sigma: float = 0.05, progress=gr.Progress(track_tqdm=True)):
        """Centroid distances (layer, sigma) and density distances between every pair of classes:
        (centroid heatmap, density heatmap, scatter with correlation, summary)."""
        atlas = self.ctx.atlas.require()
        s = atlas.sigmas[atlas.sigma_index(number(sigma, "sigma"))]
        if layer not in atlas.layers:
            raise EngineError(f"unknown layer '{layer}'; choose one of {', '.join(atlas.layers)}")
        d2 = measures.squared_distances(atlas.layer_centroids(FG, layer, s))      # ||phibar_a - phibar_b||^2
        m = self.ctx.density(progress)
        classes = self.ctx.classes
        pairs = np.asarray(m.pairs, int).reshape(-1, 2)
        dens = np.asarray(m.density_distance, float)
        pair_d2 = d2[pairs[:, 0], pairs[:, 1]]
        r, rho = analysis.correlations(pair_d2, dens)
        h1 = figures.heatmap(d2, classes, f"Centroid distance², {layer}, sigma {s:g}", "d²", log=True)
        h2 = figures.heatmap(m.density_matrix(), classes, "Density distance D(a, b)", "D", log=True)
        sc = figures.pair_scatter(pair_d2, dens, [(classes[a], classes[b]) for a, b in pairs], r, rho, layer, s)
        share = [0.0 if v is None else v for v in m.density_share]
        local = [float("nan") if v is None else v for v in m.density_local_pearson]
        summary = {"layer": layer, "sigma": s, "pearson": r, "spearman": rho, "pairs": len(pairs),
                   "correlation": correlation_words(r, rho), "model": self.ctx.label,
                   "density_sigmas": [round(float(v), 4) for v in m.density_sigmas],
                   "images_per_class_per_sigma": m.density_per_class,
                   # where D comes from, and how well each sigma's integrand follows the centroid
                   # distance at that sigma (matched blocks; docs/analysis.md "Sigma by sigma")
                   "by_sigma": [{"sigma": round(float(v), 4), "share_of_D": round(float(w), 3),
                                 "pearson_integrand_vs_centroid_d2": None if not math.isfinite(p) else round(p, 3)}
                                for v, w, p in zip(m.density_sigmas, share, local)]}
        return h1, h2, sc, summary

    @user_errors
    def pair_samples(self, class_a: str, class_b: str, n: int = 8, seed: int = 0, progress=gr.Progress()):
        """n samples of each class of a pair, from the same seed: (grid of A, grid of B)."""
        a, b = self.class_name(class_a, "class A"), self.class_name(class_b, "class B")
        n, seed = check_count(n, 16), check_seed(seed)
        settings = SamplerSettings()
        xa, _ = self.run_batch(ClassTarget(a), n, seed, settings, progress, f"samples of {a}")
        xb, _ = self.run_batch(ClassTarget(b), n, seed, settings, progress, f"samples of {b}")
        return imaging.grid(xa, ncol=4, px=GRID_PX), imaging.grid(xb, ncol=4, px=GRID_PX)
