"""The class-conditional baseline (engine/conditional.py): its network, class dropout, classifier-free
guidance, its checkpoints through the command line and `evaluate`, its recipes and the ovals hold-out."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import tiny_config
from engine.checkpoint import load_checkpoint, safe_load
from engine.cli import main
from engine.conditional import ClassifierFreeGuidance, ConditionalUNet, condition, drop_classes, embedding
from engine.config import ModelConfig, SamplerSettings, TrainConfig
from engine.errors import EngineError
from engine.sampler import ClassTarget, Interpolation, Unconditional, run
from engine.train import train

QUIET = dict(log=lambda *a: None, progress=False)


def tiny_conditional(out, **kw):
    # a short warm-up, so that 40 steps move the embeddings (the default warms up over 200)
    train(tiny_config("conditional", warmup=10, **kw), out, **QUIET)
    return out


@pytest.fixture(scope="module")
def cond_dir(tmp_path_factory):
    return tiny_conditional(tmp_path_factory.mktemp("tiny_cond"), class_dropout=0.5)


@pytest.fixture(scope="module")
def cond(cond_dir):
    return load_checkpoint(cond_dir, device="cpu")


def noisy_crops(n: int = 8, sigma: float = 0.3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    from engine.data import load_dataset
    x = torch.from_numpy(load_dataset("textures", "test", 16, 1, 4, 0).images[:n])
    return x, x + sigma * torch.randn(x.shape, generator=torch.Generator().manual_seed(seed))


def cli(capsys, *args):
    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out, stderr=err)


# ----------------------------------------------------------------------------- the network

def test_a_conditional_checkpoint_is_its_own_kind_told_every_class(cond):
    assert cond.kind == "conditional" and isinstance(cond.model, ConditionalUNet)
    assert cond.config.class_count == len(cond.classes) == 8
    assert cond.config.matched_blocks == () and not list(cond.model.gains)     # no projection
    assert cond.model.embeddings.shape == (9, sum(cond.config.block_width(b) for b in cond.config.block_names))
    assert all(m.bias is None for m in cond.model.modules() if isinstance(m, (torch.nn.Conv2d,
                                                                              torch.nn.ConvTranspose2d)))


def test_the_conditional_network_is_bias_free_for_every_embedding(cond):
    """Gains add no constant: f(c y, e) = c f(y, e) for c > 0, whatever e (a class's, the null
    class's, a mix), as for the feature-guided network."""
    _, y = noisy_crops()
    mixed = 0.3 * embedding(cond, 0) + 0.7 * embedding(cond, 5)
    for e in (embedding(cond, 0), embedding(cond), mixed):
        f = cond.network(y, e)[0]
        for c in (0.5, 3.0):
            torch.testing.assert_close(cond.network(c * y, e)[0], c * f, rtol=1e-5, atol=1e-6)


def test_the_class_told_changes_the_denoised_image(cond):
    _, y = noisy_crops()
    f = [cond.network(y, embedding(cond, c))[0] for c in range(3)]
    assert not torch.allclose(f[0], f[1], atol=1e-6) and not torch.allclose(f[1], f[2], atol=1e-6)
    # a (B,) tensor of classes is told per image: row i is what class i's embedding gives image i
    classes = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    per_image = cond.network(y, condition(cond, classes, torch.full((8,), 0.3)))[0]
    for i, c in enumerate(classes.tolist()):
        torch.testing.assert_close(per_image[i], f[c][i], rtol=1e-5, atol=1e-6)


def test_no_class_is_the_null_class_and_the_reference_path_is_the_model(cond):
    _, y = noisy_crops()
    assert torch.equal(cond.network(y)[0], cond.network(y, embedding(cond))[0])
    e = embedding(cond, 2)
    assert torch.equal(cond.network(y, e)[0], cond.model(y, e)[0])          # fp32: bit for bit


# ----------------------------------------------------------------------------- class dropout

def test_class_dropout_drops_its_fraction_to_the_null_class():
    labels = torch.randint(8, (20000,), generator=torch.Generator().manual_seed(0))
    dropped = drop_classes(labels, 0.25, 8, torch.Generator().manual_seed(1))
    null = dropped == 8
    assert abs(null.float().mean().item() - 0.25) < 0.015
    assert torch.equal(dropped[~null], labels[~null])
    assert torch.equal(drop_classes(labels, 0.0, 8, torch.Generator().manual_seed(1)), labels)


def test_class_dropout_trains_the_null_class_into_a_denoiser(tmp_path, cond):
    """Without dropout the null embedding is never told and stays where it started (all ones);
    with it, it is trained, and the null pass denoises: better than its input at every sigma."""
    never = load_checkpoint(tiny_conditional(tmp_path / "p0", class_dropout=0.0), device="cpu")
    assert torch.equal(embedding(never), torch.ones_like(embedding(never)))
    assert not torch.equal(embedding(never, 0), torch.ones_like(embedding(never, 0)))
    assert not torch.equal(embedding(cond), torch.ones_like(embedding(cond)))
    for sigma in (0.1, 0.3, 0.6):
        x, y = noisy_crops(sigma=sigma)
        f = cond.network(y)[0]
        assert ((f - x) ** 2).mean() < 0.8 * ((y - x) ** 2).mean(), sigma


# ----------------------------------------------------------------------------- guidance

def test_classifier_free_guidance_is_its_formula(cond):
    _, y = noisy_crops()
    e, null = embedding(cond, 3).expand(8, -1), embedding(cond)
    f_cond, phi_cond = cond.network(y, e)
    f_null = cond.network(y, null)[0]
    d0, phi0 = ClassifierFreeGuidance(cond, 0.0)(y, e)
    assert torch.equal(d0, f_cond) and torch.equal(phi0, phi_cond)          # w = 0: the network alone
    d1, phi1 = ClassifierFreeGuidance(cond, 1.0)(y, e)
    torch.testing.assert_close(d1, 2 * f_cond - f_null, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(phi1, phi_cond, rtol=1e-5, atol=1e-6)
    d3 = ClassifierFreeGuidance(cond, 3.0)(y, e)[0]
    torch.testing.assert_close(d3, d0 + 3 * (d1 - d0), rtol=1e-4, atol=1e-5)   # linear in w
    # told the null class, the conditional and unconditional passes agree: guidance changes nothing
    torch.testing.assert_close(ClassifierFreeGuidance(cond, 2.0)(y, null.expand(8, -1))[0], f_null,
                               rtol=1e-5, atol=1e-6)
    assert (ClassifierFreeGuidance(cond, 0.0).evaluations, ClassifierFreeGuidance(cond, 2.0).evaluations) == (1, 2)


def test_the_walk_counts_both_passes_and_w_zero_is_the_plain_walk(cond):
    target = ClassTarget(cond.classes[1])
    plain, (p,) = run(cond, target, n=3, seed=4)
    zero, (z,) = run(cond, target, n=3, seed=4, settings=SamplerSettings(cfg=0.0))
    assert torch.equal(plain, zero) and p.nfe == p.t
    guided, (g,) = run(cond, target, n=3, seed=4, settings=SamplerSettings(cfg=2.0))
    assert g.nfe == 2 * g.t and not torch.allclose(guided, plain)
    # the unconditional walk has no conditional pass to guide: --cfg leaves it as it is
    u, _ = run(cond, Unconditional(), n=2, seed=4)
    assert torch.equal(run(cond, Unconditional(), n=2, seed=4, settings=SamplerSettings(cfg=2.0))[0], u)


def test_interpolation_mixes_the_class_embeddings(cond):
    a, b = cond.classes[0], cond.classes[3]
    sigma = torch.tensor([0.5, 0.1])
    torch.testing.assert_close(Interpolation(a, b, 0.25).phi(cond, sigma),
                               (0.75 * embedding(cond, a) + 0.25 * embedding(cond, b)).expand(2, -1))
    assert torch.equal(run(cond, Interpolation(a, b, 0.0), n=2, seed=1)[0], run(cond, ClassTarget(a), n=2, seed=1)[0])
    mid = run(cond, Interpolation(a, b, 0.5), n=2, seed=1, settings=SamplerSettings(cfg=1.0))[0]
    assert not torch.allclose(mid, run(cond, ClassTarget(a), n=2, seed=1, settings=SamplerSettings(cfg=1.0))[0])


def test_what_a_conditional_model_cannot_be_told_is_refused(cond, tiny_fg):
    from engine.sampler import ImageTarget
    with pytest.raises(EngineError, match="classifier-free guidance"):
        run(cond, ClassTarget(cond.classes[0]), n=1, settings=SamplerSettings(guidance=1.0))
    with pytest.raises(EngineError, match="told classes, not images"):
        run(cond, ImageTarget(torch.rand(1, 1, 16, 16)), n=1)
    with pytest.raises(EngineError, match="--cfg is classifier-free guidance of a conditional model"):
        run(tiny_fg, ClassTarget(tiny_fg.classes[0]), n=1, settings=SamplerSettings(cfg=1.0))
    with pytest.raises(EngineError, match="no class embeddings"):
        embedding(tiny_fg, 0)
    # the feature-guided model is told its centroids, as before
    assert torch.equal(condition(tiny_fg, 2, 0.3), tiny_fg.centroid(2, 0.3))


# ----------------------------------------------------------------------------- checkpoints, command line

def test_a_conditional_run_resumes_and_its_checkpoint_round_trips(tmp_path, cond_dir):
    out = tmp_path / "r"

    def stop(step, mse):
        if step == 27:                      # after the checkpoint of step 20
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        train(tiny_config("conditional", warmup=10, class_dropout=0.5), out, on_step=stop, **QUIET)
    train(tiny_config("conditional", warmup=10, class_dropout=0.5), out, resume=True, **QUIET)
    whole = safe_load(cond_dir / "model.pt")["model"]
    resumed = safe_load(out / "model.pt")["model"]
    assert set(whole) == set(resumed) and "embeddings" in whole
    for k in whole:                         # the resumed run draws the same batches and drops
        torch.testing.assert_close(resumed[k], whole[k], rtol=1e-5, atol=1e-6)
    ckpt = load_checkpoint(out, device="cpu", kind=("feature_guided", "conditional"))
    assert torch.equal(ckpt.model.embeddings.detach(), resumed["embeddings"])
    with pytest.raises(EngineError, match="where a feature_guided model is needed"):
        load_checkpoint(out, device="cpu", kind="feature_guided")
    with pytest.raises(EngineError, match="cannot be widened"):
        train(tiny_config("conditional"), tmp_path / "wide", init=out, widths=(12, 16), **QUIET)


def test_the_command_line_samples_a_conditional_checkpoint(tmp_path, cond_dir, cond, tiny_fg_dir, capsys):
    a, b = cond.classes[0], cond.classes[4]
    r = cli(capsys, "sample", "--checkpoint", cond_dir, "--class", a, "--cfg", 2, "--n", 3, "--seed", 5,
            "--max-steps", 20, "--precision", "fp32", "--out", tmp_path / "c.npy")
    assert r.returncode == 0, r.stderr
    said = json.loads(r.stdout)
    assert said["sampler"]["cfg"] == 2.0 and said["nfe_per_sample"] == 2 * (said["steps"] + 1)
    want = run(cond, ClassTarget(a), n=3, seed=5, settings=SamplerSettings(cfg=2.0, max_steps=20))[0]
    assert np.array_equal(np.load(tmp_path / "c.npy"), want.numpy())
    r = cli(capsys, "sample", "--checkpoint", cond_dir, "--interpolate", a, b, "--alpha", 0.5, "--n", 2,
            "--max-steps", 20, "--precision", "fp32", "--out", tmp_path / "i.npy")
    assert r.returncode == 0, r.stderr
    want = run(cond, Interpolation(a, b, 0.5), n=2, seed=0, settings=SamplerSettings(max_steps=20))[0]
    assert np.array_equal(np.load(tmp_path / "i.npy"), want.numpy())
    r = cli(capsys, "sample", "--checkpoint", tiny_fg_dir, "--class", a, "--cfg", 1, "--out", tmp_path / "x.npy")
    assert r.returncode == 2 and r.stderr.startswith("error: --cfg is classifier-free guidance")
    assert not (tmp_path / "x.npy").exists()


def test_evaluate_measures_a_conditional_checkpoint_under_guidance(tmp_path, cond_dir, tiny_mixture_dir, capsys):
    r = cli(capsys, "evaluate", "--checkpoint", cond_dir, "--mixture", tiny_mixture_dir, "--per-class", 2,
            "--cfg", 1, "--no-timing", "--out", tmp_path / "e.json", "--card", tmp_path / "card.md")
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "e.json").read_text())
    assert report["sampler"]["cfg"] == 1.0
    assert set(report["class_accuracy"]) == set(load_checkpoint(cond_dir, device="cpu").classes)
    for name, read in report["class_readings"].items():
        assert sum(read.values()) == 2
    assert len(report["psnr"]["conditional"]) == len(report["psnr"]["mixture"]) == len(report["psnr"]["sigma"])
    assert set(report["psnr_gain_db"]) == {str(s) for s in report["psnr"]["sigma"]}
    assert report["nfe_per_sample"] >= 4          # two evaluations per step, at least two calls
    card = (tmp_path / "card.md").read_text()
    assert "## Conditional model (told the class)" in card and "class dropout 0.5" in card
    r = cli(capsys, "evaluate", "--checkpoint", tiny_mixture_dir, "--no-timing")
    assert r.returncode == 2 and "where a feature_guided or conditional model is needed" in r.stderr


