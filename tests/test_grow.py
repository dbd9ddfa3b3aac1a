"""Growing a trained network wider keeps what it computes, and training then uses the new room."""
import dataclasses

import pytest
import torch

from engine.checkpoint import read_file
from engine.config import ModelConfig
from engine.errors import EngineError
from engine.grow import new_channel_use, widen
from engine.network import UNet
from engine.train import train

from conftest import tiny_config


def _trained_like(config: ModelConfig) -> UNet:
    """A network whose every weight and running deviation is non-trivial (not its init)."""
    torch.manual_seed(1)
    model = UNet(config)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
        model.train()
        model(torch.rand(8, config.channels, config.size, config.size))
    return model.eval()


def _old_coordinates(old: UNet, new: UNet) -> torch.Tensor:
    """Indices of the old network's phi inside the new one's (each block's first channels)."""
    return torch.cat([torch.arange(new.layout.slices[b].start, new.layout.slices[b].start + (s.stop - s.start))
                      for b, s in old.layout.slices.items()])


@pytest.mark.parametrize("channels,widths,wider", [(1, (8, 16, 32), (12, 16, 40)), (3, (4, 8), (6, 12))])
def test_widened_network_computes_the_same(channels, widths, wider):
    old_cfg = ModelConfig(channels=channels, size=16, widths=widths)
    new_cfg = dataclasses.replace(old_cfg, widths=wider)
    old = _trained_like(old_cfg)
    new = UNet(new_cfg)
    new.load_state_dict(widen(old.state_dict(), old_cfg, new_cfg))
    new.eval()
    y = torch.rand(3, channels, 16, 16) + 0.3 * torch.randn(3, channels, 16, 16)
    keep = _old_coordinates(old, new)
    with torch.no_grad():
        f_old, phi_old = old(y)
        f_new, phi_new = new(y)
        assert new.phi_dim > old.phi_dim
        assert torch.allclose(f_new, f_old, atol=1e-5)
        assert torch.allclose(phi_new[:, keep], phi_old, atol=1e-5)
        # conditioned: the new channels' targets are free, the output is the old one's
        target = torch.randn(old.phi_dim)
        wide_target = torch.randn(new.phi_dim)
        wide_target[keep] = target
        assert torch.allclose(new(y, wide_target)[0], old(y, target)[0], atol=1e-5)


def test_new_channel_use_is_zero_when_grown_and_measures_the_old_weights():
    old_cfg = ModelConfig(widths=(8, 16, 32), size=16)
    new_cfg = dataclasses.replace(old_cfg, widths=(12, 16, 40))
    old = _trained_like(old_cfg).state_dict()
    grown = widen(old, old_cfg, new_cfg)
    use = new_channel_use(grown, old_cfg, new_cfg)
    # every layer with a new input: the decoder's first convolutions, the up layers, ...
    assert {"out.weight", "mid.body.3.weight", "dec.0.body.0.weight", "up.1.weight"} <= set(use)
    assert "enc.0.body.0.weight" not in use and "mid.body.0.weight" not in use   # inputs not grown
    for key, (new_in, old_in) in use.items():
        assert new_in == 0.0
        assert old_in == pytest.approx(float(old[key].pow(2).mean().sqrt()), rel=1e-6)
    # a weight from a new channel into an old one (the up layer is stored (in, out, kh, kw))
    grown["up.1.weight"][35, 2] = 1.0
    assert new_channel_use(grown, old_cfg, new_cfg)["up.1.weight"][0] > 0


def test_widen_refuses_to_shrink_or_change_depth():
    cfg = ModelConfig(widths=(8, 16, 32), size=16)
    state = UNet(cfg).state_dict()
    for widths in [(4, 16, 32), (8, 16, 32, 64)]:
        with pytest.raises(EngineError, match="can only widen"):
            widen(state, cfg, dataclasses.replace(cfg, widths=widths))


def test_train_init_with_widths_grows_then_trains_the_new_channels(tiny_fg_dir, tmp_path):
    start = read_file(tiny_fg_dir)
    out = train(tiny_config(steps=3), tmp_path / "wide", log=lambda *a: None, progress=False,
                init=tiny_fg_dir, widths=(12, 20))
    state = read_file(out)
    assert list(state["train_config"]["model"]["widths"]) == [12, 20]
    assert state["info"]["init"]["step"] == start["step"]
    # the zero weights from new channels into old ones have started to move
    w = state["model"]["out.weight"]              # (channels, dec1 width, 3, 3); 8 old channels of 12
    assert w[:, 8:].abs().max() > 0
    # and the centroid table has the wider phi
    assert state["centroids"]["table"].shape[-1] == UNet(ModelConfig(**state["train_config"]["model"])).phi_dim
    with pytest.raises(EngineError, match="can only widen"):
        train(tiny_config(steps=1), tmp_path / "narrow", log=lambda *a: None, progress=False,
              init=tiny_fg_dir, widths=(4, 8))


def test_model_card_says_where_a_run_was_grown(tiny_fg_dir, tmp_path):
    from engine.checkpoint import load_checkpoint
    from engine.evaluate import model_card
    train(tiny_config(steps=2), tmp_path / "wide", log=lambda *a: None, progress=False,
          init=tiny_fg_dir, widths=(12, 20))
    ckpt = load_checkpoint(tmp_path / "wide", device="cpu")
    report = {"classifier_test_accuracy": 1.0, "samples_per_class": 1, "mean_class_accuracy": 1.0,
              "min_class_accuracy": 1.0, "class_accuracy": {}, "diversity_ratio": 1.0, "contrast_ratio": 1.0,
              "memorisation_ratio": 1.0, "nfe_per_sample": 1.0, "sampler": {},
              "psnr": {"sigma": [1.0], "conditional": [20.0], "mixture": []}}
    card = model_card(ckpt, None, report)
    assert "(channel widths 12,20)" in card
    assert "grown from widths 8,16 to 12,20 after it" in card
    # the whole training counts: this run's 2 steps and the 40 of the run it started from
    start = read_file(tiny_fg_dir)
    assert [r["step"] for r in ckpt.lineage] == [start["step"]] and ckpt.total_steps == 2 + start["step"]
    assert f"{ckpt.total_steps} steps" in card
    from app import figures, text
    assert f"trained {ckpt.total_steps:,} steps (2 in its last run, fine-tuned from 1 earlier run)" in \
        text.model_card(ckpt)
    assert "channel widths (12, 20) (grown from (8, 16) during training)" in text.model_card(ckpt)
    assert "grown" not in text.model_card(load_checkpoint(tiny_fg_dir, device="cpu"))
    fig = figures.loss_figure([(1, 0.1), (2, 0.09)], offset=ckpt.total_steps - ckpt.step)
    assert list(fig.data[0].x) == [start["step"] + 1, start["step"] + 2]
