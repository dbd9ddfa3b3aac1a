"""The precision policy: which arithmetic the network runs in, decided once per machine.

  fp32   float32 everywhere (the reference; the pinned arrays are drawn in it)
  bf16   the network's convolutions under bfloat16 autocast, activations in channels_last;
         weights, optimiser, norms' statistics, loss and the sampler's arithmetic stay float32
  auto   bf16 where the hardware multiplies bfloat16 natively - a CPU with AMX or AVX512-BF16
         units (asked of torch's own CPU capability query), or a CUDA device that supports it -
         and fp32 elsewhere: without such units bf16 is emulated and slower than fp32.

Compilation (torch.compile) is a separate choice that pays only for long work: its first call
costs seconds, so `pays_to_compile` decides by the amount of work, and a failure to compile (no
C++ compiler on a CPU machine, say) falls back to eager with one line saying so.
"""
from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass

import torch

from .errors import EngineError

PRECISIONS = ("auto", "fp32", "bf16")
COMPILE = ("auto", "on", "off")

# Setting FGSD_BF16_UNITS=0 makes `auto` act as on a machine without bfloat16 units (how the test
# suite checks that path on a machine that has them); 1 claims them. Unset: ask the hardware.
UNITS_ENV = "FGSD_BF16_UNITS"

# torch.compile's first call takes tens of seconds on a CPU (forward and backward for training).
# It then saves about 2 ms per training image (fused norms and their backward) but only a fraction
# of a ms per image-call when sampling: below this much work - training images, or images x network
# calls - the compile costs more than it saves.
COMPILE_PAYS_ABOVE = {"train": 30_000, "sample": 200_000}


# torch.compile is not safe to run in two threads of a process at once: two models warming up side
# by side deadlocked the app (each thread holding what the other waited for). Every compile, and
# every call of a compiled network (which may recompile for a new shape), holds this lock.
COMPILE_LOCK = threading.Lock()


def bf16_units(device: torch.device) -> bool:
    """Whether `device` multiplies bfloat16 in hardware: a CUDA GPU that supports it, or a CPU with
    AMX tiles or AVX512-BF16 (UNITS_ENV overrides the answer)."""
    forced = os.environ.get(UNITS_ENV)
    if forced in ("0", "1"):
        return forced == "1"
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    ask = lambda name: bool(getattr(torch.cpu, name, lambda: False)())
    return ask("_is_amx_tile_supported") or ask("_is_avx512_bf16_supported")


@dataclass(frozen=True)
class Precision:
    """A resolved precision: `name` fp32 or bf16, what was `asked`, and `why`."""
    name: str
    asked: str
    why: str
    device_type: str = "cpu"

    @property
    def bf16(self) -> bool:
        return self.name == "bf16"

    @property
    def channels_last(self) -> bool:
        """bf16 convolutions are fastest in channels_last (oneDNN on CPU, tensor cores on CUDA)."""
        return self.bf16

    def autocast(self):
        """The context the network runs in: bfloat16 autocast, or nothing.

        Without autocast's cache of cast weights: torch keeps that cache in one process-wide map
        behind a mutex, and a thread leaving autocast clears it, dropping tensors another thread
        put there. When one of those is a compile's fake tensor, dropping it needs the GIL while
        the mutex is held, and the compiling thread holds the GIL waiting for the mutex: the app's
        background compile and its measures deadlocked that way. Each weight is cast once per
        forward pass either way, so the cache saved nothing here."""
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=torch.bfloat16, cache_enabled=False)

    def describe(self) -> dict:
        return {"precision": self.name, "asked": self.asked, "why": self.why}

    def __str__(self) -> str:
        return f"precision {self.name} ({self.why})"


def resolve(asked: str, device: torch.device | str = "cpu") -> Precision:
    """The precision `asked` (auto | fp32 | bf16) means on `device`."""
    device = torch.device(device)
    if asked not in PRECISIONS:
        raise EngineError(f"unknown precision '{asked}'; use one of {', '.join(PRECISIONS)}")
    units = bf16_units(device)
    where = "this GPU" if device.type == "cuda" else "this CPU"
    if asked == "fp32":
        return Precision("fp32", asked, "asked for", device.type)
    if asked == "bf16":
        why = "asked for" if units else f"asked for; {where} has no bfloat16 units, so it runs emulated and slower"
        return Precision("bf16", asked, why, device.type)
    if units:
        return Precision("bf16", asked, f"auto: {where} multiplies bfloat16 in hardware", device.type)
    return Precision("fp32", asked, f"auto: {where} has no bfloat16 units", device.type)


def pays_to_compile(setting: str | bool, precision: Precision, work: int, job: str = "sample") -> bool:
    """Whether to compile: `on`/`off` as given; `auto` where bf16 was picked and `work` (see
    COMPILE_PAYS_ABOVE[job], job "train" or "sample") is large enough to repay the compile."""
    if isinstance(setting, bool):
        return setting
    if setting not in COMPILE:
        raise EngineError(f"unknown compile setting '{setting}'; use one of {', '.join(COMPILE)}")
    if setting != "auto":
        return setting == "on"
    return precision.bf16 and work >= COMPILE_PAYS_ABOVE[job]


class Compiled:
    """A compiled module that falls back to eager, once and for all, if its compilation fails -
    on a CPU machine torch.compile needs a C++ compiler at run time."""

    def __init__(self, module, dynamic: bool | None, log=print):
        self.module = module
        self.log = log
        self.fn = torch.compile(module, dynamic=dynamic)
        self.failed: str | None = None

    def __call__(self, *args, **kwargs):
        if self.failed is None:
            try:
                return self.fn(*args, **kwargs)
            except Exception as e:         # a backend failure (no compiler, an unsupported op)
                self.failed = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200]
                self.log(f"torch.compile failed ({self.failed}); running eager instead")
                torch._dynamo.reset()
        return self.module(*args, **kwargs)

    @property
    def active(self) -> bool:
        return self.failed is None
