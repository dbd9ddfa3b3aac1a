"""The comparisons beside feature guidance: the class-conditional network and classifier-free
guidance measured alike (engine/methods.py), and interpolation on ovals checked against the
held-out class (engine/ground_truth.py), through the report's command line too."""
from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import engine.ground_truth as gt_module
from conftest import tiny_config
from engine.checkpoint import load_checkpoint
from engine.cli import main
from engine.conditional import condition, embedding
from engine.config import SamplerSettings
from engine.data import oval_images
from engine.denoising import conditioned_denoise
from engine.errors import EngineError
from engine.figures import ground_truth_figure, methods_figure
from engine.ground_truth import HELD_OUT, PAIR, GroundTruth, ground_truth
from engine.methods import compare_methods
from engine.train import train

QUIET = dict(log=lambda *a: None, progress=False)
SHORT = SamplerSettings(max_steps=10)


def trained(out, kind, **kw):
    train(tiny_config(kind, warmup=10, **kw), out, **QUIET)
    return load_checkpoint(out, device="cpu")


@pytest.fixture(scope="module")
def tiny_conditional(tmp_path_factory):
    return trained(tmp_path_factory.mktemp("cond"), "conditional", class_dropout=0.5)


@pytest.fixture(scope="module")
def ovals_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("ovals_set")
    for kind in ("feature_guided", "conditional"):
        trained(root / kind, kind, dataset="ovals-holdout")
    return root


@pytest.fixture(scope="module")
def ovals_pair(ovals_dir):
    return {k: load_checkpoint(ovals_dir / k, device="cpu") for k in ("feature_guided", "conditional")}


# ----------------------------------------------------------------------------- methods

def test_guided_denoiser_is_the_cfg_formula(tiny_conditional):
    ck = tiny_conditional
    x = torch.rand(6, 1, 16, 16)
    y = x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    labels = np.arange(6) % len(ck.classes)
    plain = conditioned_denoise(ck, y, labels, 0.3)
    guided = conditioned_denoise(ck, y, labels, 0.3, cfg=2.0)
    told = condition(ck, torch.from_numpy(labels), torch.full((6,), 0.3))
    d_c = ck.denoise(y, told)
    d_null = ck.denoise(y, embedding(ck).expand(6, -1))
    assert torch.allclose(plain, d_c, atol=1e-6)
    assert torch.allclose(guided, d_c + 2.0 * (d_c - d_null), atol=1e-5)
    assert not torch.allclose(guided, plain, atol=1e-4)


def test_every_method_measured_alike(tiny_fg, tiny_mixture, tiny_conditional):
    out = compare_methods(tiny_fg, tiny_conditional, tiny_mixture, per_class=3, weights=(2.0,), settings=SHORT,
                          log=lambda msg: None)
    rows = out["methods"]
    assert list(rows) == ["feature_guided", "conditional", "cfg_2"]
    for row in rows.values():
        assert 0 <= row["class_accuracy"] <= 1 and row["min_class_accuracy"] <= row["class_accuracy"]
        assert set(row["psnr_gain_over_mixture_db"]) == {"0.05", "0.1", "0.2", "0.5", "1.0"}
        assert set(row["denoiser_worst_gain_db"]) == {"0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1.0"}
        assert row["seconds_per_sample"] > 0 and row["kid_median"] == pytest.approx(
            float(np.median(list(row["kid_per_class"].values()))))
    # guidance runs the network twice per step; the guided denoiser is measured, not the plain one
    assert rows["cfg_2"]["nfe_per_sample"] == pytest.approx(2 * rows["conditional"]["nfe_per_sample"], rel=0.3)
    assert rows["cfg_2"]["psnr_gain_over_mixture_db"] != rows["conditional"]["psnr_gain_over_mixture_db"]
    assert set(out["real_held_out"]) == {"class_accuracy", "kid_median", "diversity_ratio", "memorisation_ratio"}
    for kind in ("feature_guided", "conditional"):
        t = out["training"][kind]
        assert t["steps"] == 40 and t["images_per_second_here"] > 0 and t["measured_precision"] == "fp32"
    fig = methods_figure(out)
    assert {tr.name for tr in fig.data if tr.type == "scatter"} == {r["label"] for r in rows.values()}


