"""Which class pairs pull the density-vs-centroid correlation off its line?

    python experiments/density_pairs.py [--checkpoint assets/feature_guided] [--measures assets/atlas/measures.json]

Reads the density distances the atlas stored (the report's figures: the same estimate, seed and
images) and the checkpoint's squared centroid distances over the matched blocks at the centroid
table's smallest sigma (the report's reference), then prints the Pearson and Spearman correlations,
the Pearson correlation of their logarithms, the pairs farthest from the least-squares line and the
Pearson figure without each of them. docs/analysis.md ("Why the density correlation misses its
bar") quotes it.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
from scipy import stats

from engine.analysis import centroid_d2, matched_dims
from engine.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    ap.add_argument("--measures", default="assets/atlas/measures.json")
    ap.add_argument("--top", type=int, default=5)
    args = ap.parse_args()

    fg = load_checkpoint(args.checkpoint, kind="feature_guided")
    measures = json.load(open(args.measures))
    if measures["classes"] != list(fg.classes):
        raise SystemExit(f"{args.measures} holds the classes {measures['classes']}, the checkpoint "
                         f"{list(fg.classes)}: rebuild the atlas with `python -m engine atlas`")
    density = np.asarray(measures["density_distance"], np.float64)
    pairs = np.asarray(measures["pairs"])
    ref = float(fg.centroids.sigmas[0])
    d2 = centroid_d2(fg, pairs, ref, matched_dims(fg))

    name = lambda i: f"{fg.classes[pairs[i, 0]]}-{fg.classes[pairs[i, 1]]}"
    slope, offset = np.polyfit(d2, density, 1)
    residual = density - (slope * d2 + offset)
    keep = lambda i: np.arange(len(pairs)) != i
    far = [{"pair": name(i), "centroid_d2": round(float(d2[i]), 2), "density": round(float(density[i]), 1),
            "off_line": round(float(residual[i]), 1),
            "pearson_without": round(float(stats.pearsonr(d2[keep(i)], density[keep(i)])[0]), 3)}
           for i in np.argsort(-np.abs(residual))[:args.top]]
    print(json.dumps({
        "reference_sigma": ref, "pairs": len(pairs),
        "pearson": round(float(stats.pearsonr(d2, density)[0]), 3),
        "spearman": round(float(stats.spearmanr(d2, density)[0]), 3),
        "pearson_of_logs": round(float(stats.pearsonr(np.log(d2), np.log(density))[0]), 3),
        "share_of_integral_by_sigma": dict(zip([f"{s:.3g}" for s in measures["density_sigmas"]],
                                               measures["density_share"])),
        "farthest_from_line": far,
    }, indent=2))


if __name__ == "__main__":
    main()
