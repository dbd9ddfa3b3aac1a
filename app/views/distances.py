"""The Distances view: squared centroid distances against density distances for every pair of
classes, how strongly they agree, and samples of a chosen pair."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import gradio as gr
import numpy as np

from engine import analysis, measures
from engine.config import SamplerSettings
from engine.errors import EngineError
from engine.sampler import ClassTarget

from .. import figures, imaging
from ..common import FG, GRID_PX, PAGE, Result, check_count, check_seed, correlation_words, number
from ..errors import user_errors
from .base import ViewBase

NUMBERS_HEADERS = ["sigma", "share of the density distance", "Pearson r of this sigma's part with the centroid distance"]


@dataclass
class Distances(Result):
    """/distances: the two heatmaps, the scatter, the summary; the page also gets the verdict line
    and the numbers as a table."""
    centroid: object
    density: object
    scatter: object
    summary: dict
    verdict: str = field(default="", metadata=PAGE)
    numbers: list = field(default_factory=list, metadata=PAGE)


@dataclass
class PairSamples(Result):
    """/pair_samples: a grid of each class, from the same seed."""
    a: object
    b: object


class DistancesView(ViewBase):
    @user_errors
    def distances(self, layer: str = "mid", sigma: float = 0.05, progress=gr.Progress(track_tqdm=True)) -> Distances:
        """Centroid distances (layer, sigma) and density distances between every pair of classes."""
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
        verdict = f"**{self.ctx.label}**, layer {layer}, sigma {s:g}: {summary['correlation']}."
        numbers = [[f"{row['sigma']:g}", f"{row['share_of_D']:.0%}",
                    "-" if row["pearson_integrand_vs_centroid_d2"] is None
                    else f"{row['pearson_integrand_vs_centroid_d2']:.2f}"] for row in summary["by_sigma"]]
        return Distances(h1, h2, sc, summary, verdict, numbers)

    @user_errors
    def pair_samples(self, class_a: str, class_b: str, n: int = 8, seed: int = 0,
                     progress=gr.Progress()) -> PairSamples:
        """n samples of each class of a pair, from the same seed."""
        a, b = self.class_name(class_a, "class A"), self.class_name(class_b, "class B")
        n, seed = check_count(n, 16), check_seed(seed)
        settings = SamplerSettings()
        xa, _ = self.run_batch(ClassTarget(a), n, seed, settings, progress, f"samples of {a}")
        xb, _ = self.run_batch(ClassTarget(b), n, seed, settings, progress, f"samples of {b}")
        return PairSamples(imaging.grid(xa, ncol=4, px=GRID_PX), imaging.grid(xb, ncol=4, px=GRID_PX))
