"""`python -m engine report` and `python -m engine atlas` end to end on the tiny models."""
from __future__ import annotations

import argparse
import io
import json
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import engine.classifier
import engine.report
from engine import figures as F
from engine.atlas import Atlas
from engine.cli import main
from engine.claims import check_bars
from engine.export import plain
from engine.report import register

REQUIRED = {"psnr_gain_db", "separation", "density_vs_centroid_pearson", "density_vs_centroid_spearman",
            "bifurcation_sigma", "interpolation", "bars"}


def quick_load_classifier(ckpt, progress=True):
    """The report's classifier, trained for a few steps instead of the full 1500."""
    key = engine.classifier._key(ckpt.train_config)
    return engine.classifier.train_classifier(key, steps=5, batch=16, progress=False)


def test_register_adds_both_commands():
    sub = argparse.ArgumentParser().add_subparsers(dest="command")
    handlers = register(sub)
    assert set(handlers) == {"atlas", "report"} and all(callable(h) for h in handlers.values())


@dataclass
class Run:
    out: Path
    report: dict          # report.json
    figures: dict         # name -> the plotly figure the report wrote
    printed: dict         # the command's last line of output


@pytest.fixture(scope="module")
def report_run(tmp_path_factory, tiny_fg_dir, tiny_mixture_dir):
    """`python -m engine report` once on the tiny pair, keeping the figures it writes."""
    out = tmp_path_factory.mktemp("report") / "report"
    figures = {}
    write_html = engine.report.write_html

    def keep(figs, folder):
        figures.update(figs)
        return write_html(figs, folder)
    with pytest.MonkeyPatch.context() as mp, redirect_stdout(io.StringIO()) as stdout:
        mp.setattr(engine.classifier, "load_classifier", quick_load_classifier)
        mp.setattr(engine.report, "write_html", keep)
        code = main(["report", "--checkpoint", str(tiny_fg_dir), "--mixture", str(tiny_mixture_dir),
                     "--out", str(out), "--atlas", str(out.parent / "no_atlas"), "--psnr-per-class", "2",
                     "--separation-per-class", "3", "--separation-sigma", "0.5", "--density-per-class", "2",
                     "--density-sigmas", "3", "--samples", "2", "--alphas", "0,0.5,1", "--atlas-per-class", "3",
                     "--max-steps", "20", "--quiet"])
    assert code == 0
    return Run(out, json.loads((out / "report.json").read_text()), figures,
               json.loads(stdout.getvalue().strip().splitlines()[-1]))


def test_report_end_to_end(report_run):
    out, report = report_run.out, report_run.report
    assert REQUIRED <= set(report)
    assert set(report["psnr_gain_db"]) == {"0.025", "0.05", "0.1", "0.2", "0.5", "1"}
    assert set(report["separation"]["mid"]) == {"feature_guided", "mixture"}
    assert report["separation_sigma"] == 0.5
    assert set(report["interpolation"]) == {"0", "0.5", "1"}
    assert set(report["interpolation"]["1"]) == {"brick", "grass"}
    assert {"density_vs_centroid_pearson", "separation_mid", "psnr_gain", "wrong_conditioning",
            "bifurcation_sigma", "interpolation_spearman"} == set(report["bars"])
    assert all(isinstance(b["pass"], bool) for b in report["bars"].values())
    # every figure as an HTML page that loads plotly.js from beside it (offline), never a CDN
    assert (out / "plotly.min.js").stat().st_size > 1_000_000
    pages = sorted(p.name for p in out.glob("*.html"))
    assert {"fig1_bifurcation.html", "fig2_denoising_sigma_1.html", "fig2_denoising_sigma_0.5.html",
            "fig3_psnr.html", "fig4_separation.html", "fig5_density_distance.html", "interpolation.html",
            "atlas_feature_guided_mid.html", "atlas_mixture_mid.html", "index.html"} == set(pages)
    assert {f"{name}.html" for name in report_run.figures} | {"index.html"} == set(pages)
    for page in pages:
        text = (out / page).read_text()
        assert "cdn.plot.ly" not in text and "https://cdn" not in text
    assert 'src="plotly.min.js"' in (out / "fig3_psnr.html").read_text()
    # PNG when a browser is there, each the size of its figure; otherwise said so, and HTML + JSON
    # are still complete
    if report["png"] == "written":
        for name, fig in report_run.figures.items():
            with Image.open(out / f"{name}.png") as png:
                assert png.size == (fig.layout.width or 700, fig.layout.height or 500), name
    else:
        assert report["png"].startswith("skipped")
    # the report built its own atlas (none matched) and saved it
    assert Atlas.load(out / "atlas").models == ["feature_guided", "mixture"]
    printed = report_run.printed
    assert printed["out"] == str(out)
    assert printed["bars"] == {k: v["pass"] for k, v in report["bars"].items()}
    assert printed["bifurcation_sigma"] == report["bifurcation_sigma"]


