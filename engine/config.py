"""Configuration dataclasses. Every checkpoint stores them; every run prints them."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields

from .errors import EngineError

KINDS = ("feature_guided", "mixture")
PRECISIONS = ("fp32", "bf16")


@dataclass
class ModelConfig:
    """The UNet denoiser (DESIGN.md 1) and its feature vector phi (DESIGN.md 2)."""
    channels: int = 1                       # image channels: 1 (grey) or 3 (colour)
    size: int = 32                          # image side; divisible by 2 ** (len(widths) - 1)
    widths: tuple[int, ...] = (24, 48, 96)   # channels per scale; the last is the mid block
    # Blocks whose channel means form phi (DESIGN.md 2). Names: enc1.., mid, ..dec1.
    # None: every block (enc1, enc2, mid, dec2, dec1 for three scales).
    feature_blocks: tuple[str, ...] | None = None
    # Blocks whose channel means are replaced by the target (DESIGN.md 3); () = mixture model.
    # None: the mid block and every decoder block but the last (mid, dec2 for three scales). The
    # output convolution maps the last block's channel means straight to the output's mean pixel,
    # so matching it sets the denoised image's brightness from the target instead of the image;
    # every run that matched it lost to the mixture model (docs/model.md, "How we got here").
    matched_blocks: tuple[str, ...] | None = None

    def __post_init__(self):
        self.widths = tuple(self.widths)
        if self.feature_blocks is None:
            self.feature_blocks = self.block_names
        if self.matched_blocks is None:
            self.matched_blocks = self.block_names[self.block_names.index("mid"):-1]
        self.feature_blocks = tuple(self.feature_blocks)
        self.matched_blocks = tuple(self.matched_blocks)
        if self.channels not in (1, 3):
            raise EngineError(f"channels must be 1 or 3, not {self.channels}")
        if len(self.widths) < 2:
            raise EngineError("widths needs at least two scales, e.g. 32,64,128")
        if min(self.widths) < 1:
            raise EngineError(f"widths must be positive channel counts, e.g. 32,64,128; got "
                              f"{','.join(map(str, self.widths))}")
        factor = 2 ** (len(self.widths) - 1)
        if self.size % factor or self.size < factor:
            raise EngineError(f"image size {self.size} is not divisible by the downsampling factor {factor}; "
                              f"use a multiple of {factor}")
        names = set(self.block_names)
        for b in self.feature_blocks + self.matched_blocks:
            if b not in names:
                raise EngineError(f"unknown block '{b}'; blocks are {', '.join(self.block_names)}")
        if not set(self.matched_blocks) <= set(self.feature_blocks):
            raise EngineError("every matched block must also be a feature block")

    @property
    def block_names(self) -> tuple[str, ...]:
        depth = len(self.widths) - 1
        enc = tuple(f"enc{i}" for i in range(1, depth + 1))
        dec = tuple(f"dec{i}" for i in range(depth, 0, -1))
        return enc + ("mid",) + dec

    def block_width(self, name: str) -> int:
        return self.widths[-1] if name == "mid" else self.widths[int(name[3:]) - 1]

    @property
    def kind(self) -> str:
        return "feature_guided" if self.matched_blocks else "mixture"


@dataclass
class TrainConfig:
    """One training run (DESIGN.md 3)."""
    dataset: str = "textures"               # textures | ovals | a folder path
    kind: str = "feature_guided"            # feature_guided | mixture
    steps: int = 5000
    batch: int = 32
    lr: float = 2e-3
    warmup: int = 200                       # linear warm-up steps, then cosine decay to lr / 50
    sigma_max: float = 1.2                  # noise levels drawn on [0, sigma_max]
    # Loss weight per image 1 + (sigma_data / sigma)^2 (see train.py); 0: plain MSE. The shipped
    # models: 10000 plain steps, then six fine-tuning rounds (--init) with 0.05 and a closing
    # plain one (0).
    sigma_data: float = 0.0
    # Images noised below this sigma get loss weight 0 (see train.py); 0: every sigma is trained.
    # They still pass through the network, so the norms' batch statistics keep the noise law.
    loss_sigma_min: float = 0.0
    n_per_class: int | None = None          # training crops per class (None: dataset default)
    # Feature-guided only: each image is conditioned on the mean phi of `pool` same-class
    # partners at its sigma (1: a single partner, as in DESIGN.md 3). 4, the shipped models'
    # value: one partner's phi tells the network little more than the image's own (docs/model.md,
    # "How we got here"); 8 did worse. See train.py.
    pool: int = 4
    # Decay of an exponential moving average of the weights, kept beside the trained weights
    # and used for model.pt (centroids, sampling); 0: off, the final weights are used. See train.py.
    ema: float = 0.0
    seed: int = 0
    checkpoint_every: int = 250
    device: str = "auto"                    # auto | cpu | cuda
    # Scale-out (README, "Scaling out"). precision: "bf16" runs the network under bfloat16
    # autocast (CUDA only; weights, optimizer and loss stay float32). compile: torch.compile
    # the network. stream: read a folder dataset image by image (engine/stream.py) instead of
    # loading it whole, with `workers` DataLoader processes cropping on the fly.
    precision: str = "fp32"
    compile: bool = False
    stream: bool = False
    workers: int = 2
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = config_from_dict(ModelConfig, self.model)
        if self.kind not in KINDS:
            raise EngineError(f"unknown model kind '{self.kind}'; use feature_guided or mixture")
        if self.kind == "mixture":
            self.model.matched_blocks = ()
        elif not self.model.matched_blocks:
            raise EngineError("a feature-guided model needs at least one matched block")
        if not 0 <= self.ema < 1:
            raise EngineError(f"ema must be in [0, 1) (e.g. 0.999; 0: off), got {self.ema}")
        # written so that NaN fails every test
        if not 0 <= self.sigma_data < math.inf:
            raise EngineError(f"sigma_data must be a number >= 0 (0: unweighted MSE), got {self.sigma_data}")
        if not 0 < self.sigma_max < math.inf:
            raise EngineError(f"sigma_max must be a positive number (e.g. 1.2), got {self.sigma_max}")
        if not 0 <= self.loss_sigma_min < self.sigma_max:
            raise EngineError(f"loss_sigma_min must be at least 0 and below sigma_max {self.sigma_max} "
                              f"(0: train every sigma), got {self.loss_sigma_min}")
        if not 0 < self.lr < math.inf:
            raise EngineError(f"lr must be a positive number (e.g. 2e-3), got {self.lr}")
        for name in ("steps", "batch", "checkpoint_every", "pool"):
            if name == "steps" and self.steps is None:      # allowed when resuming: the run's own
                continue
            if getattr(self, name) < 1:
                raise EngineError(f"{name} must be at least 1")
        if self.precision not in PRECISIONS:
            raise EngineError(f"unknown precision '{self.precision}'; use {' or '.join(PRECISIONS)}")
        if not isinstance(self.workers, int) or self.workers < 0:
            raise EngineError(f"workers must be a whole number >= 0 (0: read in the training process), "
                              f"got {self.workers}")
        if self.kind == "feature_guided" and self.batch % self.pool:
            raise EngineError(f"batch {self.batch} must be a multiple of pool {self.pool}")

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def config_from_dict(cls, d: dict):
    """Rebuild a config dataclass, ignoring keys this version does not know."""
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in known})
