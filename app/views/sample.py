"""The Sample view: a sampling run streamed frame by frame, its downloads, real images to
compare with, and the independent classifier's reading of the samples."""
from __future__ import annotations

import time
from dataclasses import dataclass, replace

import gradio as gr
import numpy as np
import torch

from engine.config import SamplerSettings
from engine.errors import EngineError
from engine.sampler import ClassTarget, ImageTarget, Unconditional, run, sample

from .. import imaging, runs
from ..common import (CLASS, COMPARE_MAX, FG, GRID_PX, IMAGES, METHODS, MIXTURE_MODE, Result, check_count,
                      check_seed, file_list, number, status_html)
from ..errors import user_errors
from .base import ViewBase, progress_fraction

PATH_SAMPLES, PATH_STEPS = 4, 6      # the path picture at the end of a run: samples x noise levels
FRAME_SECONDS = 0.25                 # stream a picture at most this often (the sampler runs faster)


@dataclass
class SampleUpdate(Result):
    """One update of a run, in the /sample endpoint's order."""
    y: object          # y_t picture; at the end, the path of the first samples
    f: object          # f(y_t) picture; at the end, the samples
    status: str        # HTML status line
    grid: object       # the final grid (None until the end)
    files: object      # [png, gif, npy, json] at the end
    real: object       # real images to compare with (first update), else unchanged


@dataclass
class UploadPreview(Result):
    picture: object    # the uploads as the model sees them (None if refused)
    message: str       # what was read, or which files were refused and why
    refused: bool


@dataclass
class Compared(Result):
    """/compare_methods: one picture per method with its caption, the status line, and per method
    its network evaluations, seconds, steps and the classifier's reading."""
    gallery: list      # [(picture, caption)] in the order asked
    status: str        # HTML status line
    table: dict        # {method: {nfe_per_sample, seconds, steps, cfg, classifier_reading}}


def settings_from(beta, h0, guidance, eps_scale) -> SamplerSettings:
    return SamplerSettings(beta=number(beta, "beta"), h0=number(h0, "h0"), guidance=number(guidance, "guidance"),
                           eps_scale=number(eps_scale, "epsilon scaling"))


REAL_SHOWN, REAL_COLUMNS = 9, 3     # real images beside the samples: 3 x 3 at the samples' scale


def real_grid(images: np.ndarray) -> np.ndarray:
    """Real images to compare with, at the scale of the samples' grid (GRID_PX for 4 columns)."""
    x = images[:REAL_SHOWN]
    side = x.shape[-1]
    return imaging.grid(x, ncol=REAL_COLUMNS, scale=imaging.scale_for(16, side, GRID_PX, 4))


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


