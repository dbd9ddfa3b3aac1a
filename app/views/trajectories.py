"""The Trajectories view: one noise under several targets, the distance between every two paths
against sigma and where they part, the paths of phi(y_t) in the map, and the step scrubber."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import gradio as gr
import numpy as np

from engine import measures
from engine.config import SamplerSettings
from engine.errors import EngineError
from engine.palette import colour_of
from engine.placement import trajectory_phi

from .. import figures, imaging
from ..common import FG, PAGE, Result, check_seed, number
from ..errors import user_errors
from .base import ViewBase, progress_fraction


@dataclass
class Trajectories(Result):
    """/trajectories: the map with the paths, the distance figure, y_t and f(y_t) of every target
    at the last step, the summary; the page keeps the run's arrays for the scrubber."""
    map: object
    distance: object
    pictures: list
    summary: dict
    data: dict | None = field(default=None, metadata=PAGE)


@dataclass
class Scrubbed(Result):
    """The step scrubber (page only): images at step t and the step marked in both figures."""
    pictures: object
    map: object
    distance: object
    note: str


class TrajectoriesView(ViewBase):
    @user_errors
    def trajectories(self, targets=None, seed: int = 0, layer: str = "mid", sigma: float = 0.05,
                     progress=gr.Progress()) -> Trajectories:
        """One sample per target class from the same seed."""
        names = [self.class_name(t) for t in (targets or [])]
        if len(names) < 2 or len(set(names)) != len(names):
            raise EngineError("choose two or more different target classes")
        if len(names) > 6:
            raise EngineError("choose at most 6 targets")
        seed = check_seed(seed)
        map_sigma = number(sigma, "map sigma")
        settings = SamplerSettings()
        fg = self.ctx.fg

        def report(k, t, sig):
            progress((k + progress_fraction(sig, settings)) / len(names),
                     desc=f"target {k + 1} of {len(names)} ({names[k]}): step {t}, sigma {sig:.3f}")

        traj = measures.class_trajectories(fg, names, seed=seed, settings=settings, callback=report)
        ys, ds, sig = traj["y"], traj["denoised"], traj["sigma"]
        t = ys.shape[1]
        data = {"names": names, "y": ys, "denoised": ds, "sigma": sig, "phi": trajectory_phi(fg, ys),
                "seed": seed, "layer": layer, "map_sigma": map_sigma}
        curves, marks = measures.trajectory_distances(ys, sig, names)
        data.update(curves=curves, bifurcation=marks)
        summary = {"targets": names, "seed": seed, "steps": int(t), "model": self.ctx.label,
                   "bifurcation_sigma": {k: (None if not math.isfinite(v) else round(v, 4)) for k, v in marks.items()},
                   "final_distance": {k: round(float(d[-1]), 4) for k, (_, d) in curves.items()},
                   "final_sigma": {n_: round(float(s[-1]), 4) for n_, s in zip(names, sig)}}
        return Trajectories(self.trajectory_map(data, None), self.distance_figure(data), self.step_picture(data, t - 1),
                            summary, data)

    def trajectory_map(self, data: dict, step: int | None):
        atlas = self.atlas_or_none()
        if atlas is None:
            return figures.message_figure(self.ctx.atlas.status())
        layer, s = data["layer"], data["map_sigma"]
        emb = atlas.embedding(FG, layer, s, "umap")
        s_used = atlas.sigmas[atlas.sigma_index(s)]
        fig = figures.map_figure(emb.coords, atlas.labels, atlas.classes, emb.centroids,
                                 f"Paths of phi(y_t): {layer}, sigma {s_used:g} ({emb.method.upper()})", emb.method,
                                 faint=True, height=400)
        paths = [atlas.place(FG, layer, s_used, p, method=emb.method) for p in data["phi"]]
        cols = [colour_of(n_, self.ctx.classes) for n_ in data["names"]]
        return figures.add_paths(fig, paths, data["names"], cols, list(data["sigma"]), step)

    def distance_figure(self, data: dict, step: int | None = None):
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
            out.append((imaging.single(data["y"][k, step], px=96), f"{name}: y_t"))
            out.append((imaging.single(data["denoised"][k, step], px=96), f"{name}: f(y_t)"))
        return out

    def scrub(self, data, step) -> Scrubbed:
        if not data:
            return Scrubbed(None, gr.skip(), gr.skip(), "Run the trajectories first.")
        t = data["y"].shape[1]
        step = min(max(int(step), 0), t - 1)
        sig = ", ".join(f"{n_}: {data['sigma'][k, step]:.3f}" for k, n_ in enumerate(data["names"]))
        return Scrubbed(self.step_picture(data, step), self.trajectory_map(data, step),
                        self.distance_figure(data, step), f"Step **{step}** of {t - 1}; sigma {sig}.")