# ----------------------------------------------------------------------------- figures against report.json

def trace(fig, name: str):
    """The one trace of `fig` called `name`."""
    found = [t for t in fig.data if t.name == name]
    assert len(found) == 1, (name, [t.name for t in fig.data])
    return found[0]


def axis_title(fig, t, axis: str) -> str:
    """The title of the x or y axis that trace `t` is drawn on."""
    ref = getattr(t, f"{axis}axis") or axis             # "x", "x2", ...
    return fig.layout[f"{axis}axis{ref[1:]}"].title.text


def same(got, want) -> None:
    """Figure data equal to report.json's numbers (null there: NaN here)."""
    want = np.array([np.nan if v is None else v for v in want], dtype=float)
    np.testing.assert_allclose(np.asarray(got, dtype=float), want, rtol=1e-6, equal_nan=True)


def test_psnr_figure_draws_each_curve_of_report_json_under_its_name(report_run):
    fig, psnr = report_run.figures["fig3_psnr"], report_run.report["psnr"]
    assert not np.allclose(psnr["correct"], psnr["wrong"])      # else swapping them could not be seen
    for name, key in [("correct conditioning", "correct"), ("wrong conditioning", "wrong"),
                      ("mixture", "mixture"), ("noisy input", "noisy")]:
        t = trace(fig, name)
        same(t.x, psnr["sigma"])
        same(t.y, psnr[key])
        same(t.error_y.array, psnr["stderr"][key])
        assert (axis_title(fig, t, "x"), axis_title(fig, t, "y")) == ("sigma", "PSNR (dB)")
    sigmas = [f"{s:g}" for s in psnr["sigma"]]
    for name, key in [("correct - mixture", "psnr_gain_db"), ("wrong - mixture", "wrong_minus_mixture_db")]:
        t = trace(fig, name)
        same(t.x, psnr["sigma"])
        same(t.y, [report_run.report[key][s] for s in sigmas])
        assert (axis_title(fig, t, "x"), axis_title(fig, t, "y")) == ("sigma", "dB")
    assert fig.layout.xaxis.type == fig.layout.xaxis2.type == "log"
    assert f"({psnr['images']} held-out images per sigma)" in fig.layout.title.text


def test_density_figure_puts_centroid_distance_across_and_density_distance_up(report_run):
    fig, report = report_run.figures["fig5_density_distance"], report_run.report
    d = report["density"]
    points = fig.data[0]
    same(points.x, d["centroid_d2"])
    same(points.y, d["distance"])
    assert list(points.text) == [f"{a} / {b}" for a, b in d["pairs"]]
    assert axis_title(fig, points, "x") == (f"||phibar_c - phibar_c'||\u00b2 (blocks {', '.join(d['centroid_blocks'])}, "
                                            f"sigma {d['reference_sigma']:g})")
    assert axis_title(fig, points, "y") == "density distance (symmetrised KL estimate)"
    # the 3 closest pairs (density distance) in red, the 3 most distant in blue
    order = np.argsort(d["distance"])
    colours = np.array(points.marker.color)
    assert set(colours[order[:3]]) == {"#d62728"} and set(colours[order[-3:]]) == {"#1f77b4"}
    assert set(colours[order[3:-3]]) <= {"#7f7f7f"}
    line = trace(fig, "least-squares line")
    slope, icpt = np.polyfit(d["centroid_d2"], d["distance"], 1)
    same(line.x, [min(d["centroid_d2"]), max(d["centroid_d2"])])
    same(line.y, [slope * x + icpt for x in line.x])
    assert f"Pearson {report['density_vs_centroid_pearson']:.3f}<br>" \
           f"Spearman {report['density_vs_centroid_spearman']:.3f}" in fig.layout.annotations[-1].text
    by_sigma = d["by_sigma"]
    local = trace(fig, "Pearson(integrand, centroid d\u00b2 at sigma)")
    same(local.x, by_sigma["sigma"])
    same(local.y, by_sigma["pearson_integrand_vs_centroid_d2"])
    share = trace(fig, "share of the density distance")
    same(share.x, by_sigma["sigma"])
    same(share.y, by_sigma["share_of_distance"])
    assert axis_title(fig, local, "x") == axis_title(fig, share, "x") == "sigma"