# ----------------------------------------------------------------------------- recipes, ovals

def test_the_baselines_train_alike_their_feature_guided_partners():
    from engine.recipe import load_recipe

    def configs(name) -> list[TrainConfig]:
        """The TrainConfig of each stage of a recipe."""
        r = load_recipe(f"recipes/{name}.toml")
        return [r.config(stage=s) for s in r.stages] or [r.config()]
    same = ("dataset", "steps", "batch", "lr", "warmup", "schedule", "cooldown", "sigma_max", "sigma_data",
            "weight_cap", "ema", "snapshot_every", "seed")
    for fg, partner, kind in (("feature_guided_long", "conditional_long", "conditional"),
                              ("ovals_feature_guided", "ovals_conditional", "conditional"),
                              ("feature_guided_v3", "conditional_v3", "conditional"),
                              ("feature_guided_v3", "mixture_v3", "mixture")):
        fs, cs = configs(fg), configs(partner)
        assert len(fs) == len(cs), partner                   # stage by stage alike
        for f, c in zip(fs, cs):
            assert (f.kind, c.kind) == ("feature_guided", kind), partner
            assert {k: getattr(c, k) for k in same} == {k: getattr(f, k) for k in same}, partner
            assert (c.model.widths, c.model.size, c.model.channels) == (f.model.widths, f.model.size,
                                                                         f.model.channels)
            if c.kind == "conditional":
                assert 0 < c.class_dropout < 0.5
    assert configs("ovals_conditional")[0].dataset == "ovals-holdout"
    # the long runs: textures-v3, then the same network fine-tuned onto textures-v4
    assert [c.dataset for c in configs("feature_guided_v3")] == ["textures-v3", "textures-v4"]


