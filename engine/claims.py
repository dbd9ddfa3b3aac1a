"""The paper's claims judged against their bars (docs/method.md, "Claims as measurements"; the
bars of docs/analysis.md): each claim with its measured value, the rule, and whether it holds.
"""
from __future__ import annotations


def bar(value, holds: bool, rule: str) -> dict:
    return {"value": value, "pass": bool(holds), "rule": rule}


def check_bars(den, sep, dens, bif, interp, truth=None) -> dict:
    """Each claim of docs/method.md, "Claims as measurements" (the bars of docs/analysis.md), with its
    measured value."""
    out = {}
    out["density_vs_centroid_pearson"] = bar(round(dens.pearson, 4), dens.pearson >= 0.8,
                                             "Pearson(density distance, squared centroid distance) >= 0.8")
    if "mid" in sep.layers:
        fg, mx = sep.table()["mid"]["feature_guided"], sep.table()["mid"]["mixture"]
        out["separation_mid"] = bar({"feature_guided": round(fg, 4), "mixture": round(mx, 4)}, fg > mx,
                                    "separation in the mid layer higher for feature-guided than mixture")
    try:
        g = {s: float(den.gain_db[den.at(s)]) for s in (0.1, 0.5, 1.0)}
        out["psnr_gain"] = bar({f"{s:g}": round(v, 3) for s, v in g.items()},
                               g[0.5] > 0 and g[1.0] > 0 and g[1.0] > g[0.1],
                               "gain over mixture > 0 at sigma 0.5 and 1.0, and larger at 1.0 than at 0.1")
        w = float(den.wrong_gain_db[den.at(1.0)])
        out["wrong_conditioning"] = bar(round(w, 3), w < 0, "wrong conditioning worse than mixture at sigma 1.0 (dB < 0)")
    except KeyError:
        pass                                   # the PSNR sigmas do not include 0.1, 0.5 and 1.0
    out["bifurcation_sigma"] = bar(round(bif.bifurcation_sigma, 4),
                                   bif.sigma_L < bif.bifurcation_sigma < bif.sigma_0,
                                   f"strictly between sigma_L = {bif.sigma_L:g} and sigma_0 = {bif.sigma_0:g}")
    out["interpolation_spearman"] = bar(round(interp.spearman_b, 4), interp.spearman_b >= 0.9,
                                        f"Spearman(P({interp.b}), alpha) >= 0.9")
    if truth is not None and "feature_guided" in truth.curves:
        rho = truth.curves["feature_guided"].spearman
        out["ground_truth_monotone"] = bar(round(rho, 4), rho >= 0.9, "on ovals, Spearman(aspect ratio of the "
                                           f"samples, alpha) >= 0.9 from {truth.a} to {truth.b}")
    return out