def test_separation_figure_draws_each_models_separation_per_layer(report_run):
    fig, report = report_run.figures["fig4_separation"], report_run.report
    layers = list(report["separation"])
    for model, name in [("feature_guided", "feature-guided"), ("mixture", "mixture")]:
        t = trace(fig, name)
        assert list(t.x) == layers
        same(t.y, [report["separation"][layer][model] for layer in layers])
        assert axis_title(fig, t, "y") == "centroid distance\u00b2 / spread"
    assert fig.layout.title.text.endswith(f"(feature-guided): {report['best_separation_layer']['feature_guided']}")
    assert f"sigma = {report['separation_sigma']:g}" in fig.layout.title.text
    assert [a.text for a in fig.layout.annotations][:2] == ["feature-guided, layer mid", "mixture, layer mid"]


def test_bifurcation_figure_draws_both_distances_and_the_separation_sigma(report_run):
    fig, report = report_run.figures["fig1_bifurcation"], report_run.report
    bif = report["bifurcation"]
    pixels = trace(fig, "||y_a - y_b|| / sqrt(N) (pixels)")
    phi = trace(fig, "||phi(y_a) - phi(y_b)||")
    same(pixels.y[-1:], [bif["final_distance_pixels"]])
    same(phi.y[-1:], [bif["final_distance_phi"]])
    assert axis_title(fig, pixels, "y") == "pixel distance (RMS)" and axis_title(fig, phi, "y") == "phi distance"
    assert axis_title(fig, pixels, "x") == "sigma (falls to the right)" and fig.layout.xaxis.autorange == "reversed"
    sigma = report["bifurcation_sigma"]
    if sigma is not None:                                  # null: the trajectories never parted
        line = trace(fig, f"separation sigma {sigma:.3g}")
        same(line.x, [sigma, sigma])
    else:
        assert not any((t.name or "").startswith("separation sigma") for t in fig.data)
    assert f"separate at sigma = {sigma if sigma is not None else float('nan'):.3g} " \
           f"(phi: {bif['bifurcation_sigma_phi'] if bif['bifurcation_sigma_phi'] is not None else float('nan'):.3g})" \
           in fig.layout.title.text
    assert fig.layout.annotations[0].text == f"trajectories under '{bif['a']}' and '{bif['b']}' (same noise)"


def test_interpolation_figure_draws_each_class_probability_along_alpha(report_run):
    fig, report = report_run.figures["interpolation"], report_run.report
    a, b = report["interpolation_pair"]
    alphas = list(report["interpolation"])
    for cls in (a, b):
        t = trace(fig, f"P({cls})")
        same(t.x, [float(al) for al in alphas])
        same(t.y, [report["interpolation"][al][cls] for al in alphas])
        assert (axis_title(fig, t, "x"), axis_title(fig, t, "y")) == ("alpha", "mean probability")
    assert f"Spearman of P({b}) with alpha: {report['interpolation_spearman']:.2f}" in fig.layout.title.text


def test_denoising_grids_label_each_cell_with_its_psnr_in_report_json(report_run):
    for grid in report_run.report["denoising_grid"]:
        fig = report_run.figures[f"fig2_denoising_sigma_{grid['sigma']:g}"]
        cells = [a for a in fig.layout.annotations if a.text.endswith(" dB")]
        want = []
        for i, row in enumerate(grid["psnr"]):
            want += [(f"{p:.1f} dB", "#d62728" if i == j else "#555") for j, p in enumerate(row)]
            want.append((f"{grid['psnr_mixture'][i]:.1f} dB", "#ff7f0e"))
        assert [(a.text, a.font.color) for a in cells] == want
        names = [a.text for a in fig.layout.annotations if a.xanchor == "right"]
        assert names == grid["rows"]
        assert fig.layout.title.text.startswith(f"Denoising at sigma = {grid['sigma']:g}:")


