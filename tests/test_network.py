import pytest
import torch

import engine.network as network
from engine.config import ModelConfig
from engine.errors import EngineError
from engine.features import FeatureLayout, channel_means, project
from engine.network import UNet


def test_project_sets_channel_means_and_keeps_the_rest():
    a = torch.randn(3, 5, 8, 8)
    target, gain = torch.randn(3, 5), torch.rand(5) + 0.5
    p = project(a, target, gain)
    assert torch.allclose(channel_means(p), gain * target, atol=1e-6)
    # an orthogonal projection: only the channel means move
    assert torch.allclose(p - channel_means(p)[..., None, None], a - channel_means(a)[..., None, None], atol=1e-6)


def test_default_matched_blocks_leave_out_the_last_decoder_block():
    assert ModelConfig(widths=(8, 16, 32), size=16).matched_blocks == ("mid", "dec2")
    assert ModelConfig(widths=(8, 16), size=16).matched_blocks == ("mid",)


def test_projection_inside_the_network_matches_the_target(monkeypatch):
    model = UNet(ModelConfig(widths=(8, 16, 32), size=16, matched_blocks=("mid", "dec2", "dec1"))).eval()
    seen = {}
    original = network.project

    def spy(a, target, gain):
        out = original(a, target, gain)
        seen[a.shape[1], a.shape[2]] = (out, target, gain)
        return out
    monkeypatch.setattr(network, "project", spy)
    with torch.no_grad():
        model.gains["mid"].data.uniform_(0.5, 1.5)
        target = torch.randn(2, model.phi_dim)
        model(torch.rand(2, 1, 16, 16), target)
    assert len(seen) == len(model.config.matched_blocks) == 3
    for out, t, gain in seen.values():
        assert torch.allclose(channel_means(out), gain * t, atol=1e-5)
    # and the slices of phi* go to the right blocks
    layout = model.layout
    assert torch.equal(seen[32, 4][1], target[:, layout.slices["mid"]])


def test_self_conditioning_with_unit_gains_is_the_plain_pass():
    model = UNet(ModelConfig(widths=(8, 16), size=16)).eval()
    y = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        plain, phi = model(y)
        guided, _ = model(y, phi)
    assert torch.allclose(plain, guided, atol=1e-5)


def test_reference_pass_equals_conditioning_on_the_reference_phi():
    model = UNet(ModelConfig(widths=(8, 16), size=16)).eval()
    y, ref = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        paired, _ = model(y, reference=ref)
        explicit, _ = model(y, model.phi(ref))
    # the reference's later-block features come from its own unprojected pass in both
    assert torch.allclose(paired, explicit, atol=1e-5)


def test_references_leave_after_the_last_matched_block():
    # matched mid only: the references are dropped there, yet the result is the same
    model = UNet(ModelConfig(widths=(8, 16, 32), size=16, matched_blocks=("mid",))).eval()
    y, ref = torch.rand(4, 1, 16, 16), torch.rand(4, 1, 16, 16)
    seen = []
    model.dec[0].register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))   # dec1
    with torch.no_grad():
        paired, phi = model(y, reference=ref, pool=2)
        target = model.phi(ref).view(2, 2, -1).mean(1).repeat_interleave(2, dim=0)
        explicit, phi_explicit = model(y, target)
    assert seen[0] == 4                       # dec1 saw the 4 images, not the 8 with references
    assert torch.allclose(paired, explicit, atol=1e-5)
    assert torch.allclose(phi, phi_explicit, atol=1e-5)


def test_pooled_reference_conditions_on_the_mean_phi_of_the_group():
    model = UNet(ModelConfig(widths=(8, 16), size=16)).eval()
    y, ref = torch.rand(4, 1, 16, 16), torch.rand(4, 1, 16, 16)
    with torch.no_grad():
        pooled, _ = model(y, reference=ref, pool=2)
        phi = model.phi(ref)
        # the matched (mid, dec1) targets are group means of the references' phi
        target = phi.view(2, 2, -1).mean(1).repeat_interleave(2, dim=0)
        explicit, _ = model(y, target)
    assert torch.allclose(pooled, explicit, atol=1e-5)
    with pytest.raises(ValueError, match="multiple"):
        model(y[:3], reference=ref[:3], pool=2)


@pytest.mark.parametrize("channels,size,widths", [(1, 32, (8, 16, 32)), (3, 24, (8, 16, 32, 64)[:3]), (3, 20, (4, 8))])
def test_any_channels_and_divisible_size(channels, size, widths):
    model = UNet(ModelConfig(channels=channels, size=size, widths=widths)).eval()
    y = torch.rand(2, channels, size, size)
    with torch.no_grad():
        f, phi = model(y)
    assert f.shape == y.shape and phi.shape == (2, sum(widths) + sum(widths[:-1]))


def test_size_not_divisible_is_refused():
    with pytest.raises(EngineError, match="divisible"):
        ModelConfig(size=30, widths=(8, 16, 32))


def test_feature_layout_slices():
    layout = FeatureLayout(("a", "b"), {"a": 3, "b": 2})
    assert layout.dim == 5 and layout.slices["b"] == slice(3, 5)
