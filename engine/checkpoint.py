"""Checkpoints: one file holds everything needed to rebuild a model and reproduce samples.

A run directory holds
  model.pt        config + weights + centroid table + dataset facts (what is shipped)
  train_state.pt  the same plus optimizer and RNG states, for --resume (not shipped)
Both are written atomically (temp file, fsync, rename), so an interruption at any moment,
even kill -9, leaves the previous complete file in place.
"""
from __future__ import annotations

import hashlib
import pickle
import re
import struct
import zipfile
from dataclasses import asdict
from pathlib import Path

import torch

from .centroids import CentroidTable
from .config import ModelConfig, TrainConfig
from .errors import EngineError
from .paths import write_atomic
from .conditional import condition, network_for
from .network import UNet
from .precision import COMPILE_LOCK, Compiled, Precision, pays_to_compile, resolve

FORMAT = "feature-guided-diffusion/1"
MODEL_FILE = "model.pt"
STATE_FILE = "train_state.pt"
ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEFAULT_CHECKPOINT = ASSETS / "feature_guided"
DEFAULT_MIXTURE = ASSETS / "mixture"


def save_atomic(obj, path: str | Path) -> None:
    write_atomic(path, lambda f: torch.save(obj, f))


# The one class beyond tensors and plain values that files of this tool hold: train.py records
# torch.__version__ (a str subclass) in `info`. Nothing it allows can run code when unpickled.
SAFE_GLOBALS = [torch.torch_version.TorchVersion]