def test_atlas_figures_draw_every_point_of_the_atlas(report_run):
    atlas = report_run.report["atlas"]
    for model in atlas["models"]:
        fig = report_run.figures[f"atlas_{model}_mid"]
        points = [t for t in fig.data if t.mode == "markers" and t.showlegend is not False]
        assert sum(len(t.x) for t in points) == atlas["points"]
        assert f"{F.MODEL_NAMES[model]} model, layer mid, sigma {atlas['sigmas'][0]:g}" in fig.layout.title.text


# ----------------------------------------------------------------------------- the bars, either side of each rule

def results(pearson=0.9, fg_mid=2.0, mixture_mid=1.0, gain=(0.5, 1.0, 2.0), wrong=-1.0, bifurcation=0.5,
            spearman=0.95, sigmas=(0.1, 0.5, 1.0)):
    """The five measurements check_bars reads, with the numbers it judges; every bar holds by default.
    gain: the correct-minus-mixture dB at sigma 0.1, 0.5 and 1.0; wrong: wrong-minus-mixture at 1.0."""
    from engine.denoising import DenoisingResult
    from engine.separation import SeparationResult
    mixture = np.zeros(len(sigmas))
    correct = np.array([dict(zip((0.1, 0.5, 1.0), gain)).get(s, 0.0) for s in sigmas])
    wrongs = np.array([wrong if s == 1.0 else -5.0 for s in sigmas])
    zeros = {k: mixture for k in ("correct", "wrong", "mixture", "noisy")}
    den = DenoisingResult(sigmas=np.array(sigmas), psnr_correct=correct, psnr_wrong=wrongs, psnr_mixture=mixture,
                          psnr_noisy=mixture - 3, stderr=zeros, n_images=4)
    sep = SeparationResult(sigma=0.0, layers=["mid", "dec1"], models=["feature_guided", "mixture"],
                           pairs=np.zeros((1, 2), int), pair_d2={}, pair_spread={},
                           separation={"feature_guided": np.array([fg_mid, 9.0]),
                                       "mixture": np.array([mixture_mid, 0.0])})
    dens = SimpleNamespace(pearson=pearson)
    bif = SimpleNamespace(bifurcation_sigma=bifurcation, sigma_L=0.01, sigma_0=1.0)
    interp = SimpleNamespace(spearman_b=spearman, b="grass")
    return den, sep, dens, bif, interp


def verdicts(**kw) -> dict[str, bool]:
    return {k: v["pass"] for k, v in check_bars(*results(**kw)).items()}


EPS = 1e-6


@pytest.mark.parametrize("bar, holds, fails", [
    ("density_vs_centroid_pearson", dict(pearson=0.8), dict(pearson=0.8 - EPS)),
    ("separation_mid", dict(fg_mid=1.0 + EPS, mixture_mid=1.0), dict(fg_mid=1.0, mixture_mid=1.0)),
    ("psnr_gain", dict(gain=(0.0, EPS, 2.0)), dict(gain=(0.0, 0.0, 2.0))),                 # > 0 at sigma 0.5
    ("psnr_gain", dict(gain=(-1.0, 1.0, EPS)), dict(gain=(-1.0, 1.0, 0.0))),               # > 0 at sigma 1.0
    ("psnr_gain", dict(gain=(1.0, 1.0, 1.0 + EPS)), dict(gain=(1.0, 1.0, 1.0))),           # larger at 1 than 0.1
    ("wrong_conditioning", dict(wrong=-EPS), dict(wrong=0.0)),
    ("bifurcation_sigma", dict(bifurcation=0.01 + EPS), dict(bifurcation=0.01)),           # above sigma_L
    ("bifurcation_sigma", dict(bifurcation=1.0 - EPS), dict(bifurcation=1.0)),             # below sigma_0
    ("bifurcation_sigma", dict(bifurcation=0.5), dict(bifurcation=float("nan"))),          # never parted
    ("interpolation_spearman", dict(spearman=0.9), dict(spearman=0.9 - EPS)),
])
def test_each_bar_holds_just_inside_its_threshold_and_fails_just_outside(bar, holds, fails):
    inside, outside = verdicts(**holds), verdicts(**fails)
    assert inside[bar] is True and outside[bar] is False
    # the other bars do not move
    assert {k: v for k, v in inside.items() if k != bar} == {k: v for k, v in outside.items() if k != bar}