def test_ovals_holdout_lacks_the_ratio_one_class_and_keeps_the_others_ratios():
    from engine.data import HELD_OUT_RATIO, OVAL_RATIOS, aspect_ratio, load_dataset
    held = load_dataset("ovals-holdout", "train", 32, 1, 40, 0)
    assert held.classes == [f"ratio {r:g}" for r in OVAL_RATIOS if r != HELD_OUT_RATIO] and len(held) == 160
    for c, r in enumerate(held.info["ratios"]):
        measured = np.median(aspect_ratio(held.of_class(c)))
        assert abs(np.log(measured / r)) < abs(np.log(2.0)) / 2, (r, measured)   # nearer r than any neighbour
    whole = load_dataset("ovals", "test", 32, 1, 40, 0)
    ones = whole.of_class(whole.classes.index("ratio 1"))
    assert abs(np.log(np.median(aspect_ratio(ones)))) < abs(np.log(2.0)) / 2


def test_a_class_count_is_refused_outside_a_conditional_model():
    with pytest.raises(EngineError, match="not told the class"):
        TrainConfig(kind="feature_guided", model=ModelConfig(class_count=3))
    with pytest.raises(EngineError, match="needs the number of classes"):
        ConditionalUNet(ModelConfig(widths=(8, 16), size=16))
