"""The blind, bias-free UNet denoiser (docs/method.md, "Denoiser and score") with feature outputs and projection.

Bias-free (Mohan et al. 2020): no additive constants anywhere - convolutions without bias,
a norm that divides by a standard deviation and multiplies by a learned gain but never
subtracts a mean or adds a shift. Such networks generalise across noise levels and are
not told sigma. The only additive term is the projection's w_l * phi*_l, which comes from
the (scale-covariant) features themselves.

One module serves both models: a mixture model has no matched blocks.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from .config import ModelConfig
from .features import FeatureLayout, channel_means, project
from .loss import pooled


class BiasFreeNorm(nn.Module):
    """Batch norm without mean subtraction or shift: x / std * gain.

    The std is taken over batch and pixels in training, a running average in eval, so
    in eval mode every image is processed independently of its batch."""

    def __init__(self, channels: int, momentum: float = 0.05):
        super().__init__()
        self.gain = nn.Parameter(torch.ones(channels))
        self.register_buffer("running_sd", torch.ones(channels))
        self.momentum = momentum
        # Several processes (engine/distributed.py): the batch statistics are those of the whole
        # batch, summed over the processes in the pass (and its gradient), as in SyncBatchNorm.
        # So every process divides by the same sd, running_sd stays equal everywhere without a
        # broadcast, and the run computes what a single process on the whole batch computes.
        self.sync = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            # statistics in float32 also under bf16 autocast (running_sd is float32, as in BatchNorm)
            var = _global_var(x) if self.sync else x.float().var(dim=(0, 2, 3), unbiased=False)
            sd = torch.sqrt(var + 1e-5)
            with torch.no_grad():
                self.running_sd.lerp_(sd.detach(), self.momentum)
        else:
            sd = self.running_sd
        return x * (self.gain / sd).to(x.dtype)[None, :, None, None]


def _global_var(x: torch.Tensor) -> torch.Tensor:
    """Per-channel variance over the batch of every process (differentiable all-reduce)."""
    import torch.distributed as dist
    from torch.distributed._functional_collectives import all_reduce     # with a backward: a sum again
    c = x.shape[1]
    xf = x.float()
    stats = torch.cat([xf.sum(dim=(0, 2, 3)), (xf * xf).sum(dim=(0, 2, 3)),
                       xf.new_tensor([x.shape[0] * x.shape[2] * x.shape[3]])])
    stats = all_reduce(stats, "sum", dist.group.WORLD)
    mean = stats[:c] / stats[-1]
    return (stats[c:2 * c] / stats[-1] - mean * mean).clamp_min(0)


class Block(nn.Module):
    """Two (conv 3x3 -> bias-free norm -> ReLU) layers."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False), BiasFreeNorm(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), BiasFreeNorm(cout), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class UNet(nn.Module):
    """f(y, phi*): residual denoiser; phi from the block outputs; projection in matched blocks.

    Scales: enc1 .. encD at sizes s, s/2, ..; mid at s / 2^D; decD .. dec1 back up with 2x2
    transposed convolutions and skip concatenations. Downsampling by average pooling.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        w = config.widths
        depth = len(w) - 1
        self.enc = nn.ModuleList([Block(config.channels if i == 0 else w[i - 1], w[i]) for i in range(depth)])
        self.mid = Block(w[depth - 1], w[depth])
        self.up = nn.ModuleList([nn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2, bias=False)
                                 for i in range(depth)])
        self.dec = nn.ModuleList([Block(2 * w[i], w[i]) for i in range(depth)])
        self.out = nn.Conv2d(w[0], config.channels, 3, padding=1, bias=False)
        widths = {b: config.block_width(b) for b in config.block_names}
        self.layout = FeatureLayout(config.feature_blocks, widths)
        self.matched = FeatureLayout(config.matched_blocks, widths)
        # w_l of docs/method.md, "Projection": per-channel gains of the target, initialised to 1
        self.gains = nn.ParameterDict({b: nn.Parameter(torch.ones(widths[b])) for b in config.matched_blocks})

    @property
    def phi_dim(self) -> int:
        return self.layout.dim

    def forward(self, y: torch.Tensor, target: torch.Tensor | None = None,
                reference: torch.Tensor | None = None, pool: int = 1,
                scales: dict[str, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Denoise y (B, C, H, W). Returns (f(y), phi(y)).

        target:    (B, phi_dim) or (phi_dim,) target phi*; None: no projection.
        reference: (B, C, H, W) images whose own phi, computed in the same pass (and
                   differentiable), is the target: y[i] is conditioned on phi(reference[i]).
                   This is the training pairing of docs/method.md, "Loss", in one batched pass.
        pool:      with a reference, y[i] is conditioned on the mean phi of the references in
                   its group of `pool` consecutive images (engine/loss.py, `pooled`).
        scales:    per block, (B, width) gains multiplying its output channels: how the class-
                   conditional network (engine/conditional.py) is told the class, bias-free.
        phi is read before each projection, so blocks up to the first matched block give
        the plain phi(y); later ones are the features of the guided pass.
        """
        b = y.shape[0]
        if reference is not None:
            y = torch.cat([y, reference])
        if target is not None and target.dim() == 1:
            target = target.expand(b, -1)
        targets = self.layout.split(target) if target is not None else {}
        phis: dict[str, torch.Tensor] = {}
        if reference is not None and b % pool:
            raise ValueError(f"batch {b} is not a multiple of the pool size {pool}")

        # the references are needed only up to the last matched block (their phi there is
        # the target); after it they are dropped, which saves the full-size decoder block's
        # work on them and keeps their unprojected activations out of its norm statistics
        matched = [n for n in self.config.block_names if n in self.gains]
        last_matched = matched[-1] if reference is not None and matched else None

        def visit(name: str, a: torch.Tensor) -> torch.Tensor:
            if scales is not None:
                a = a * scales[name].to(a.dtype)[:, :, None, None]
            if name in self.layout.slices:
                phis[name] = channel_means(a)
            if name in self.gains:
                if reference is not None:       # first half takes the means of the second
                    a = torch.cat([project(a[:b], pooled(phis[name][b:], pool), self.gains[name]), a[b:]])
                elif target is not None:
                    a = project(a, targets[name], self.gains[name])
            if name == last_matched:
                a = a[:b]
                skips[:] = [s[:b] for s in skips]
            return a

        skips = []
        h = y
        for i, block in enumerate(self.enc):
            h = visit(f"enc{i + 1}", block(h))
            skips.append(h)
            h = F.avg_pool2d(h, 2)
        h = visit("mid", self.mid(h))
        for i in reversed(range(len(self.dec))):
            h = self.up[i](h)
            h = visit(f"dec{i + 1}", self.dec[i](torch.cat([h, skips[i]], dim=1)))
        denoised = y[:b] - self.out(h)          # residual: the net predicts the noise
        phi = torch.cat([phis[n][:b] for n in self.layout.blocks], dim=1)
        return denoised, phi

    def phi(self, y: torch.Tensor) -> torch.Tensor:
        """phi(y) (docs/method.md, "Feature vector phi"): channel means of a plain (unprojected) pass."""
        return self.forward(y)[1]
