"""The feature vector phi and the mean-matching projection (docs/method.md, "Feature vector phi" and "Projection").

phi_l(y)[c] = mean over pixels of the activation map A_l(y)[c]; phi(y) concatenates
phi_l over the feature blocks. Conditioning on a target phi* replaces, in every matched
block, the channel means by the target:

    A_l <- A_l - mean_hw(A_l) + w_l * phi*_l

the orthogonal projection of A_l onto the affine set of maps whose channel means are
w_l * phi*_l ("projected score").
"""
from __future__ import annotations

import torch


def channel_means(a: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C): phi_l, the spatial average of each channel."""
    return a.mean(dim=(2, 3))


def project(a: torch.Tensor, target: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """Replace the channel means of `a` (B, C, H, W) by gain * target (B, C)."""
    return a - a.mean(dim=(2, 3), keepdim=True) + (gain * target)[:, :, None, None]


class FeatureLayout:
    """Where each block's channels sit inside the flat phi vector."""

    def __init__(self, blocks: tuple[str, ...], widths: dict[str, int]):
        self.blocks = tuple(blocks)
        self.slices: dict[str, slice] = {}
        start = 0
        for b in self.blocks:
            self.slices[b] = slice(start, start + widths[b])
            start += widths[b]
        self.dim = start

    def split(self, phi: torch.Tensor) -> dict[str, torch.Tensor]:
        return {b: phi[..., s] for b, s in self.slices.items()}

    def __repr__(self) -> str:
        return "FeatureLayout(" + ", ".join(f"{b}:{s.stop - s.start}" for b, s in self.slices.items()) + ")"
