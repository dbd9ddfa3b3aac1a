"""Grow a trained UNet wider without changing what it computes (Net2Net, Chen et al. 2016).

Why: a recipe can flatten on a narrow network while a new network trained from scratch would have
to repeat hours of CPU training to catch up. Growing keeps everything learnt and adds room.

How: every tensor of the wider network is the old one embedded in a fresh initialisation of the
new shape, with one rule - the weights *from* a new channel *into* an old one are zero. Old
channels then receive exactly what they received before, so f(y) and the old coordinates of
phi are unchanged (with or without a target: the projection acts channel by channel); the new
channels compute from random weights but feed nothing until training moves those zeros; the zero
weights get non-zero gradients (the new activations are not zero), so that starts at once. The
norm is per channel (BiasFreeNorm), so new channels never change old channels' statistics.

What growing did for the pair shipped before the textures were re-chosen, round by round:
docs/model.md ("The models, round by round"). The zeros move slowly: long after growing, the
weights from new channels into old ones stay small beside the old weights.
"""
from __future__ import annotations

import re

import torch

from .config import ModelConfig
from .errors import EngineError
from .network import UNet


def _old_inputs(key: str, n_old: int, old: ModelConfig, new: ModelConfig) -> torch.Tensor:
    """Positions of a layer's old input channels among its new inputs: the first n_old, except
    in a decoder block's first convolution, whose input is cat([up(h), skip]), each half
    w[i] wide - there the skip half moves up by the growth of w[i]."""
    m = re.fullmatch(r"dec\.(\d+)\.body\.0\.weight", key)
    if m is None:
        return torch.arange(n_old)
    i = int(m.group(1))
    return torch.cat([torch.arange(old.widths[i]), new.widths[i] + torch.arange(old.widths[i])])


def _out_in(key: str, w: torch.Tensor) -> torch.Tensor:
    """A convolution's weights as (out, in, kh, kw), a view: ConvTranspose2d (the up layers)
    stores them as (in, out, kh, kw)."""
    return w.transpose(0, 1) if key.startswith("up.") else w


def new_channel_use(state: dict[str, torch.Tensor], old: ModelConfig,
                    new: ModelConfig) -> dict[str, tuple[float, float]]:
    """Per convolution of a grown network: the RMS of the weights from its new input channels
    into its old output channels, and of those from old inputs into old outputs.

    `widen` sets the first to zero; how far training has moved it says how much the network
    computes with the room growing gave it (docs/model.md, "How we got here")."""
    old_shapes = {k: _out_in(k, v).shape for k, v in UNet(old).state_dict().items() if v.dim() == 4}
    out = {}
    for key, (n_out, n_in, *_) in old_shapes.items():
        rows = _out_in(key, state[key])[:n_out]
        ins = _old_inputs(key, n_in, old, new)
        fresh = torch.ones(rows.shape[1], dtype=torch.bool)
        fresh[ins] = False
        if fresh.any():
            out[key] = (float(rows[:, fresh].pow(2).mean().sqrt()), float(rows[:, ins].pow(2).mean().sqrt()))
    return out


def widen(state: dict[str, torch.Tensor], old: ModelConfig, new: ModelConfig,
          seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict of a `new`-width UNet that computes what `state` (an `old` UNet) did.

    Only widths may differ, and none may shrink; the new channels start from UNet's own
    initialisation (seeded)."""
    if old.class_count:           # its class embeddings hold gains per channel of the old widths
        raise EngineError("a conditional network cannot be widened; train one at the widths wanted")
    if (len(new.widths) != len(old.widths) or any(n < o for n, o in zip(new.widths, old.widths))
            or (new.channels, new.size, new.feature_blocks, new.matched_blocks)
            != (old.channels, old.size, old.feature_blocks, old.matched_blocks)):
        raise EngineError(f"can only widen a network: widths {','.join(map(str, old.widths))} -> "
                          f"{','.join(map(str, new.widths))} must keep the number of scales and grow or stay "
                          "at every scale (and the blocks, channels and size stay)")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        fresh = UNet(new).state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in fresh.items():
        before = state[key]
        value = value.clone()
        if value.dim() == 1:                 # norm gain / running_sd, a matched block's gains w_l
            value[: before.shape[0]] = before
        elif value.dim() == 4:
            before = _out_in(key, before)
            rows = _out_in(key, value)[: before.shape[0]]     # the old output channels (a view)
            rows.zero_()                                      # from every new input: 0
            rows[:, _old_inputs(key, before.shape[1], old, new)] = before
        elif before.shape != value.shape:
            raise EngineError(f"cannot widen parameter {key} of shape {tuple(before.shape)}")
        else:
            value = before.clone()
        out[key] = value
    return out
