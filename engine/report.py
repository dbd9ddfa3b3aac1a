"""`python -m engine report` and `python -m engine atlas`: every measurement of analysis.py on a
feature-guided model and its mixture baseline, written as figures (HTML + PNG) and report.json.

report.json holds, besides the raw data of each figure, the keys of the paper's claims:
psnr_gain_db (sigma -> dB), separation (layer -> {"feature_guided": x, "mixture": y}),
density_vs_centroid_pearson, density_vs_centroid_spearman, bifurcation_sigma,
interpolation (alpha -> class probabilities), and `bars`: each claim of docs/method.md ("Claims
as measurements") with its measured value and whether it holds.

The claims are judged in claims.py; the figures are written by export.py, as HTML that works
offline and as PNG when a Chrome is found (without one the report still writes HTML and JSON and
says why PNG was skipped).
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .atlas import ATLAS_SIGMAS, DEFAULT_ATLAS, PER_CLASS, Atlas, build_atlas, check_compatible, held_out
from .bifurcation import bifurcation
from .claims import check_bars
from .cli import seed_value, whole_number
from .config import SamplerSettings
from .denoising import PSNR_SIGMAS, check_pair, denoising, denoising_grid
from .density import DENSITY_PER_CLASS, DENSITY_SIGMAS, density_distance, density_sigmas
from .errors import EngineError
from .export import plain, write_html, write_index, write_png
from .ground_truth import ground_truth
from .interpolation import ALPHAS, interpolation
from .methods import WEIGHTS, compare_methods
from .paths import writable_dir
from .separation import embedding_separation


@dataclass
class ReportSettings:
    """Monte-Carlo sizes of the report; the defaults are sized for a laptop CPU (the report's own
    timings_s say what they cost)."""
    psnr_per_class: int = 30                  # held-out images per class for the PSNR curves
    psnr_sigmas: tuple[float, ...] = PSNR_SIGMAS
    grid_sigmas: tuple[float, ...] = (1.0, 0.5)   # the two panels of fig 2
    grid_classes: int = 4
    separation_per_class: int = 50            # held-out images per class for fig 4
    separation_sigma: float = 0.0             # 0: phi of clean images, as in the paper's fig 4
    density_per_class: int = DENSITY_PER_CLASS
    density_sigmas: int = DENSITY_SIGMAS
    # images per run for bifurcation and interpolation. 32, not 8: at 8 the interpolation's
    # Spearman moved with the seeds as far as it lay from the bar (docs/analysis.md, "Interpolation")
    samples: int = 32
    alphas: tuple[float, ...] = ALPHAS
    pair: tuple[str, str] | None = None       # classes of bifurcation / interpolation (default: first two)
    atlas_per_class: int = PER_CLASS
    umap: bool = False                        # fit UMAPs when the report has to build its atlas
    max_steps: int | None = None              # sampler step limit (None: the sampler's default)
    methods_per_class: int = 32               # samples per class and method of the method comparison
    cfg_weights: tuple[float, ...] = WEIGHTS  # classifier-free guidance weights compared
    ground_truth_samples: int = 32            # samples per alpha and method on ovals
    seed: int = 0
    png: bool = True


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- the report

def report_atlas(checkpoints: dict, atlas_path, s: ReportSettings, out: Path, progress: bool) -> Atlas:
    """The cached atlas when it was built from these checkpoints, else a new one saved in OUT/atlas."""
    path = Path(atlas_path) if atlas_path else DEFAULT_ATLAS
    if (path / "atlas.json").is_file():
        atlas = Atlas.load(path)
        if atlas.matches(checkpoints):
            log(f"atlas: using {path}")
            return atlas
        log(f"atlas: {path} was built from other checkpoints; building a new one")
    atlas = build_atlas(checkpoints, per_class=s.atlas_per_class, sigmas=ATLAS_SIGMAS, umap=s.umap,
                        seed=s.seed, progress=progress)
    atlas.save(out / "atlas")
    return atlas


def run_report(fg, mixture, out, settings: ReportSettings | None = None, atlas_path=None, classifier=None,
               progress: bool = True, conditional=None, ovals: dict | None = None) -> dict:
    """Run every measurement, write OUT/*.html, OUT/*.png, OUT/report.json; return the report dict.
    With `conditional` (a conditional model on fg's data), also the comparison of methods
    (OUT/methods.json); with `ovals` (method -> model trained on ovals-holdout), the interpolation
    against the held-out class (OUT/ground_truth.json)."""
    from . import figures as F
    s = settings or ReportSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    check_pair(fg, mixture)
    models = {"feature_guided": fg, "mixture": mixture}
    check_compatible(models)
    pair = s.pair or (fg.classes[0], fg.classes[1])
    for c in pair:
        fg.class_index(c)
    sampler = SamplerSettings(**({"max_steps": s.max_steps} if s.max_steps else {}))
    need = max(s.psnr_per_class, s.separation_per_class, s.density_per_class, 2)
    images, labels, _ = held_out(fg, need)

    def first(n):
        idx = np.concatenate([np.nonzero(labels == c)[0][:n] for c in range(len(fg.classes))])
        return images[idx], labels[idx]

    timings, figs, t_all = {}, {}, time.perf_counter()

    def stage(name):
        timings[name] = time.perf_counter()
        log(f"[{time.perf_counter() - t_all:6.1f}s] {name}")

    def done(name):
        timings[name] = round(time.perf_counter() - timings[name], 1)

    stage("denoising")
    den = denoising(fg, mixture, *first(s.psnr_per_class), sigmas=s.psnr_sigmas, seed=s.seed, progress=progress)
    grids = [denoising_grid(fg, mixture, images, labels, classes=list(range(min(s.grid_classes, len(fg.classes)))),
                              sigma=g, seed=s.seed) for g in s.grid_sigmas]
    figs["fig3_psnr"] = F.psnr_figure(den)
    for g in grids:
        figs[f"fig2_denoising_sigma_{g.sigma:g}"] = F.denoising_grid_figure(g, fg.classes)
    done("denoising")

    stage("separation")
    sep = embedding_separation(models, *first(s.separation_per_class), sigma=s.separation_sigma, seed=s.seed)
    figs["fig4_separation"] = F.separation_figure(sep)
    done("separation")

    stage("density distance")
    dens = density_distance(fg, *first(s.density_per_class), sigmas=density_sigmas(s.density_sigmas),
                              per_class=s.density_per_class, seed=s.seed, progress=progress)
    figs["fig5_density_distance"] = F.density_figure(dens)
    done("density distance")

    stage("bifurcation")
    bif = bifurcation(fg, pair[0], pair[1], n=s.samples, seed=s.seed, settings=sampler, progress=progress)
    figs["fig1_bifurcation"] = F.bifurcation_figure(bif)
    done("bifurcation")

    stage("interpolation")
    if classifier is None:
        from .classifier import load_classifier
        classifier = load_classifier(fg, progress=progress)
    interp = interpolation(fg, pair[0], pair[1], alphas=s.alphas, n=s.samples, seed=s.seed,
                             classifier=classifier, settings=sampler, progress=progress)
    figs["interpolation"] = F.interpolation_figure(interp)
    done("interpolation")

    comparison = truth = None
    if conditional is not None:
        stage("methods")
        comparison = plain(compare_methods(fg, conditional, mixture, per_class=s.methods_per_class, seed=s.seed,
                                           weights=s.cfg_weights, settings=sampler, progress=progress, log=log))
        (out / "methods.json").write_text(json.dumps(comparison, indent=1))
        figs["methods"] = F.methods_figure(comparison)
        done("methods")
    if ovals:
        stage("ground truth")
        truth = ground_truth(ovals, n=s.ground_truth_samples, seed=s.seed, settings=sampler, progress=progress)
        truth.save(out / "ground_truth.json")
        figs["ground_truth"] = F.ground_truth_figure(truth)
        done("ground truth")

    stage("atlas")
    atlas = report_atlas(models, atlas_path, s, out, progress)
    for m in atlas.models:
        emb = atlas.embedding(m, "mid" if "mid" in atlas.layers else "all", atlas.sigmas[0])
        figs[f"atlas_{m}_mid"] = F.embedding_figure(
            emb, atlas.classes, atlas.labels,
            title=f"Feature atlas, {F.MODEL_NAMES.get(m, m)} model, layer mid, sigma {atlas.sigmas[0]:g} "
                  f"({emb.method.upper()})")
    done("atlas")

    stage("figures")
    html = write_html(figs, out)
    png = write_png(figs, out) if s.png else "skipped: --no-png"
    done("figures")
    log(f"PNG {png}")

    bars = check_bars(den, sep, dens, bif, interp, truth)
    result = {
        "psnr_gain_db": {f"{sg:g}": g for sg, g in zip(den.sigmas, den.gain_db)},
        "separation": sep.table(),
        "density_vs_centroid_pearson": dens.pearson,
        "density_vs_centroid_spearman": dens.spearman,
        "bifurcation_sigma": bif.bifurcation_sigma,
        "interpolation": interp.table(),
        "bars": bars,
        "psnr": {"sigma": den.sigmas, "correct": den.psnr_correct, "wrong": den.psnr_wrong,
                 "mixture": den.psnr_mixture, "noisy": den.psnr_noisy, "images": den.n_images,
                 "stderr": den.stderr},
        "wrong_minus_mixture_db": {f"{sg:g}": g for sg, g in zip(den.sigmas, den.wrong_gain_db)},
        "denoising_grid": [{"sigma": g.sigma, "rows": [fg.classes[c] for c in g.rows], "psnr": g.psnr,
                            "psnr_mixture": g.psnr_mixture} for g in grids],
        "separation_sigma": sep.sigma,
        "best_separation_layer": {m: sep.best_layer(m) for m in sep.models},
        "density": {"pairs": [[fg.classes[a], fg.classes[b]] for a, b in dens.pairs],
                    "distance": dens.density_distance, "centroid_d2": dens.centroid_d2,
                    "centroid_blocks": dens.blocks, "reference_sigma": dens.reference_sigma,
                    "pearson_full_phi": dens.pearson_full, "spearman_full_phi": dens.spearman_full,
                    "by_sigma": {"sigma": dens.sigmas, "pearson_integrand_vs_centroid_d2": dens.local_pearson,
                                 "share_of_distance": dens.share},
                    "monte_carlo": {"sigmas": dens.sigmas, "images_per_class_per_sigma": dens.per_class,
                                    "noise_draws_per_image": 1, "quadrature": "trapezoid in log sigma"}},
        "bifurcation": {"a": bif.a, "b": bif.b, "bifurcation_sigma_phi": bif.bifurcation_sigma_phi,
                        "sigma_0": bif.sigma_0, "sigma_L": bif.sigma_L, "samples": s.samples,
                        "final_distance_pixels": bif.distance_pixels[-1], "final_distance_phi": bif.distance_phi[-1]},
        "interpolation_spearman": interp.spearman_b,
        "interpolation_pair": [interp.a, interp.b],
        "classifier_test_accuracy": getattr(classifier, "test_accuracy", None),
        "methods": comparison,
        "ground_truth": truth.table() if truth is not None else None,
        "atlas": {"models": atlas.models, "layers": atlas.layers, "sigmas": atlas.sigmas,
                  "points": int(len(atlas.labels)), "umap_fitted": len(atlas.models) * len(atlas.layers)
                  * len(atlas.sigmas) - len(atlas.missing_umaps())},
        "checkpoints": {m: {"path": c.path, "step": c.step, "total_steps": c.total_steps, "kind": c.kind,
                            "fingerprint": c.fingerprint}
                        for m, c in {**models, **({"conditional": conditional} if conditional else {}),
                                     **{f"ovals_{k}": v for k, v in (ovals or {}).items()}}.items()},
        "settings": asdict(s), "sampler": asdict(sampler),
        "figures": html, "png": png, "timings_s": timings,
        "total_seconds": round(time.perf_counter() - t_all, 1),
    }
    result = plain(result)
    (out / "report.json").write_text(json.dumps(result, indent=1))
    write_index(out, list(figs), result)
    log(f"[{result['total_seconds']:6.1f}s] report written to {out}")
    return result


# ----------------------------------------------------------------------------- command line

def _floats(text: str) -> tuple[float, ...]:
    import argparse
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated finite numbers, got '{text}'")
    return values


def _sigma(text: str) -> float:
    import argparse
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got '{text}'") from None
    if not 0 <= v <= 10:
        raise argparse.ArgumentTypeError(f"must be between 0 and 10, got {text}")
    return v


def load_models(checkpoint, mixture, device: str, need_mixture: bool) -> dict:
    """The feature-guided model (default: shipped) and its mixture (default: shipped, with the
    default checkpoint)."""
    from .checkpoint import DEFAULT_MIXTURE, load_checkpoint, load_mixture
    fg = load_checkpoint(checkpoint, device, kind="feature_guided")
    mix_path = mixture or (DEFAULT_MIXTURE if checkpoint is None else None)
    if mix_path is None and need_mixture:
        raise EngineError("give --mixture: the mixture model is the baseline of every comparison")
    models = {"feature_guided": fg}
    if mix_path is not None:
        models["mixture"] = load_mixture(mix_path, device, fg)
    return models


def comparison_models(a, device: str):
    """The conditional model of the method comparison and the ovals pair of the ground truth that
    `report` was given, or the shipped ones where it ran on the shipped model; None when absent."""
    from .checkpoint import load_checkpoint
    from .paths import DEFAULT_CONDITIONAL, OVALS_SET
    shipped = a.checkpoint is None
    conditional, ovals = None, None
    if not a.no_methods:
        path = a.conditional or (DEFAULT_CONDITIONAL if shipped and (DEFAULT_CONDITIONAL / "model.pt").is_file()
                                 else None)
        if path:
            conditional = load_checkpoint(path, device, kind="conditional", what="--conditional")
    if not a.no_ovals:
        folder = Path(a.ovals) if a.ovals else (OVALS_SET if shipped else None)
        if folder is not None:
            found = {k: folder / k for k in ("feature_guided", "conditional") if (folder / k / "model.pt").is_file()}
            if a.ovals and not found:
                raise EngineError(f"--ovals {a.ovals}: no feature_guided/model.pt or conditional/model.pt there")
            ovals = {k: load_checkpoint(p, device, kind=k, what="--ovals") for k, p in found.items()} or None
    return conditional, ovals


def cmd_atlas(a) -> int:
    sigmas = a.sigmas or ATLAS_SIGMAS
    if not all(0 < v <= 2 for v in sigmas):          # the range of the app's denoising view
        raise EngineError(f"--sigmas must all lie in (0, 2], got {','.join(map(str, sigmas))}")
    writable_dir(a.out)
    models = load_models(a.checkpoint, a.mixture, a.device, need_mixture=False)
    if a.measures_only:
        atlas = Atlas.load(a.out)
        if not atlas.matches(models):
            raise EngineError(f"{a.out}: the atlas there was built from other checkpoints; rebuild it with "
                              "`python -m engine atlas` (without --measures-only)")
    else:
        atlas = build_atlas(models, per_class=a.per_class, sigmas=sigmas, umap=not a.no_umap, seed=a.seed,
                            progress=not a.quiet)
        atlas.save(a.out)
    facts = {}
    if not a.no_measures:
        from .classifier import load_classifier
        from .measures import measure
        fg = models["feature_guided"]
        m = measure(fg, atlas.images, atlas.labels, load_classifier(fg, progress=not a.quiet),
                    progress=not a.quiet, log=None if a.quiet else lambda msg: log(f"measures: {msg}"))
        m.save(a.out)
        facts = {"measures": {"pair": m.pair, "targets": m.targets, "seconds": m.seconds}}
    folder = Path(a.out)
    size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
    print(json.dumps({"out": str(folder), "models": atlas.models, "layers": atlas.layers, "sigmas": atlas.sigmas,
                      "points": int(len(atlas.labels)), "umap_fitted": not a.no_umap, "bytes": size, **facts}))
    return 0


def cmd_report(a) -> int:
    writable_dir(a.out)
    models = load_models(a.checkpoint, a.mixture, a.device, need_mixture=True)
    s = ReportSettings(psnr_per_class=a.psnr_per_class, separation_per_class=a.separation_per_class,
                       separation_sigma=a.separation_sigma, density_per_class=a.density_per_class,
                       density_sigmas=a.density_sigmas,
                       samples=a.samples, alphas=a.alphas or ALPHAS, pair=tuple(a.pair) if a.pair else None,
                       atlas_per_class=a.atlas_per_class, umap=a.umap, max_steps=a.max_steps, seed=a.seed,
                       png=not a.no_png, methods_per_class=a.methods_per_class, cfg_weights=a.cfg_weights,
                       ground_truth_samples=a.ground_truth_samples)
    if len(s.alphas) < 3:
        raise EngineError("--alphas needs at least 3 values")
    if s.density_sigmas < 2:
        raise EngineError("--density-sigmas must be at least 2")
    conditional, ovals = comparison_models(a, a.device)
    result = run_report(models["feature_guided"], models["mixture"], a.out, s, atlas_path=a.atlas,
                        progress=not a.quiet, conditional=conditional, ovals=ovals)
    print(json.dumps({k: result[k] for k in ("psnr_gain_db", "density_vs_centroid_pearson",
                                             "density_vs_centroid_spearman", "bifurcation_sigma",
                                             "interpolation_spearman", "png", "total_seconds")}
                     | {"methods": bool(result["methods"]), "ground_truth": bool(result["ground_truth"])}
                     | {"bars": {k: v["pass"] for k, v in result["bars"].items()}, "out": str(a.out)}))
    return 0


def register(subparsers) -> dict:
    """Add `atlas` and `report` to the command line's subparsers; returns {name: handler}."""
    t = subparsers.add_parser("atlas", help="build the feature atlas (phi maps) for a checkpoint",
                              description="Compute phi of held-out images of every class at a few sigma for a "
                              "feature-guided model (and its mixture), with PCA and UMAP maps; save to --out. "
                              "See docs/analysis.md.")
    t.add_argument("--checkpoint", default=None, help="feature-guided model (default: assets/feature_guided)")
    t.add_argument("--mixture", default=None,
                   help="mixture model to map alongside (default: assets/mixture with the default checkpoint)")
    t.add_argument("--out", default=str(DEFAULT_ATLAS), help=f"atlas folder (default {DEFAULT_ATLAS})")
    t.add_argument("--per-class", type=whole_number(), default=PER_CLASS,
                   help=f"held-out images per class (default {PER_CLASS})")
    t.add_argument("--sigmas", type=_floats, default=None,
                   help="noise levels, comma-separated (default " + ",".join(f"{v:g}" for v in ATLAS_SIGMAS) + ")")
    t.add_argument("--no-umap", action="store_true", help="PCA only (UMAP maps are then fitted by the app)")
    t.add_argument("--no-measures", action="store_true",
                   help="skip measures.json (density distances, how well each class's samples are read, the "
                        "app's default interpolation pair and trajectory targets; engine/measures.py)")
    t.add_argument("--measures-only", action="store_true",
                   help="keep the atlas in --out (built from these checkpoints) and write only measures.json")
    t.add_argument("--seed", type=seed_value, default=0)
    t.add_argument("--device", default="auto")
    t.add_argument("--quiet", action="store_true", help="no progress bars")

    r = subparsers.add_parser("report", help="measure the paper's claims; write figures and report.json",
                              description="Denoising PSNR, class separation, density distance, bifurcation and "
                              "interpolation on a feature-guided model and its mixture baseline. Writes "
                              "OUT/*.html (offline), OUT/*.png, OUT/report.json. See docs/analysis.md.")
    r.add_argument("--checkpoint", default=None, help="feature-guided model (default: assets/feature_guided)")
    r.add_argument("--mixture", default=None, help="mixture model (default: assets/mixture with the default checkpoint)")
    r.add_argument("--out", required=True, help="output folder")
    r.add_argument("--atlas", default=None,
                   help=f"atlas folder to reuse if built from these checkpoints (default {DEFAULT_ATLAS}); "
                   "otherwise a new one is built into OUT/atlas")
    r.add_argument("--pair", nargs=2, metavar=("A", "B"), default=None,
                   help="classes of the bifurcation and interpolation (default: the first two classes)")
    d = ReportSettings()
    r.add_argument("--psnr-per-class", type=whole_number(), default=d.psnr_per_class,
                   help=f"held-out images per class for the PSNR curves (default {d.psnr_per_class})")
    r.add_argument("--separation-per-class", type=whole_number(), default=d.separation_per_class,
                   help=f"held-out images per class for fig 4 (default {d.separation_per_class})")
    r.add_argument("--separation-sigma", type=_sigma, default=d.separation_sigma,
                   help="noise on the images whose phi fig 4 compares (default 0: clean images, as in "
                        "the paper's fig 4)")
    r.add_argument("--density-per-class", type=whole_number(), default=d.density_per_class,
                   help=f"images per class per sigma of the density distance (default {d.density_per_class})")
    r.add_argument("--density-sigmas", type=whole_number(), default=d.density_sigmas,
                   help=f"sigma values of the density-distance integral (default {d.density_sigmas})")
    r.add_argument("--samples", type=whole_number(), default=d.samples,
                   help=f"samples per run for bifurcation and interpolation (default {d.samples})")
    r.add_argument("--alphas", type=_floats, default=None,
                   help="interpolation weights (default " + ",".join(f"{v:g}" for v in ALPHAS) + ")")
    r.add_argument("--atlas-per-class", type=whole_number(), default=d.atlas_per_class)
    r.add_argument("--umap", action="store_true", help="also fit UMAPs if the atlas has to be built (~2 min)")
    r.add_argument("--max-steps", type=whole_number(), default=None,
                   help="sampler step limit (default: the sampler's, 140)")
    r.add_argument("--conditional", default=None,
                   help="class-conditional model on the same data, for the comparison of methods (default: "
                        "assets/conditional with the default checkpoint)")
    r.add_argument("--no-methods", action="store_true", help="skip the comparison of methods")
    r.add_argument("--methods-per-class", type=whole_number(), default=d.methods_per_class,
                   help=f"samples per class and method in the comparison (default {d.methods_per_class})")
    r.add_argument("--cfg-weights", type=_floats, default=d.cfg_weights,
                   help="classifier-free guidance weights compared (default "
                        + ",".join(f"{v:g}" for v in d.cfg_weights) + ")")
    r.add_argument("--ovals", default=None,
                   help="folder with feature_guided/ and conditional/ models trained on ovals-holdout, for the "
                        "interpolation against the held-out class (default: assets/ovals with the default checkpoint)")
    r.add_argument("--no-ovals", action="store_true", help="skip the interpolation against the held-out class")
    r.add_argument("--ground-truth-samples", type=whole_number(), default=d.ground_truth_samples,
                   help=f"samples per alpha and method on ovals (default {d.ground_truth_samples})")
    r.add_argument("--no-png", action="store_true", help="HTML and JSON only")
    r.add_argument("--seed", type=seed_value, default=0)
    r.add_argument("--device", default="auto")
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    return {"atlas": cmd_atlas, "report": cmd_report}