class SampleView(ViewBase):
    @user_errors
    def preview_uploads(self, images) -> UploadPreview:
        """The conditioning images as the model sees them (crops of its size; the page shows them where
        the real images to compare go), with where their features lie, or a clear refusal."""
        if not file_list(images):
            return UploadPreview(None, "", False)
        try:
            up = self.read_uploads(images)
        except EngineError as e:          # shown beside the upload, in the page; the server carries on
            return UploadPreview(None, f"**Refused:** {e}.", True)
        size = self.ctx.fg.shape[2]
        cut = sum("cut into" in h for h in up.how)
        how = (f"{cut} of them cut into crops of {size} pixels at their own scale, the training scale" if cut
               else f"fitted to {size} pixels")
        return UploadPreview(real_grid(up.images), (
            f"{len(up.names)} conditioning image(s) read as {len(up.images)} crop(s), right ({how}) &middot; "
            + self.placement_text(self.placement(up.images), short=True)), False)

    def comparison(self, condition: str, class_name: str, uploads: np.ndarray | None) -> np.ndarray | None:
        """Real images to judge the samples against, at the samples' scale: held-out test crops of the
        class (of every class for the mixture model), or the conditioning crops."""
        if condition == IMAGES:
            return real_grid(uploads)
        crops = self.real_crops([class_name], REAL_SHOWN) if condition == CLASS else \
            self.real_crops(self.ctx.classes, 1)[:REAL_SHOWN]
        return None if crops is None else real_grid(crops)

    @user_errors
    def sample(self, condition: str = CLASS, class_name: str = "", images=None, n: int = 16,
               seed: int = 0, beta: float = SamplerSettings.beta, h0: float = SamplerSettings.h0,
               guidance: float = SamplerSettings.guidance, eps_scale: float = SamplerSettings.eps_scale):
        """Stream a sampling run: SampleUpdate (y_t picture, f(y_t) picture, status, final grid,
        downloads, real images to compare with).

        condition: "class" (class_name), "uploaded images" (images: image files) or
        "mixture model (unconditional)". The real images come with the first update; the last
        adds the downloads and the independent classifier's reading of the samples."""
        n, seed = check_count(n), check_seed(seed)
        settings = settings_from(beta, h0, guidance, eps_scale)
        uploads = None
        ckpt = self.ctx.fg
        if condition == CLASS:
            target = ClassTarget(self.class_name(class_name))
            what, described = f"class {target.name}", {"mode": "class", "class": target.name}
        elif condition == IMAGES:
            uploads = self.read_uploads(images)
            target = ImageTarget(torch.from_numpy(uploads.images), seed=seed)
            what, described = f"{len(uploads.names)} uploaded image(s)", target.describe()
        elif condition == MIXTURE_MODE:
            if self.ctx.mixture is None:
                raise EngineError("no mixture model is loaded; start the app with --mixture DIR")
            ckpt, target = self.ctx.mixture, Unconditional()
            what, described = "nothing (mixture model)", target.describe()
        else:
            raise EngineError(f"condition must be '{CLASS}', '{IMAGES}' or '{MIXTURE_MODE}', got {condition!r}")

        t0 = time.perf_counter()
        last_shown = -1.0
        frames = FrameRecorder()
        arrays = None if uploads is None else uploads.images
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
                text = (f"conditioned on {what} &middot; <b>step {step.t}</b> &middot; &sigma; = {sig:.3f} &middot; "
                        f"{active} of {n} images still denoising &middot; {step.nfe} network evaluations per "
                        f"image &middot; {now - t0:.1f} s")
                yield SampleUpdate(imaging.grid(y, px=GRID_PX), imaging.grid(d, px=GRID_PX),
                                   status_html(text, progress_fraction(sig, settings)),
                                   None, None, compare if step.t == 0 else gr.skip())
        seconds = time.perf_counter() - t0
        steps = step.t - 1                         # updates of y_t; the last step is the final f(y_T)
        samples = imaging.as_array(step.denoised)
        counts = self.readings(samples)
        unfinished = step.active.cpu().numpy()     # still above sigma_L when the step limit ended the run
        reading = {} if counts is None else {"classifier_reading": dict(counts.most_common())}
        limit = {}
        if unfinished.any():
            limit = {"stopped_at_step_limit": int(unfinished.sum()),
                     "highest_final_sigma": round(float(step.sigma[step.active].max()), 4)}
        record = runs.run_record(ckpt.path, described, n, seed, settings,
                                 None if uploads is None else uploads.names,
                                 steps=steps, nfe_per_image=step.nfe, seconds=round(seconds, 3),
                                 device=str(ckpt.device), precision=getattr(ckpt, "precision", "fp32"),
                                 model=self.ctx.label, **({"uploads": uploads.how} if uploads else {}),
                                 **limit, **reading)
        files = runs.write_downloads(self.ctx.new_run_dir(), samples, frames.frames(), record)
        path, sigmas = frames.path()
        if limit:
            ended = (f"<b>stopped at the step limit</b> of {settings.max_steps}: {limit['stopped_at_step_limit']} of {n} "
                     f"still at &sigma; up to {limit['highest_final_sigma']:.3f} &gt; {settings.sigma_L:g}, a little "
                     "noise left")
        else:
            ended = f"<b>done</b>: {n} samples"
        text = (f"{ended} &middot; {what} &middot; {seconds:.1f} s &middot; {steps} steps &middot; seed {seed} "
                f"&middot; model {self.ctx.label}<br>"
                + self.reading_text(counts, n, target.name if condition == CLASS else None)
                + f" &middot; left: the path of the first {min(n, PATH_SAMPLES)} samples at &sigma; "
                + ", ".join(f"{v:.2g}" for v in sigmas))
        yield SampleUpdate(path, imaging.grid(samples, px=GRID_PX),
                           status_html(text, 1.0, "done limit" if limit else "done"),
                           imaging.grid(samples, px=GRID_PX), files, gr.skip())

    def methods_asked(self, methods) -> list[str]:
        chosen = list(METHODS) if methods is None else list(dict.fromkeys(str(m) for m in
                                                                          ([methods] if isinstance(methods, str) else methods)))
        if not chosen:
            raise EngineError("choose at least one method to compare")
        unknown = [m for m in chosen if m not in METHODS]
        if unknown:
            raise EngineError(f"unknown method {unknown[0]!r}; the methods are {', '.join(METHODS)}")
        return chosen

    @user_errors
    def compare_methods(self, condition: str = CLASS, class_name: str = "", methods: list[str] | None = None,
                        n: int = COMPARE_MAX, seed: int = 0, beta: float = SamplerSettings.beta,
                        h0: float = SamplerSettings.h0, guidance: float = SamplerSettings.guidance,
                        eps_scale: float = SamplerSettings.eps_scale):
        """Stream a comparison of methods on one class: the same seed (the same noise) under feature
        guidance, the conditional network (w = 0) and classifier-free guidance at w = 1, 2, 3 (any of
        them, `methods`; default all): Compared (one captioned picture per method, status, numbers),
        updated as each method finishes. guidance carries only the feature-guided target (a
        conditional model takes classifier-free guidance instead)."""
        conditional = self.conditional("comparing methods")
        if condition != CLASS:
            raise EngineError("methods are compared on a class: the conditional network is told a class through "
                              "its learned embedding, never images, so it cannot be conditioned on uploaded images; "
                              "choose Condition on: class")
        name = self.class_name(class_name)
        chosen = self.methods_asked(methods)
        n, seed = check_count(n, COMPARE_MAX, "number of samples per method"), check_seed(seed)
        base = settings_from(beta, h0, guidance, eps_scale)
        items, table, t_all = [], {}, time.perf_counter()
        for k, method in enumerate(chosen):
            yield Compared(list(items), status_html(
                f"comparing on class {name}, seed {seed}: <b>{method}</b> ({k + 1} of {len(chosen)})",
                k / len(chosen)), dict(table))
            kind, w = METHODS[method]
            ckpt = self.ctx.fg if kind == FG else conditional
            settings = replace(base, cfg=w, guidance=base.guidance if kind == FG else 0.0)
            t0 = time.perf_counter()
            final, (step,) = run(ckpt, ClassTarget(name), n=n, seed=seed, settings=settings)
            seconds = time.perf_counter() - t0
            samples = imaging.as_array(final)
            counts = self.readings(samples)
            hits = None if counts is None else counts.get(name, 0)
            table[method] = {"nfe_per_sample": int(step.nfe), "seconds": round(seconds, 3), "steps": step.t - 1,
                             "cfg": w, "guidance": settings.guidance,
                             **({} if counts is None else {"classifier_reading": dict(counts.most_common()),
                                                           "read_as_class": hits})}
            caption = (f"{method}: {step.nfe} network evaluations per sample, {seconds:.1f} s"
                       + ("" if hits is None else f"; {hits} of {n} read as {name}"))
            items.append((imaging.grid(samples, ncol=min(n, 2), scale=3), caption))
        seconds = time.perf_counter() - t_all
        cfg_note = (" &middot; CFG evaluates the network twice a step (told the class, and the null class)"
                    if any(METHODS[m][1] for m in chosen) else "")
        reading = "" if self.ctx.classifier.get() is not None else " &middot; " + self.reading_text(None, n, name)
        text = (f"<b>done</b>: {len(chosen)} method{'s' if len(chosen) > 1 else ''} on class {name}, the same noise for each (seed {seed}, "
                f"{n} samples) &middot; {seconds:.1f} s &middot; model {self.ctx.label}{cfg_note}{reading}")
        yield Compared(items, status_html(text, 1.0, "done"), table)