def test_methods_refuse_models_of_other_data_or_kind(tiny_fg, tiny_mixture, tiny_conditional, ovals_pair):
    with pytest.raises(EngineError, match="other data"):
        compare_methods(tiny_fg, ovals_pair["conditional"], tiny_mixture, per_class=2, settings=SHORT)
    with pytest.raises(EngineError, match="needs a conditional model.*conditional_v3"):
        compare_methods(tiny_fg, tiny_fg, tiny_mixture, per_class=2, settings=SHORT)


# ----------------------------------------------------------------------------- ground truth

def test_measures_recover_a_known_interpolation(ovals_pair, monkeypatch):
    """Samples that ARE ovals of ratio 0.5^(1 - alpha) 2^alpha (real images, known answer): the
    measures must find the ratio monotone in alpha, the midpoint on the held-out class, as near it
    as real images are, read as that class and as sharp as real ovals."""
    def exact(ck, target, n, seed, settings=None):
        ratio = 0.5 ** (1 - target.alpha) * 2.0 ** target.alpha
        x = oval_images(np.full(n, ratio), 16, np.random.default_rng(seed + 1))
        return torch.from_numpy(x), (SimpleNamespace(nfe=1),)
    monkeypatch.setattr(gt_module, "run", exact)
    truth = ground_truth({"feature_guided": ovals_pair["feature_guided"]}, n=24, alphas=(0, 0.25, 0.5, 0.75, 1))
    c = truth.curves["feature_guided"]
    assert c.spearman == pytest.approx(1.0)
    assert c.median[0] == pytest.approx(0.5, rel=0.15) and c.median[-1] == pytest.approx(2.0, rel=0.15)
    s = c.summary()
    assert s["best"]["alpha"] == 0.5 and s["midpoint"]["median_ratio"] == pytest.approx(1.0, rel=0.1)
    assert s["midpoint"]["distance_to_held_out"] < 3 * truth.real_distance + 0.05
    assert s["midpoint"]["sharpness_ratio"] == pytest.approx(1.0, rel=0.15)
    assert s["midpoint"]["read_as_held_out"] >= truth.real_read_held_out - 0.3
    assert c.read_held_out[0] < s["midpoint"]["read_as_held_out"]


def test_blank_samples_are_not_read_as_the_held_out_class(ovals_pair, monkeypatch, tmp_path):
    """A blank sample's leftover noise has ratio ~1, the held-out answer: blank samples must count
    as holding no oval, never as reaching the class."""
    def blank(ck, target, n, seed, settings=None):
        gen = torch.Generator().manual_seed(seed)
        x = 0.3 + 0.005 * torch.randn(n, 1, 16, 16, generator=gen)
        if target.alpha == 0:        # one alpha with real ovals of the first class
            x = torch.from_numpy(oval_images(np.full(n, 0.5), 16, np.random.default_rng(0)))
        return x, (SimpleNamespace(nfe=1),)
    monkeypatch.setattr(gt_module, "run", blank)
    truth = ground_truth({"feature_guided": ovals_pair["feature_guided"]}, n=8, alphas=(0, 0.5, 1))
    c = truth.curves["feature_guided"]
    assert c.oval_share == [1.0, 0.0, 0.0] and c.ratios[1] == [] and np.isinf(c.distance[1])
    assert c.best == 0 and c.summary()["midpoint"]["oval_share"] == 0.0
    back = GroundTruth.load(truth.save(tmp_path / "blank.json"))       # null in the file, inf again here
    assert np.isinf(back.curves["feature_guided"].distance[2]) and back.curves["feature_guided"].best == 0