def safe_load(path: str | Path):
    """torch.load without running code from the file: only tensors, plain values and SAFE_GLOBALS
    unpickle (weights_only). A file that asks for anything else (a shared model.pt whose pickle
    would call a function) is refused with an EngineError naming what it asked for, before any of
    it runs. Other failures (a truncated or foreign file) are raised as torch raises them, or as
    pickle.UnpicklingError."""
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" not in str(e):
            raise
        found = re.search(r"GLOBAL ([\w.]+)", str(e))
        asked = f"`{found.group(1)}`" if found else "something other than tensors and plain values"
        raise EngineError(f"{path}: refused: loading it would run {asked}, which no file of this tool "
                          "holds; it was not loaded (use only model files from a source you trust)") from None
    except (KeyError, IndexError, TypeError, AttributeError, struct.error, UnicodeDecodeError) as e:
        # the weights-only unpickler's own faults on bytes that are no pickle at all
        raise pickle.UnpicklingError(f"not a pickle ({type(e).__name__})") from None


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise EngineError("CUDA was asked for but no CUDA device is available; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise EngineError(f"unknown device '{name}'; use auto, cpu or cuda") from None


def load_weights(model: torch.nn.Module, weights: dict, path) -> None:
    """load_state_dict with one clear line when the weights were made for another network."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        lines = [ln.strip() for ln in str(e).splitlines()[1:] if ln.strip()]
        first = lines[0].split(":")[0] if lines else "different layers"
        raise EngineError(f"{path}: weights do not match the network config stored with them "
                          f"({len(lines) or 1} tensor(s) differ; {first}); retrain, or restore the file") from None


def read_file(path: str | Path) -> dict:
    """Load a checkpoint file's dictionary, with a clear error for anything wrong."""
    path = Path(path)
    if path.is_dir():
        for name in (MODEL_FILE, STATE_FILE):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise EngineError(f"{path}: no {MODEL_FILE} or {STATE_FILE} in this folder; "
                              "train one with `python -m engine train`")
    if not path.is_file():
        raise EngineError(f"{path}: checkpoint not found; give a run folder or a .pt file")
    try:
        state = safe_load(path)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise EngineError(f"{path}: unreadable or truncated checkpoint ({type(e).__name__}); "
                          "retrain, or restore the file") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise EngineError(f"{path}: not a checkpoint of this tool (expected format {FORMAT})")
    state["path"] = str(path)
    _rename_dataset(state)
    return state


def _rename_dataset(state: dict) -> None:
    """Models trained on the built-in classes before they were re-chosen name `textures` with the
    old class list: that list is now the `textures-v1` dataset, so evaluation and the app cut
    their real crops from the classes they were trained on."""
    from .data import TEXTURES_V1
    cfg = state.get("train_config", {})
    if cfg.get("dataset") == "textures" and list(state.get("classes", [])) == list(TEXTURES_V1):
        cfg["dataset"] = "textures-v1"


class Checkpoint:
    """A trained denoiser with its config, centroids and dataset facts.

    The public face of a model for the app, the analyses and the command line:
    `denoise`, `phi` and `centroid`; engine/sampler.py samples from it.
    """

    def __init__(self, state: dict, device: str | torch.device = "auto"):
        self.path = state.get("path", "")
        self.train_config = TrainConfig(**{**state["train_config"], "model": state["train_config"]["model"]})
        self.config: ModelConfig = self.train_config.model
        self.device = pick_device(device) if isinstance(device, str) else device
        self.model = network_for(self.config)
        load_weights(self.model, state["model"], self.path)
        self.model.to(self.device).eval()
        self.classes: list[str] = list(state["classes"])
        self.mean = torch.as_tensor(state["mean"], dtype=torch.float32)   # (C,) mean pixel of the data
        self.step: int = state.get("step", 0)
        self.info: dict = state.get("info", {})
        self.centroids = CentroidTable.from_state(state["centroids"]).to(self.device) \
            if state.get("centroids") else None
        self.batch = device_batch(self.device, self.config)   # images per network call (`network`)
        # fp32 and eager unless use_precision says otherwise: the library's reference arithmetic
        self.policy: Precision = resolve("fp32", self.device)
        self._compiled: Compiled | None = None
        self._warming = False
        self.compile_gain: float | None = None   # eager / compiled seconds per call, as warm_up measured

    def __getstate__(self) -> dict:
        """Copies and pickles carry the model and its precision; a compiled network and its lock
        stay with the original (use_precision on the copy compiles its own)."""
        state = dict(self.__dict__)
        state.update(_compiled=None, _warming=False)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    # -- facts
    @property
    def kind(self) -> str:
        return self.config.kind

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.config.channels, self.config.size, self.config.size)

    @property
    def lineage(self) -> list[dict]:
        """The runs this one was fine-tuned from (`train --init`), newest first: each a dict
        with path, step, wall_seconds and train_config (as train.py records them)."""
        runs, init = [], self.info.get("init")
        while init:
            runs.append(init)
            init = init.get("init")
        return runs

    @property
    def total_steps(self) -> int:
        """Training steps of this run and of every run it was fine-tuned from."""
        return self.step + sum(r["step"] for r in self.lineage)

    @property
    def first_widths(self) -> tuple[int, ...]:
        """Channel widths of the first run in its lineage (its own if never fine-tuned): they
        differ from `config.widths` when the network was grown (`train --init --widths`)."""
        runs = self.lineage
        return tuple(runs[-1]["train_config"]["model"]["widths"] if runs else self.config.widths)

    @property
    def fingerprint(self) -> str:
        """A short hash of the weights and the centroid table: what a cache drawn from this
        checkpoint (the atlas) depends on. Its step count cannot serve: fine-tuned runs of equal
        length share it, and `centroids` rewrites the table without training."""
        h = hashlib.sha256()
        tensors = sorted(self.model.state_dict().items())
        if self.centroids is not None:
            tensors += [("centroids.sigmas", self.centroids.sigmas), ("centroids.table", self.centroids.table)]
        for name, t in tensors:
            h.update(name.encode())
            h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    @property
    def total_wall_seconds(self) -> float:
        return (self.info.get("wall_seconds") or 0) + sum(r.get("wall_seconds") or 0 for r in self.lineage)

    def class_index(self, name: str | int) -> int:
        return self.require_centroids().index(name)

    def require_centroids(self) -> CentroidTable:
        if self.centroids is None:
            raise EngineError(f"{self.path}: this checkpoint has no centroid table yet; "
                              "run `python -m engine centroids --checkpoint DIR`")
        return self.centroids

    # -- the network
    @property
    def precision(self) -> str:
        """The resolved precision the network runs in: "fp32" or "bf16" (engine/precision.py)."""
        return self.policy.name

    @property
    def compiled(self) -> bool:
        return self._compiled is not None and self._compiled.active

    def use_precision(self, precision: str = "auto", compile: str | bool = "off", work: int = 0,
                      log=print) -> Precision:
        """Decide once how `network` runs (engine/precision.py): precision auto | fp32 | bf16;
        compile on | off | auto (auto: where bf16 was picked and `work`, in image-calls, repays the
        compile). The network's weights stay float32; bf16 puts them in channels_last."""
        self.policy = resolve(precision, self.device)
        self.model.to(memory_format=torch.channels_last if self.policy.channels_last else torch.contiguous_format)
        self._compiled = None
        if pays_to_compile(compile, self.policy, work):
            # dynamic shapes: one compile serves every batch size the sampler's stopping leaves
            self._compiled = Compiled(self.model, dynamic=True, log=log)
        return self.policy

    @torch.no_grad()
    def warm_up(self, batches: tuple[int, ...] = (2, 8), measure: bool = True) -> float:
        """Compile now, so that no later call waits for it: seconds spent. While it runs (in a
        background thread, as the app does) `network` answers with the eager network. With
        `measure`, the compiled network is then timed against the eager one at the largest batch
        and kept only if faster: on some processors compiling buys nothing when sampling."""
        if self._compiled is None:
            return 0.0
        import time
        t0 = time.perf_counter()
        self._warming = True
        try:
            with COMPILE_LOCK:                     # one compile at a time in a process
                c, s = self.config.channels, self.config.size
                targets = [None] if self.kind == "mixture" or self.centroids is None else [None, condition(self, 0, 0.5)]
                for b in batches:
                    y = torch.rand(b, c, s, s, device=self.device)
                    for t in targets:
                        self._call(self._compiled, y, None if t is None else t.expand(b, -1).contiguous())
                if measure and self._compiled.active:
                    t = targets[-1]
                    t = None if t is None else t.expand(y.shape[0], -1).contiguous()
                    best = {}
                    for name, fn in (("eager", self.model), ("compiled", self._compiled)):
                        times = []
                        for _ in range(5):
                            t1 = time.perf_counter()
                            self._call(fn, y, t)
                            times.append(time.perf_counter() - t1)
                        best[name] = min(times)
                    self.compile_gain = best["eager"] / best["compiled"]
                    if self.compile_gain <= 1:
                        self._compiled = None        # measured: eager is as fast here
        finally:
            self._warming = False
        return time.perf_counter() - t0

    def _call(self, fn, y: torch.Tensor, target: torch.Tensor | None):
        """One call of at most `batch` images at this precision; float32, contiguous results."""
        n = len(y)
        if fn is self._compiled and n == 1:          # dynamic shapes specialise a batch of one
            y = torch.cat([y, y])
            target = None if target is None else torch.cat([target, target])
        if self.policy.channels_last:
            y = y.contiguous(memory_format=torch.channels_last)
        with self.policy.autocast():
            f, phi = fn(y, target)
        return f[:n].float().contiguous(), phi[:n].float()

    @torch.no_grad()
    def network(self, y: torch.Tensor, target: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """self.model(y, target) -> (f(y), phi(y)), in calls of at most `batch` images (in eval mode
        each image is denoised on its own, so the split changes nothing) at this precision."""
        if len(y) <= self.batch and self.policy.name == "fp32" and self._compiled is None:
            return self.model(y, target)          # the reference path, bit for bit
        fn = self.model
        if self._compiled is not None and not self._warming and self._compiled.active:
            fn = self._compiled
        if target is not None and target.dim() == 1:
            target = target.expand(len(y), -1)     # one graph for a shared and a per-image target
        if target is not None and fn is self._compiled:
            target = target.contiguous()           # a compiled graph is specialised to its strides
        outs = []
        for i in range(0, len(y), self.batch):
            t = None if target is None else target[i:i + self.batch]
            # a compiled graph runs while no other compile is under way in this process (it may
            # recompile for a new shape); otherwise this call is answered eager, without waiting
            if fn is self._compiled and COMPILE_LOCK.acquire(blocking=False):
                try:
                    outs.append(self._call(fn, y[i:i + self.batch], t))
                finally:
                    COMPILE_LOCK.release()
            else:
                outs.append(self._call(self.model, y[i:i + self.batch], t))
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])

    @torch.no_grad()
    def denoise(self, y: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
        """f(y) (mixture / no target) or f(y, phi*) for y (B, C, H, W)."""
        if target is not None and self.kind == "mixture":
            raise EngineError("the mixture model has no projection: it cannot be conditioned")
        return self.network(y.to(self.device), None if target is None else target.to(self.device))[0]

    @torch.no_grad()
    def phi(self, y: torch.Tensor, batch: int = 512) -> torch.Tensor:
        """phi(y) (B, D) of a plain pass, in batches."""
        return torch.cat([self.model.phi(y[i:i + batch].to(self.device)) for i in range(0, len(y), batch)])

    def centroid(self, name: str | int | torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        """phibar_c(sigma): (D,) for a float sigma, (B, D) for a tensor of sigmas.
        `name` is a class name or index, or a (B,) tensor of class indices."""
        table = self.require_centroids()
        return self._read_table(lambda s: table.at(name, s), sigma)

    def centre(self, sigma: float | torch.Tensor) -> torch.Tensor:
        """The mixture's centroid (the mean of the class centroids) at sigma, shaped as `centroid`."""
        return self._read_table(self.require_centroids().centre, sigma)

    def _read_table(self, read, sigma: float | torch.Tensor) -> torch.Tensor:
        """read(sigmas (B,)) -> (B, D), called with sigma as a batch: (D,) back for a float sigma."""
        s = torch.as_tensor(sigma, dtype=torch.float32, device=self.device)
        out = read(s.reshape(-1))
        return out[0] if s.dim() == 0 else out

    def class_mean(self, name: str | int) -> torch.Tensor:
        """(C,) mean pixel of a class's training images (the data mean for older tables)."""
        i = self.class_index(name)
        means = self.centroids.means
        return self.mean.clone() if means is None else means[i].cpu()

    def layer_slices(self) -> dict[str, slice]:
        return dict(self.model.layout.slices)

    def describe(self) -> dict:
        return {"path": self.path, "kind": self.kind, "classes": self.classes, "step": self.step,
                "train_config": asdict(self.train_config), "phi_dim": self.model.phi_dim,
                "parameters": sum(p.numel() for p in self.model.parameters()), "info": self.info}


def device_batch(device: torch.device, config: ModelConfig) -> int:
    """Images per network call when sampling: on CPU 1024 (the most `sample` draws: one call,
    as always); on CUDA what a quarter of the free memory holds, from the activations one image
    needs (about eight float32 maps of every block's width and size, doubled for the skips)."""
    if device.type != "cuda":
        return 1024
    free, _ = torch.cuda.mem_get_info(device)
    per_image = 16 * 4 * sum(w * (config.size // 2 ** k) ** 2 for k, w in enumerate(config.widths))
    return int(max(16, min(65536, free // 4 // per_image)))


def load_checkpoint(path: str | Path | None = None, device: str = "auto", kind: str | tuple | None = None,
                    what: str = "--checkpoint") -> Checkpoint:
    """Load a run folder or .pt file (default: the shipped feature-guided model); with `kind` (one
    kind or a tuple of them), refuse a model of another kind, naming the option (`what`) it came from."""
    state = read_file(path or DEFAULT_CHECKPOINT)
    try:
        ckpt = Checkpoint(state, device)
    except (KeyError, TypeError) as e:
        raise EngineError(f"{state['path']}: checkpoint is missing or has malformed field {e}") from None
    kinds = (kind,) if isinstance(kind, str) else kind
    if kinds is not None and ckpt.kind not in kinds:
        raise EngineError(f"{what} {ckpt.path}: a {ckpt.kind} model, where a {' or '.join(kinds)} model is "
                          f"needed (train --kind {kinds[0]})")
    return ckpt


def load_mixture(path: str | Path, device: str, partner: Checkpoint, what: str = "--mixture") -> Checkpoint:
    """The mixture model that `partner` is compared with: a mixture model of the same data (atlas.same_data:
    dataset, classes, image shape), else an error - a comparison on crops one of the two never trained
    on says nothing of conditioning."""
    from .atlas import same_data              # atlas imports this module
    mixture = load_checkpoint(path, device, kind="mixture", what=what)
    if not same_data(mixture, partner):
        raise EngineError(f"{what} {mixture.path}: a mixture model of {mixture.classes} ('"
                          f"{mixture.train_config.dataset}'), where {partner.path} knows {partner.classes} ('"
                          f"{partner.train_config.dataset}'); give a mixture model trained on the same classes, "
                          "dataset and image size")
    return mixture


def model_state(model: UNet, train_config: TrainConfig, classes: list[str], mean: torch.Tensor,
                step: int, centroids: CentroidTable | None, info: dict) -> dict:
    return {"format": FORMAT, "train_config": asdict(train_config), "model": model.state_dict(),
            "classes": list(classes), "mean": mean.cpu(), "step": step,
            "centroids": centroids.state() if centroids is not None else None, "info": info}
