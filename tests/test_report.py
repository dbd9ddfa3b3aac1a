"""`python -m engine report` and `python -m engine atlas` end to end on the tiny models."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

import engine.classifier
from engine import figures as F
from engine.atlas import Atlas
from engine.cli import main
from engine.report import plain, register

REQUIRED = {"psnr_gain_db", "separation", "density_vs_centroid_pearson", "density_vs_centroid_spearman",
            "bifurcation_sigma", "interpolation", "bars"}


@pytest.fixture
def quick_classifier(monkeypatch):
    """The report's classifier, trained for a few steps instead of the full 1500."""
    def load(ckpt, progress=True):
        key = engine.classifier._key(ckpt.train_config)
        return engine.classifier.train_classifier(key, steps=5, batch=16, progress=False)
    monkeypatch.setattr(engine.classifier, "load_classifier", load)


def test_register_adds_both_commands():
    sub = argparse.ArgumentParser().add_subparsers(dest="command")
    handlers = register(sub)
    assert set(handlers) == {"atlas", "report"} and all(callable(h) for h in handlers.values())


def test_report_end_to_end(tmp_path, tiny_fg_dir, tiny_mixture_dir, quick_classifier, capsys):
    out = tmp_path / "report"
    code = main(["report", "--checkpoint", str(tiny_fg_dir), "--mixture", str(tiny_mixture_dir), "--out", str(out),
                 "--atlas", str(tmp_path / "no_atlas"), "--psnr-per-class", "2", "--separation-per-class", "3",
                 "--separation-sigma", "0.5",
                 "--density-per-class", "2", "--density-sigmas", "3", "--samples", "2", "--alphas", "0,0.5,1",
                 "--atlas-per-class", "3", "--max-steps", "20", "--quiet"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
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
    for page in pages:
        text = (out / page).read_text()
        assert "cdn.plot.ly" not in text and "https://cdn" not in text
    assert 'src="plotly.min.js"' in (out / "fig3_psnr.html").read_text()
    # PNG when a browser is there; otherwise said so, and HTML + JSON are still complete
    if report["png"] == "written":
        assert all((out / p.replace(".html", ".png")).is_file() for p in pages if p != "index.html")
    else:
        assert report["png"].startswith("skipped")
    # the report built its own atlas (none matched) and saved it
    assert Atlas.load(out / "atlas").models == ["feature_guided", "mixture"]
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["out"] == str(out) and set(printed["bars"]) == set(report["bars"])


def test_atlas_command(tmp_path, tiny_fg_dir, tiny_mixture_dir, capsys):
    out = tmp_path / "atlas"
    assert main(["atlas", "--checkpoint", str(tiny_fg_dir), "--mixture", str(tiny_mixture_dir), "--out", str(out),
                 "--per-class", "3", "--sigmas", "0.1,0.5", "--no-umap", "--quiet"]) == 0
    info = json.loads(capsys.readouterr().out)
    atlas = Atlas.load(out)
    assert atlas.sigmas == [0.1, 0.5] == info["sigmas"] and len(atlas.labels) == 3 * len(atlas.classes)
    assert info["bytes"] < 1_000_000


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