def test_bars_carry_their_measured_values_and_skip_what_was_not_measured():
    bars = check_bars(*results(gain=(0.25, 0.5, 0.75), wrong=-0.125, pearson=0.8125, spearman=0.9375))
    assert bars["psnr_gain"]["value"] == {"0.1": 0.25, "0.5": 0.5, "1": 0.75}
    assert bars["wrong_conditioning"]["value"] == -0.125
    assert bars["density_vs_centroid_pearson"]["value"] == 0.8125
    assert bars["separation_mid"]["value"] == {"feature_guided": 2.0, "mixture": 1.0}
    assert bars["interpolation_spearman"]["rule"] == "Spearman(P(grass), alpha) >= 0.9"
    assert all(b["pass"] for b in bars.values())
    # PSNR not measured at 0.1, 0.5 and 1.0, or no mid layer: those bars are absent, not failed
    den, sep, dens, bif, interp = results(sigmas=(0.2, 0.5, 1.0))
    sep.layers = ["enc0", "dec1"]
    assert set(check_bars(den, sep, dens, bif, interp)) == {"density_vs_centroid_pearson", "bifurcation_sigma",
                                                            "interpolation_spearman"}


def test_atlas_command(tmp_path, tiny_fg_dir, tiny_mixture_dir, capsys):
    out = tmp_path / "atlas"
    assert main(["atlas", "--checkpoint", str(tiny_fg_dir), "--mixture", str(tiny_mixture_dir), "--out", str(out),
                 "--per-class", "3", "--sigmas", "0.1,0.5", "--no-umap", "--quiet"]) == 0
    info = json.loads(capsys.readouterr().out)
    atlas = Atlas.load(out)
    assert atlas.sigmas == [0.1, 0.5] == info["sigmas"] and len(atlas.labels) == 3 * len(atlas.classes)
    assert info["points"] == len(atlas.labels) and info["models"] == atlas.models == ["feature_guided", "mixture"]
    assert info["layers"] == atlas.layers and info["umap_fitted"] is False and not atlas.umap_ready(
        "feature_guided", "mid", 0.1)
    assert info["bytes"] == sum(f.stat().st_size for f in out.iterdir() if f.is_file()) < 1_000_000
    # the measures the app takes its defaults from, drawn from this very model
    from engine.checkpoint import load_checkpoint
    from engine.measures import Measures
    m = Measures.load(out)
    assert m.matches(load_checkpoint(tiny_fg_dir, device="cpu")) and m.classes == atlas.classes
    assert info["measures"]["pair"] == m.pair and len(set(m.pair)) == 2 and set(m.pair) <= set(atlas.classes)
    assert info["measures"]["targets"] == m.targets and set(m.targets) <= set(atlas.classes)


def test_user_mistakes_exit_2(tmp_path, tiny_fg_dir, tiny_mixture_dir, capsys):
    assert main(["report", "--checkpoint", str(tiny_fg_dir), "--out", str(tmp_path / "r")]) == 2
    assert "--mixture" in capsys.readouterr().err
    assert main(["report", "--checkpoint", str(tiny_fg_dir), "--mixture", str(tiny_fg_dir),
                 "--out", str(tmp_path / "r")]) == 2
    assert "mixture model" in capsys.readouterr().err
    assert main(["atlas", "--checkpoint", str(tmp_path / "missing"), "--out", str(tmp_path / "a")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["report", "--checkpoint", str(tiny_fg_dir), "--mixture", str(tiny_mixture_dir),
                 "--out", str(tmp_path / "r"), "--pair", "brick", "nosuch"]) == 2
    assert "unknown class" in capsys.readouterr().err


def test_plain_makes_json_safe_values():
    assert plain({"a": np.float32(1.5), "b": np.array([1, 2]), "c": float("nan"), 3: (np.int64(4),)}) == \
        {"a": 1.5, "b": [1, 2], "c": None, "3": [4]}


def test_embedding_figure_draws_extra_points():
    from engine.atlas import Embedding
    emb = Embedding(np.random.default_rng(0).normal(size=(6, 2)), np.zeros((2, 2)), "pca")
    fig = F.embedding_figure(emb, ["a", "b"], np.array([0, 0, 0, 1, 1, 1]),
                             extra_points={"trajectory": np.arange(10.0).reshape(5, 2)})
    names = [t.name for t in fig.data]
    assert "trajectory" in names and names.count("a") == 1
    assert list(fig.data[-1].x) == [0, 2, 4, 6, 8]
