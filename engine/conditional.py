"""The class-conditional baseline: a UNet told the class, and classifier-free guidance
(docs/method.md, "The class-conditional baseline").

The network is engine/network.py's blind, bias-free UNet with one addition: a learned embedding
e_c per class whose entries are per-channel gains multiplying the output of every block
(UNet.forward's `scales`). A gain adds no constant, so the network stays bias-free (scaling its
input scales its output) and is never told sigma, like the feature-guided network. One more
embedding, the null class, is what an image is told when its class is dropped in training
(TrainConfig.class_dropout), so the same network also denoises unconditionally (Ho & Salimans
2022, "Classifier-free diffusion guidance").

Sampling goes through the same walk (engine/sampler.py). What the network is told for a class is
its embedding, the same at every sigma (`condition`): a class target, an interpolation
(1 - alpha) e_a + alpha e_b and a switch are the feature-guided model's targets with embeddings
in place of centroids. Classifier-free guidance is a denoiser adapter of the walk:

    D_w(y, c) = D(y, e_c) + w (D(y, e_c) - D(y, e_null))

w = 0 is the conditional network alone; written D_uncond + s (D_cond - D_uncond), s = 1 + w.
"""
from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig
from .errors import EngineError
from .features import FeatureLayout
from .network import UNet


class ConditionalUNet(UNet):
    """f(y, e): the UNet with every block's output channels multiplied by the gains e told."""

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        if config.class_count < 1:
            raise EngineError("a conditional network needs the number of classes it is told (class_count)")
        widths = {b: config.block_width(b) for b in config.block_names}
        # where each block's gains sit inside an embedding, as FeatureLayout places phi's blocks
        self.told = FeatureLayout(config.block_names, widths)
        # row c: class c's gains; the last row: the null class. All ones at the start, so every
        # class begins as the plain UNet and learns only what tells it apart.
        self.embeddings = nn.Parameter(torch.ones(config.class_count + 1, self.told.dim))

    @property
    def null(self) -> int:
        """The index of the null class (the unconditional denoiser)."""
        return self.config.class_count

    def forward(self, y: torch.Tensor, target: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Denoise y (B, C, H, W). Returns (f(y, e), phi(y, e)), phi the channel means of the
        blocks' outputs after their gains.

        target: (B, E) or (E,) embeddings told, any mix of the learned ones (Checkpoint.network's
                target, the sampler's); labels: (B,) class indices, the null index included
                (training: the gradient reaches the embedding rows); neither: the null class."""
        if labels is not None:
            gains = self.embeddings[labels]
        elif target is not None:
            gains = target.expand(len(y), -1) if target.dim() == 1 else target
        else:
            gains = self.embeddings[self.null].expand(len(y), -1)
        return super().forward(y, scales=self.told.split(gains))


def network_for(config: ModelConfig) -> UNet:
    """The network a config describes: the conditional UNet when it is told classes, else the UNet."""
    return ConditionalUNet(config) if config.class_count else UNet(config)


def drop_classes(labels: torch.Tensor, dropout: float, null: int, gen: torch.Generator) -> torch.Tensor:
    """Class dropout: each label replaced by the null class with probability `dropout`. One draw per
    image whatever `dropout` is, so the generator advances alike (a resumed run draws the same)."""
    drop = torch.rand(len(labels), generator=gen) < dropout
    return torch.where(drop, torch.full_like(labels, null), labels)


# ----------------------------------------------------------------------------- sampling

def embedding(ckpt, name: str | int | None = None) -> torch.Tensor:
    """(E,) the learned embedding of a class of a conditional checkpoint (name or index); None:
    the null class's. What the Interpolate view mixes, as it mixes a feature-guided model's centroids."""
    if ckpt.kind != "conditional":
        raise EngineError(f"{ckpt.path}: a {ckpt.kind} model has no class embeddings")
    row = ckpt.model.null if name is None else ckpt.class_index(name)
    return ckpt.model.embeddings[row].detach()


def condition(ckpt, name: str | int | torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
    """What a checkpoint's network is told for a class at sigma: the centroid phibar_c(sigma) of a
    feature-guided model (Checkpoint.centroid), the embedding e_c of a conditional one (the same at
    every sigma). `name`: a class name or index, or a (B,) tensor of indices; shaped as
    Checkpoint.centroid: (D,) for a float sigma, (B, D) for a tensor of sigmas. Stand-ins for a
    checkpoint that say no kind (tests, experiments/wiener_reference.py) are read as feature-guided."""
    if getattr(ckpt, "kind", None) != "conditional":
        return ckpt.centroid(name, sigma)
    if isinstance(name, torch.Tensor):
        return ckpt.model.embeddings.detach()[name.to(ckpt.device)]
    e = embedding(ckpt, name)
    s = torch.as_tensor(sigma)
    return e if s.dim() == 0 else e.expand(s.numel(), -1)


class ClassifierFreeGuidance:
    """The walk's denoiser for a conditional checkpoint at guidance weight w (module doc):
    (y, e) -> (D_w(y, e), phi of the conditional pass). The conditional and the null pass go
    through Checkpoint.network in one call of 2B images; `evaluations` is what the walk counts
    per call (the network evaluations of one image)."""

    def __init__(self, ckpt, w: float):
        if ckpt.kind != "conditional":
            raise EngineError(f"classifier-free guidance needs a conditional model; this is a {ckpt.kind} model")
        self.network = ckpt.network
        self.null = embedding(ckpt).to(ckpt.device)
        self.w = float(w)
        self.evaluations = 2 if self.w else 1

    def __call__(self, y: torch.Tensor, told: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if told is None or self.w == 0:
            return self.network(y, told)
        n = len(y)
        told = told.expand(n, -1) if told.dim() == 1 else told
        f, phi = self.network(torch.cat([y, y]), torch.cat([told, self.null.expand(n, -1)]))
        f_cond, f_null = f[:n], f[n:]
        return f_cond + self.w * (f_cond - f_null), phi[:n]
