"""Why the density distance and the squared centroid distance disagree: the metric the network reads
its target with.

    python experiments/density_metric.py [--checkpoint assets/feature_guided] [--per-class 4] [--threads 2]

To first order in the target, f(y, phibar_q) - f(y, phibar_p) = J (phibar_q - phibar_p), J = df/dphi*
over the matched blocks at y's own centroid (pixels x matched dimensions). So the density integrand
(docs/analysis.md, "Density distance") is sigma^-3 d^T (M_p + M_q) d with d the pair's centroid
difference at sigma and M_c(sigma) = E_{y ~ p_c,sigma} J^T J, the network's metric on its target. The
squared centroid distance d^T d is the same figure with M = I: the two agree, pair by pair, only as far
as M is isotropic on the centroid differences.

Prints, as JSON:
- the report's estimate (engine.analysis.density_distance, its defaults) and its Pearson correlation
  with the squared centroid distance (the claim's figure);
- `linear`: the first-order prediction d^T (M_p + M_q) d integrated as the estimate is, and its
  correlations with the estimate (is first order enough?);
- `one_metric`: the same with one metric for every pair, the class average M(sigma) - the centroid
  distance measured in the network's metric instead of the Euclidean one - and `isotropic`, with M
  replaced by its mean eigenvalue times I (what is left when only the sigma weighting is kept), and
  `isotropic_per_block`, each matched block at its own mean eigenvalue (how much the output reads
  each block, and nothing finer);
- per sigma: the participation ratio of M's eigenvalues, (sum l)^2 / (n sum l^2) (1: isotropic;
  1/n: one direction), and the share of M's trace in each matched block beside the share of the
  squared centroid differences there;
- per sigma, how few directions M reads (those holding half its trace) and the share of M's trace
  and of the centroid differences' squared length along its five leading eigenvectors;
- the pairs the Euclidean distance misplaces most and how strongly the network amplifies their
  centroid difference against an average direction (1: as much as the mean eigenvalue).

J is computed exactly by forward-mode differentiation (one batched pass per image): --per-class 4 on
eight classes and ten sigmas takes about 9 minutes on 2 CPU threads.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from scipy import stats

from engine.analysis import density_distance
from engine.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from engine.data import load_dataset
from engine.density import correlations, integrate_log_sigma, matched_dims


def target_jacobian(model, y: torch.Tensor, target: torch.Tensor, dims: torch.Tensor) -> torch.Tensor:
    """J = df(y, t)/dt[dims] for one image y (1, C, H, W): (len(dims), pixels)."""
    k = len(dims)
    tangents = torch.zeros(k, target.numel())
    tangents[torch.arange(k), dims] = 1.0
    with torch.no_grad():
        _, jac = torch.func.jvp(lambda t: model(y.expand(k, -1, -1, -1), t)[0],
                                (target.expand(k, -1).clone(),), (tangents,))
    return jac.flatten(1)


def participation(m: np.ndarray) -> float:
    lam = np.clip(np.linalg.eigvalsh(m), 0, None)
    return float(lam.sum() ** 2 / (len(lam) * (lam ** 2).sum()))


def leading_directions(m: np.ndarray, diff: np.ndarray, k: int = 5) -> dict:
    """How few directions the metric m reads, and how much of the centroid differences diff (P, n)
    lie along them: the directions that hold half of m's trace, and the share of m's trace and of
    the differences' squared length in its k leading eigenvectors."""
    lam, vec = np.linalg.eigh(m)
    lam, vec = np.clip(lam[::-1], 0, None), vec[:, ::-1]
    cum = np.cumsum(lam) / lam.sum()
    return {"for_half_of_trace": int(np.searchsorted(cum, 0.5) + 1),
            f"top{k}_trace_share": round(float(cum[k - 1]), 3),
            f"top{k}_centroid_share": round(float(((diff @ vec[:, :k]) ** 2).sum() / (diff ** 2).sum()), 3)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT)
    p.add_argument("--per-class", type=int, default=4, help="held-out images per class and sigma for M")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1, help="noise of the images for M (the estimate keeps its seed 0)")
    p.add_argument("--save", default=None, help="also write M (sigma, class, n, n) and the estimate to this .npz")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    started = time.time()
    fg = load_checkpoint(a.checkpoint, device="cpu", kind="feature_guided")
    model = fg.model.eval()
    data = load_dataset(fg.train_config.dataset, "test", fg.config.size, fg.config.channels)
    est = density_distance(fg, data.images, data.labels)
    sigmas, pairs, k = est.sigmas, est.pairs, len(fg.classes)
    dims = torch.from_numpy(matched_dims(fg))
    n = len(dims)

    gen = torch.Generator().manual_seed(a.seed)
    metric = np.zeros((len(sigmas), k, n, n))          # M_c(sigma)
    for s, sigma in enumerate(sigmas):
        for c in range(k):
            x = torch.from_numpy(data.images[data.labels == c][:a.per_class])
            y = x + float(sigma) * torch.randn(x.shape, generator=gen)
            target = fg.centroid(c, float(sigma))
            for i in range(len(y)):
                jac = target_jacobian(model, y[i:i + 1], target, dims).double().numpy()
                metric[s, c] += jac @ jac.T / len(y)
        print(f"sigma {sigma:.3g} done, {time.time() - started:.0f} s", flush=True)

    cents = np.stack([torch.stack([fg.centroid(c, float(sg)) for c in range(k)]).numpy()[:, dims.numpy()]
                      for sg in sigmas]).astype(np.float64)                 # (M, K, n)
    diff = cents[:, pairs[:, 1]] - cents[:, pairs[:, 0]]                     # (M, P, n)
    quad = lambda m, d: np.einsum("spi,spij,spj->sp", d, m, d)              # noqa: E731
    s3 = sigmas[:, None] ** 3
    linear = (quad(metric[:, pairs[:, 0]], diff) + quad(metric[:, pairs[:, 1]], diff)) / s3
    mean_metric = metric.mean(1)                                             # (M, n, n)
    one = 2 * np.einsum("spi,sij,spj->sp", diff, mean_metric, diff) / s3
    eig_mean = np.trace(mean_metric, axis1=1, axis2=2) / n
    iso = 2 * eig_mean[:, None] * (diff ** 2).sum(2) / s3
    # where each matched block sits among the matched coordinates (matched_dims keeps phi's order)
    blocks = {b: sl.stop - sl.start for b, sl in fg.layer_slices().items() if b in fg.config.matched_blocks}
    edges = np.cumsum([0, *blocks.values()])
    # each block isotropic at its own mean eigenvalue: only how much the output reads each block
    per_block = sum(2 * (np.trace(mean_metric[:, lo:hi, lo:hi], axis1=1, axis2=2) / (hi - lo))[:, None]
                    * (diff[:, :, lo:hi] ** 2).sum(2) for lo, hi in zip(edges[:-1], edges[1:])) / s3
    measured = est.density_distance
    if a.save:
        np.savez_compressed(a.save, metric=metric, sigmas=sigmas, pairs=pairs, density=est.density_distance,
                            integrand=est.integrand, centroid_differences=diff)
    corr = lambda u, v: dict(zip(("pearson", "spearman"), (round(r, 3) for r in correlations(u, v))))  # noqa: E731
    lin_d, one_d, iso_d, block_d = (integrate_log_sigma(v, sigmas) for v in (linear, one, iso, per_block))
    by_sigma = []
    for s, sigma in enumerate(sigmas):
        tr = np.diag(mean_metric[s])
        d2 = (diff[s] ** 2).sum(0)
        by_sigma.append({
            "sigma": round(float(sigma), 4),
            "share_of_estimate": round(float(est.share[s]), 3),
            "participation_ratio": round(participation(mean_metric[s]), 3),
            "directions": leading_directions(mean_metric[s], diff[s]),
            "linear_vs_measured_integrand": round(float(stats.pearsonr(linear[s], est.integrand[s])[0]), 3),
            "trace_share": {b: round(float(tr[edges[i]:edges[i + 1]].sum() / tr.sum()), 3) for i, b in enumerate(blocks)},
            "centroid_d2_share": {b: round(float(d2[edges[i]:edges[i + 1]].sum() / d2.sum()), 3)
                                  for i, b in enumerate(blocks)},
        })

    # which pairs the Euclidean distance misplaces, and how much the network amplifies them
    euclid = est.centroid_d2                  # the claim's squared centroid distance, as the report has it
    slope, offset = np.polyfit(euclid, measured, 1)
    residual = measured - (slope * euclid + offset)
    gain = one_d / iso_d                       # > 1: the pair differs along directions the network amplifies
    name = lambda i: f"{fg.classes[pairs[i, 0]]}-{fg.classes[pairs[i, 1]]}"   # noqa: E731
    misplaced = [{"pair": name(i), "centroid_d2": round(float(euclid[i]), 2), "density": round(float(measured[i]), 1),
                  "off_line": round(float(residual[i]), 1), "amplification": round(float(gain[i]), 2)}
                 for i in np.argsort(-np.abs(residual))[:6]]
    print(json.dumps({
        "checkpoint": str(a.checkpoint), "pairs": len(pairs), "matched_dims": n, "per_class": a.per_class,
        "estimate_vs_centroid_d2": corr(euclid, measured),
        "linear": corr(lin_d, measured),
        "one_metric": corr(one_d, measured),
        "isotropic": corr(iso_d, measured),
        "isotropic_per_block": corr(block_d, measured),
        "amplification_range": [round(float(gain.min()), 2), round(float(gain.max()), 2)],
        "amplification_vs_off_line": round(float(stats.spearmanr(gain, residual)[0]), 3),
        "amplification_vs_centroid_d2": round(float(stats.spearmanr(gain, euclid)[0]), 3),
        "by_sigma": by_sigma,
        "misplaced": misplaced,
        "seconds": round(time.time() - started),
    }, indent=1))


if __name__ == "__main__":
    main()