def test_ground_truth_on_trained_ovals_pair(ovals_pair, tmp_path):
    truth = ground_truth(ovals_pair, n=3, alphas=(0, 0.5, 1), settings=SHORT)
    assert (truth.a, truth.b, truth.held_out) == (*PAIR, HELD_OUT) == ("ratio 0.5", "ratio 2", "ratio 1")
    assert truth.real_ratio_median == pytest.approx(1.0, rel=0.1)       # the measure reads real ovals right
    assert set(truth.curves) == {"feature_guided", "conditional"}
    for c in truth.curves.values():
        assert len(c.ratios) == len(c.oval_share) == 3 and -1 <= c.spearman <= 1
        assert all(len(r) == round(share * 3) for r, share in zip(c.ratios, c.oval_share))
    back = GroundTruth.load(truth.save(tmp_path / "g.json"))
    assert back.table() == json.loads(json.dumps(truth.table()))
    fig = ground_truth_figure(back, alpha=0.5, live={"conditional": [0.9, 1.1]})
    names = [tr.name for tr in fig.data if tr.name]
    assert any("feature guidance" in n for n in names) and any("these samples" in n for n in names)
    # on a log axis plotly.js places a label by log10 of its value (a line by the value itself)
    labels = {note.text: note.y for note in fig.layout.annotations if note.yref == "y"}
    assert labels["ratio 2"] == pytest.approx(np.log10(2)) and labels["ratio 0.5"] == pytest.approx(np.log10(0.5))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(EngineError, match="not a ground-truth"):
        GroundTruth.load(tmp_path / "bad.json")


def test_ground_truth_refuses_models_not_trained_on_held_out_ovals(tiny_fg):
    with pytest.raises(EngineError, match="ovals-holdout"):
        ground_truth({"feature_guided": tiny_fg}, n=2, alphas=(0, 1))


# ----------------------------------------------------------------------------- the report

def report(tmp_path, *extra):
    out = tmp_path / "report"
    with redirect_stdout(io.StringIO()) as stdout:
        try:
            code = main(["report", "--out", str(out), "--atlas", str(tmp_path / "no_atlas"), "--psnr-per-class", "2",
                         "--separation-per-class", "3", "--density-per-class", "2", "--density-sigmas", "3",
                         "--samples", "2", "--alphas", "0,0.5,1", "--atlas-per-class", "3", "--max-steps", "10",
                         "--methods-per-class", "2", "--cfg-weights", "1", "--ground-truth-samples", "2",
                         "--no-png", "--quiet", *map(str, extra)])
        except SystemExit as e:
            code = e.code
    return code, out, stdout.getvalue()


def test_report_writes_both_comparisons(tmp_path, tiny_fg_dir, tiny_mixture_dir, tiny_conditional, ovals_dir):
    code, out, printed = report(tmp_path, "--checkpoint", tiny_fg_dir, "--mixture", tiny_mixture_dir,
                                "--conditional", tiny_conditional.path, "--ovals", ovals_dir)
    assert code == 0
    summary = json.loads(printed.strip().splitlines()[-1])
    assert summary["methods"] and summary["ground_truth"] and "ground_truth_monotone" in summary["bars"]
    rep = json.loads((out / "report.json").read_text())
    assert list(rep["methods"]["methods"]) == ["feature_guided", "conditional", "cfg_1"]
    assert set(rep["ground_truth"]["methods"]) == {"feature_guided", "conditional"}
    assert {"methods.html", "ground_truth.html"} <= {p.name for p in out.glob("*.html")}
    assert json.loads((out / "methods.json").read_text()) == rep["methods"]
    assert GroundTruth.load(out / "ground_truth.json").samples == 2
    assert {"conditional", "ovals_feature_guided", "ovals_conditional"} <= set(rep["checkpoints"])


def test_report_refuses_wrong_comparison_models(tmp_path, tiny_fg_dir, tiny_mixture_dir, capsys):
    code, _, _ = report(tmp_path, "--checkpoint", tiny_fg_dir, "--mixture", tiny_mixture_dir,
                        "--conditional", tiny_fg_dir)
    assert code == 2 and "--conditional" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    code, _, _ = report(tmp_path, "--checkpoint", tiny_fg_dir, "--mixture", tiny_mixture_dir,
                        "--ovals", tmp_path / "empty", "--no-methods")
    assert code == 2 and "no feature_guided/model.pt" in capsys.readouterr().err
