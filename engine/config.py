"""Configuration dataclasses. Every checkpoint stores them; every run prints them.

Each number a user may set has its limits defined once here (`Limits`, in a field's metadata), and
the library, the command line (engine/cli.py builds its flags from these fields) and the app all
check it against them.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields

from .errors import EngineError
from .precision import COMPILE, PRECISIONS

KINDS = ("feature_guided", "mixture", "conditional")
SCHEDULES = ("cosine", "constant")


@dataclass(frozen=True)
class Limits:
    """The values one number may take: from `low` to `high`, either end excluded if `open_low` /
    `open_high`; an infinite `high` is always excluded. Written so that NaN is never inside."""
    low: float
    high: float = math.inf
    open_low: bool = False
    open_high: bool = False

    def __contains__(self, v) -> bool:
        above = self.low < v if self.open_low else self.low <= v
        below = v < self.high if self.open_high or self.high == math.inf else v <= self.high
        return bool(above and below)

    def __str__(self) -> str:
        low, high = (f"{v:g}" if isinstance(v, float) else str(v) for v in (self.low, self.high))
        if self.high == math.inf:
            return f"{'above' if self.open_low else 'at least'} {low}"
        return f"in {'(' if self.open_low else '['}{low}, {high}{')' if self.open_high else ']'}"

    def check(self, name: str, value, note: str = ""):
        """value, or an EngineError naming the setting, its limits and (note) what they mean."""
        if value not in self:
            said = f" ({note})" if note else ""
            raise EngineError(f"{name + ' ' if name else ''}must be {self}{said}, got {value}")
        return value


def parse_ints(text: str) -> tuple[int, ...]:
    """'32,64,128' -> (32, 64, 128)."""
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise EngineError(f"expected comma-separated integers, got '{text}'") from None


def parse_names(text: str) -> tuple[str, ...]:
    """'mid,dec2' -> ('mid', 'dec2')."""
    return tuple(v for v in text.split(",") if v)


def setting(default, limits: Limits | None = None, help: str = "", flag: str | None = None, note: str = "",
            choices: tuple | None = None, parse=None):
    """A dataclass field with what a user may set it to (`limits`, or `choices`), its command-line
    help and flag (default: --name with dashes), what its limits mean (said in the error) and how
    the command line reads it (`parse`; default: the field's type): the one place each is
    written. None is always allowed: the field's own default rule (e.g. the dataset's count)."""
    return field(default=default, metadata={"limits": limits, "help": help, "flag": flag, "note": note,
                                            "choices": choices, "parse": parse})


def limits(cls, name: str) -> Limits:
    """The limits of one field of a config dataclass (for a slider or a flag)."""
    return next(f for f in fields(cls) if f.name == name).metadata["limits"]


def check_fields(obj) -> None:
    """Check every field of obj that has limits or choices (None passes: see `setting`)."""
    for f in fields(obj):
        value, m = getattr(obj, f.name), f.metadata
        if value is None or not m:
            continue
        if f.type.startswith("int") and (isinstance(value, bool) or not isinstance(value, int)):
            raise EngineError(f"{f.name} must be a whole number, got {value!r}")
        if m["limits"] is not None:
            m["limits"].check(f.name, value, m["note"])
        if m["choices"] is not None and value not in m["choices"]:
            raise EngineError(f"{f.name} must be {' or '.join(map(str, m['choices']))}, got {value!r}")


# The network was trained up to sigma 1.2; the walk may start higher, not without bound.
SIGMA_LIMITS = Limits(0.0, 10.0, open_low=True)
# Interpolation weights (Interpolation.alpha): far outside [0, 1] the target aims at no class at all.
ALPHA_LIMITS = Limits(-2.0, 3.0)
# Seeds: what torch generators and JSON readers take.
SEED_LIMITS = Limits(0, 2 ** 63 - 1)
# Samples per command-line `sample` run: the network sees them all in one batch.
SAMPLES_LIMITS = Limits(1, 1024)


def check_seed(seed: int) -> int:
    """The seed, once it is a whole number torch and JSON can take (the command line, the app)."""
    if seed not in SEED_LIMITS:
        raise EngineError(f"seed must be a whole number from 0 to {SEED_LIMITS.high}, got {seed}")
    return seed


# Sampler defaults chosen from measurement (docs/method.md, "Sampler defaults"; the screens: docs/model.md):
# on the shipped pair the paper's own sampler - no guidance, no epsilon scaling - beat every addition.
@dataclass
class SamplerSettings:
    """The coarse-to-fine sampler's settings (docs/method.md, "Sampler"); engine/sampler.py."""
    sigma_0: float = setting(1.0, SIGMA_LIMITS, "initial noise level", flag="--sigma0")
    sigma_L: float = setting(0.01, SIGMA_LIMITS, "final noise level", flag="--sigmaL")
    h0: float = setting(0.01, Limits(0.0, 1.0, open_low=True), "initial step size")
    beta: float = setting(0.1, Limits(0.0, 1.0, open_low=True), "noise injection")
    max_steps: int = setting(140, Limits(1), "step limit")
    guidance: float = setting(
        0.0, Limits(0.0, 4.0), "carry the target past itself, away from the mixture's centroid: "
        "phi* + g (phi* - centre) (0: the target itself, the paper's)")
    eps_scale: float = setting(
        1.0, Limits(1.0, 2.0), "epsilon scaling: divide the residual f(y) - y by this while the noise "
        "estimate is above --eps-scale-sigma (1: the paper's sampler)", note="1: no scaling")
    eps_scale_sigma: float = setting(0.1, Limits(0.0, SIGMA_LIMITS.high),
                                     "noise level below which the residual is not scaled (0: never)")
    # Classifier-free guidance of a conditional model (engine/conditional.py), in Ho & Salimans'
    # convention: w = 0 is the conditional network alone, as guidance = 0 is the paper's target.
    cfg: float = setting(0.0, Limits(0.0, 10.0), "conditional models: classifier-free guidance weight w, "
                         "D_cond + w (D_cond - D_uncond) (0: the conditional network alone)")

    def __post_init__(self):
        check_fields(self)
        if not self.sigma_L < self.sigma_0:
            raise EngineError(f"need sigma_L < sigma_0, got sigma_L={self.sigma_L}, sigma_0={self.sigma_0}")

    # the walk's ends and length: set by `sample`, kept at their defaults by `evaluate`
    ENDS = ("sigma_0", "sigma_L", "max_steps")


