"""The Interpolate view: samples for a blend of two class centroids or a class switch at sigma*,
the classifier's verdict on them, and the strip across every alpha."""
from __future__ import annotations

from dataclasses import dataclass, field

import gradio as gr
import numpy as np

from engine import analysis
from engine.config import SamplerSettings
from engine.errors import EngineError
from engine.paths import shown_path
from engine.sampler import Interpolation, Switch

from .. import figures, imaging
from ..common import BLEND, FG, GRID_PX, PAGE, SWITCH, Result, check_count, check_seed, number, possessive
from ..errors import user_errors
from .base import ViewBase


@dataclass
class Interpolated(Result):
    """/interpolate: the samples, the classifier's probabilities, a summary line; the page also gets
    the model set's ground truth (a set with a held-out class) with these samples on it."""
    grid: object
    probabilities: object
    summary: str
    truth: object = field(default=None, metadata=PAGE)
    truth_note: str = field(default="", metadata=PAGE)


@dataclass
class Truth(Result):
    """The ground-truth figure of a model set with a held-out class, a line on what is missing from
    it, and what it says of the samples shown."""
    figure: object
    note: str
    reading: str = ""


@dataclass
class Strip(Result):
    """/interpolate_strip: the strip picture, P(A) and P(B) against alpha, the table; the page
    also gets the line naming its columns."""
    strip: object
    figure: object
    table: dict
    columns: str = field(default="", metadata=PAGE)