@dataclass
class ModelConfig:
    """The UNet denoiser and its feature vector phi (docs/method.md, "Denoiser and score", "Feature vector phi")."""
    channels: int = setting(1, help="image channels: 1 grey, 3 colour", choices=(1, 3))
    size: int = setting(32, Limits(1), "image side in pixels; divisible by 2 ** (number of scales - 1)")
    widths: tuple[int, ...] = setting(
        (24, 48, 96), help="channels per scale, the last the mid block; with --init, grow the starting network "
        "to these widths, keeping what it computes", parse=parse_ints)
    # Blocks whose channel means form phi (docs/method.md, "Feature vector phi"). Names: enc1.., mid, ..dec1.
    # None: every block (enc1, enc2, mid, dec2, dec1 for three scales).
    feature_blocks: tuple[str, ...] | None = None
    # Blocks whose channel means are replaced by the target (docs/method.md, "Projection"); () = mixture model.
    # None: the mid block and every decoder block but the last (mid, dec2 for three scales). The
    # output convolution maps the last block's channel means straight to the output's mean pixel,
    # so matching it sets the denoised image's brightness from the target instead of the image;
    # every run that matched it lost to the mixture model (docs/model.md, "How we got here").
    matched_blocks: tuple[str, ...] | None = setting(
        None, help="blocks whose channel means are projected (default: mid and the decoder blocks but the "
        "last, mid,dec2 for three scales)", flag="--matched", parse=parse_names)
    # Classes a conditional model is told through its class embeddings (engine/conditional.py), set
    # by training from the dataset; 0: a network not told the class.
    class_count: int = 0

    def __post_init__(self):
        self.widths = tuple(self.widths)
        if self.feature_blocks is None:
            self.feature_blocks = self.block_names
        if self.matched_blocks is None:
            self.matched_blocks = self.block_names[self.block_names.index("mid"):-1]
        self.feature_blocks = tuple(self.feature_blocks)
        self.matched_blocks = tuple(self.matched_blocks)
        check_fields(self)
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
        if self.class_count:
            return "conditional"
        return "feature_guided" if self.matched_blocks else "mixture"


@dataclass
class TrainConfig:
    """One training run (docs/method.md, "Loss")."""
    dataset: str = setting("textures", help="textures | ovals | a folder")
    kind: str = setting("feature_guided", help="feature_guided (projection in the matched blocks), mixture "
                        "(no projection) or conditional (told the class by learned embeddings)", choices=KINDS)
    steps: int = setting(5000, Limits(1), "optimizer steps in all (with --resume: the run's own unless given, "
                         "or a larger number to extend it)")
    batch: int = setting(32, Limits(1), "batch size")
    lr: float = setting(2e-3, Limits(0, open_low=True), "peak learning rate")
    warmup: int = setting(200, Limits(0), "linear warm-up steps, then the --schedule")
    # constant: one run yields models of several lengths - resume a kept state with a shorter --steps
    # and its own cool-down (warmup-stable-decay; Hu et al. 2024, Hagele et al. 2024)
    schedule: str = setting("cosine", help="after warm-up: cosine (decay to lr / 50 over the run) or constant "
                            "(lr until the last --cooldown steps, then linear to lr / 50)", choices=SCHEDULES)
    cooldown: int = setting(0, Limits(0), "constant schedule: steps of linear decay at the end of the run")
    sigma_max: float = setting(1.2, Limits(0, open_low=True), "largest training noise level")
    # 0, plain MSE, in the shipped recipes (each stage of recipes/*.toml says its own); a weight
    # helps as a fine-tuning stage, not from scratch (engine/loss.py).
    sigma_data: float = setting(0.0, Limits(0), "weight each image's squared error by 1 + (SIGMA_DATA / sigma)^2 "
                                "so small noise levels are trained too (engine/loss.py)", note="0: plain MSE")
    weight_cap: float = setting(0.0, Limits(0), "cap the added weight (SIGMA_DATA / sigma)^2 at this value, in the "
                                "manner of min-SNR weighting (engine/loss.py)", note="0: uncapped")
    # They still pass through the network, so the norms' batch statistics keep the noise law.
    loss_sigma_min: float = setting(0.0, Limits(0), "give images noised below this sigma no loss weight (they "
                                    "still shape the norms' statistics)", note="0: train every sigma")
    n_per_class: int | None = setting(None, Limits(1), "training images per class (default: the dataset's, "
                                      "2000 for built-ins)")
    # 4, the shipped models' value: one partner's phi tells the network little more than the image's
    # own (docs/model.md, "How we got here"); 8 did worse. See engine/loss.py.
    pool: int = setting(4, Limits(1), "feature-guided: condition each image on the mean phi of this many "
                        "same-class partners at its sigma; divides --batch (1: a single partner, the paper's)")
    # One network for the conditional and the unconditional denoiser that classifier-free guidance
    # combines (Ho & Salimans 2022): the dropped images are told the null class.
    class_dropout: float = setting(0.1, Limits(0, 1, open_high=True), "conditional: the fraction of each batch "
                                   "told the null class instead of its own, so the network also denoises "
                                   "unconditionally")
    # The average is kept beside the trained weights and used for model.pt (centroids, sampling).
    ema: float = setting(0.0, Limits(0, 1, open_high=True), "keep an exponential moving average of the weights "
                         "with this decay (e.g. 0.999) and ship it in model.pt (0: off, the final weights)")
    seed: int = setting(0, SEED_LIMITS, "random seed: initial weights, noise, batches and, unless --data-seed is "
                        "given, the dataset's crops")
    # A stage that continues a model with a fresh seed (new batches, new noise) keeps the crops it was
    # trained on, and so the classifier `evaluate` keys to them (engine/classifier.py), with data_seed.
    data_seed: int | None = setting(None, SEED_LIMITS, "seed of the dataset's crop draw (default: --seed)")
    checkpoint_every: int = setting(250, Limits(1), "steps between resumable checkpoints")
    # with the constant schedule and a weight average, models of several lengths from one run
    snapshot_every: int = setting(0, Limits(0), "also write OUT/snapshots/step_N/model.pt every this many steps "
                                  "(0: only the final model.pt)")
    device: str = setting("auto", help="auto | cpu | cuda")
    # How the arithmetic runs, not what is learned (engine/precision.py): a resumed run may change
    # them. bf16 autocast keeps weights, optimizer and loss in float32.
    precision: str = setting("auto", help="auto: bfloat16 autocast where the CPU or GPU has bfloat16 units, "
                             "else fp32", choices=PRECISIONS)
    compile: str = setting("auto", help="torch.compile the network: auto compiles bf16 runs long enough to "
                           "repay the compile", choices=COMPILE)
    stream: bool = setting(False, help="folder datasets: read and crop images on the fly instead of loading "
                           "the folder whole (engine/stream.py)")
    workers: int = setting(2, Limits(0), "with --stream: DataLoader worker processes (0: none)")
    model: ModelConfig = field(default_factory=ModelConfig)

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = config_from_dict(ModelConfig, self.model)
        if isinstance(self.compile, bool):       # as configs and recipes wrote it before `auto`
            self.compile = "on" if self.compile else "off"
        check_fields(self)
        if self.kind in ("mixture", "conditional"):
            self.model.matched_blocks = ()
        elif not self.model.matched_blocks:
            raise EngineError("a feature-guided model needs at least one matched block")
        if self.model.class_count and self.kind != "conditional":
            raise EngineError(f"a {self.kind} model is not told the class (class_count is for conditional models)")
        if not self.loss_sigma_min < self.sigma_max:
            raise EngineError(f"loss_sigma_min must be below sigma_max {self.sigma_max} (0: train every sigma), "
                              f"got {self.loss_sigma_min}")
        if self.kind == "feature_guided" and self.batch % self.pool:
            raise EngineError(f"batch {self.batch} must be a multiple of pool {self.pool}")

    @property
    def crops_seed(self) -> int:
        """The seed that draws the dataset's crops: data_seed where given, else seed."""
        return self.seed if self.data_seed is None else self.data_seed

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def config_from_dict(cls, d: dict):
    """Rebuild a config dataclass, ignoring keys this version does not know."""
    known = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in known})