class InterpolateView(ViewBase):
    def pair(self, class_a, class_b) -> tuple[str, str]:
        a, b = self.class_name(class_a, "class A"), self.class_name(class_b, "class B")
        if a == b:
            raise EngineError(f"class A and class B are both {a}; choose two different classes to interpolate")
        return a, b

    def truth(self, a: str | None = None, b: str | None = None, alpha: float | None = None,
              method: str = FG, samples: np.ndarray | None = None) -> Truth:
        """The model set's measured interpolation against its held-out class (nothing for a set
        without one): the position alpha of the pair a -> b marked on it and, when samples are given,
        their aspect ratios (engine.data.aspect_ratio) drawn there under `method`. The curve runs from
        the measured pair's first class to its second: the reversed pair is read at 1 - alpha; another
        pair is not on it. As the ground truth was measured, only the samples that hold an oval
        (engine.ground_truth.has_oval) are read."""
        if self.ctx.ground_truth_path is None:
            return Truth(None, "")
        try:
            gt = self.ctx.ground_truth()
        except EngineError as e:              # a file there but unreadable: said where the plot goes
            return Truth(figures.message_figure(str(e), height=330, width=44), "")
        if gt is None:
            return Truth(figures.message_figure(
                f"No ground truth measured for this model set yet ({shown_path(self.ctx.ground_truth_path)}): "
                "run python\u00a0-m\u00a0engine\u00a0report, which measures it.", height=330, width=44), "")
        where = {(gt.a, gt.b): alpha, (gt.b, gt.a): None if alpha is None else 1 - alpha}
        if a is not None and (a, b) not in where:
            return Truth(figures.ground_truth(gt), f"Measured from {gt.a} to {gt.b}: choose that pair to see the "
                         "samples on it.")
        at = where.get((a, b))
        if samples is None or at is None:
            return Truth(figures.ground_truth(gt, alpha=at), "")
        # as the ground truth was measured: the aspect ratio of the samples that hold an oval (a blank one's
        # noise would read as round, the held-out answer)
        from engine.data import aspect_ratio
        from engine.ground_truth import has_oval
        keep = has_oval(samples)
        ratios = aspect_ratio(samples[keep]) if keep.any() else np.empty(0)
        blank = int((~keep).sum())
        reading = (f"Median aspect ratio {float(np.median(ratios)):.2f} (real {gt.held_out}: "
                   f"{gt.real_ratio_median:.2f})" if keep.any() else "No oval in these samples")
        reading += f"; {blank} of {len(samples)} blank." if blank and keep.any() else "."
        return Truth(figures.ground_truth(gt, alpha=at, live={method: ratios.tolist()}, blank=blank), "", reading)

    @user_errors
    def interpolate(self, class_a: str, class_b: str, mode: str = BLEND, alpha: float = 0.5,
                    sigma_star: float = 0.3, n: int = 8, seed: int = 0, method: str = FG,
                    progress=gr.Progress()) -> Interpolated:
        """Samples for a blended target (mode "blend": (1 - alpha) A + alpha B) or a switched one
        (mode "switch": A while sigma > sigma_star, then B), of the class centroids of the feature-guided
        model (method "feature_guided") or the class embeddings of the conditional one ("conditional")."""
        a, b = self.pair(class_a, class_b)
        ckpt, mixed = self.interpolated(method)
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
        samples, steps = self.run_batch(target, n, seed, SamplerSettings(), progress, ckpt=ckpt)
        probs = self.probabilities(samples)
        short = "" if self.ctx.ground_truth_path is not None else " for these samples"  # a third of the width
        if probs is None:
            fig = figures.message_figure(self.ctx.classifier.status(), height=330, width=44)
        else:
            fig = figures.probability_bars(probs, self.ctx.classes, [a, b],
                                           f"Classifier's probabilities{short} ({label})"
                                           f"<br><sup>{self.ctx.label}</sup>")
        of = "" if ckpt is self.ctx.fg else f", {mixed}"
        summary = (f"**{a}** to **{b}**{of}, {label}: {n} samples, seed {seed}, {steps - 1} steps, model "
                   f"{self.ctx.label}. " + ("" if probs is None else
                                            f"Mean probability of {a}: {probs[:, self.ctx.classes.index(a)].mean():.2f}, "
                                            f"of {b}: {probs[:, self.ctx.classes.index(b)].mean():.2f}."))
        truth = self.truth(a, b, alpha if mode == BLEND else None, str(method or FG),
                           samples if mode == BLEND else None)
        summary += f" {truth.reading}" if truth.reading else ""
        return Interpolated(imaging.grid(samples, ncol=4, px=GRID_PX), fig, summary, truth.figure, truth.note)

    @user_errors
    def interpolate_strip(self, class_a: str, class_b: str, n: int = 3, seed: int = 0, method: str = FG,
                          progress=gr.Progress(track_tqdm=True)) -> Strip:
        """One column of n samples per alpha (engine.analysis.ALPHAS), same seed everywhere, between
        real crops of A and B, with the classifier's mean probability of A and B against alpha; of
        the centroids ("feature_guided") or the class embeddings ("conditional")."""
        a, b = self.pair(class_a, class_b)
        ckpt, mixed = self.interpolated(method)
        n, seed = check_count(n, 8), check_seed(seed)
        clf = self.ctx.classifier.wait(progress)
        res = analysis.interpolation(ckpt, a, b, n=n, seed=seed, classifier=clf, progress=True)
        columns = [res.samples[i] for i in range(len(res.alphas))]
        real_a, real_b = self.real_crops([a], n), self.real_crops([b], n)
        if real_a is not None:                    # real crops at both ends, to judge the strip by
            columns = [real_a, *columns, real_b]
        # one picture, no captions in its pixels: the page names the columns under it
        cells = np.stack([c[:n] for c in columns], 1)                  # (n, columns, C, H, W)
        strip = imaging.grid(cells.reshape(-1, *cells.shape[2:]), ncol=len(columns), scale=3)
        label = self.ctx.label if ckpt is self.ctx.fg else f"{self.ctx.label}, {mixed}"
        fig = figures.strip_probabilities(res.alphas, res.prob_a, res.prob_b, a, b, label,
                                          classes=self.ctx.classes)
        return Strip(strip, fig, res.table(), self.strip_columns(a, b, real_a is not None,
                                                                 "centroid" if ckpt is self.ctx.fg else "class embedding"))

    def strip_columns(self, class_a: str, class_b: str, real: bool = True, of: str = "centroid") -> str:
        alphas = ", ".join(f"{v:g}" for v in analysis.ALPHAS)
        return (f"Columns, left to right: {'real ' + class_a + ' | ' if real else ''}alpha = {alphas}"
                f"{' | real ' + class_b if real else ''}; rows: seeds. Alpha 0 is {possessive(class_a)} {of}, "
                f"1 is {possessive(class_b)}.")
