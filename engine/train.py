"""The training loop around the one denoising loss (engine/loss.py; docs/method.md, "Loss"):
data, schedule, weight average, checkpoints, several processes.

Weight average (`ema`, the practice of diffusion models since Ho et al. 2020): with ema > 0 an
exponential moving average of the weights (and of the norms' running deviations) is kept beside
the trained ones, checkpointed with them, and is what model.pt holds; train_state.pt keeps both,
so the two can be compared on the same run. The shipped recipes keep one (recipes/*.toml); where
it was compared, it matched the final weights within the measurement's noise, since the learning
rate's decay averages the weights too (docs/model.md, "The models, round by round").

Matched blocks (ModelConfig.matched_blocks): the shipped recipes match mid and dec2, not dec1.
The output convolution turns dec1's channel means into the output's spatial mean, so projecting
dec1 sets the denoised image's brightness from the target instead of the image; every run that
matched dec1 lost to the mixture model, while dropping it let conditioning pay (docs/model.md,
"The models, round by round"; the README and the model card give the shipped pair's gain at each
sigma).
"""
from __future__ import annotations

import copy
import math
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from . import distributed, stream as streaming
from .centroids import compute_centroids
from .checkpoint import MODEL_FILE, STATE_FILE, load_weights, model_state, pick_device, read_file, save_atomic
from .conditional import drop_classes, network_for
from .config import TrainConfig
from .data import augment, load_dataset
from .errors import EngineError
from .grow import widen
from .loss import denoising_loss, partners, sample_sigmas, stratified_sigmas
from .network import BiasFreeNorm
from .paths import writable_dir
from .precision import Compiled, pays_to_compile, resolve


# Settings that say how a run computes, not what it learns: a resumed run takes them from the call.
MACHINE_FIELDS = ("device", "precision", "compile", "workers")


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """Linear warm-up, then cosine decay to lr / 50, or constant with a linear cool-down to lr / 50
    over the last `cooldown` steps; a pure function of the step (resumable)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.schedule == "constant":
        left = cfg.steps - step
        if left > cfg.cooldown:
            return cfg.lr
        return cfg.lr / 50 + (cfg.lr - cfg.lr / 50) * left / max(1, cfg.cooldown)
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr / 50 + (cfg.lr - cfg.lr / 50) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} (CUDA)"
    n = torch.get_num_threads()
    return f"{platform.processor() or platform.machine()}, {n} CPU thread{'' if n == 1 else 's'}"


def train(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, log=print,
          progress: bool = True, init: str | Path | None = None,
          widths: tuple[int, ...] | None = None, on_step=None) -> Path:
    """Train (or resume) a run in out_dir; returns the path of model.pt (see `_train`).
    on_step(step, mse): called after every step with the whole batch's plain MSE.

    Under torchrun each process trains its share of every batch (engine/distributed.py); an
    EngineError on any process stops all of them with the same message."""
    with distributed.session(cfg.device) as world:
        try:
            return _train(cfg, out_dir, resume, log, progress, init, widths, world, on_step)
        except distributed.Agreed:
            raise
        except EngineError as e:          # met by every process alike (a diverged loss): say it once
            distributed.agree(world, e)
            raise


def _train(cfg: TrainConfig, out_dir: str | Path, resume: bool, log, progress: bool,
           init: str | Path | None, widths: tuple[int, ...] | None,
           world: distributed.World, on_step=None) -> Path:
    """Train (or resume) a run in out_dir; returns the path of model.pt.

    init: start from the weights of this checkpoint (fine-tuning) instead of a random
    initialisation. The network (ModelConfig) is taken from it; everything else - steps,
    learning-rate schedule, loss weighting, pooling - comes from cfg, and the step count
    starts at 0. The run records where it started in info["init"].
    widths: with init, grow the network to these channel widths first, keeping what it
    computes (engine/grow.py); None keeps the starting checkpoint's."""
    out = Path(out_dir)
    state = None
    start = None
    if not world.main:                    # rank 0 alone prints and writes
        log, progress = (lambda *a, **k: None), False
    if init is not None:
        if resume:
            raise EngineError("--init starts a new run from another checkpoint's weights; "
                              "it cannot be combined with --resume")
        start = read_file(init)
        start_cfg = TrainConfig(**start["train_config"])
        # another dataset is allowed (fine-tuning onto a new class list); another kind is not
        if start_cfg.kind != cfg.kind:
            raise EngineError(f"--init {init}: a {start_cfg.kind} model of '{start_cfg.dataset}'; "
                              f"this run trains a {cfg.kind} model of '{cfg.dataset}'")
        cfg.model = start_cfg.model
        if widths is not None and tuple(widths) != start_cfg.model.widths:
            cfg.model = replace(start_cfg.model, widths=tuple(widths))
            start["model"] = widen(start["model"], start_cfg.model, cfg.model, seed=cfg.seed)
            log(f"widened the network from {','.join(map(str, start_cfg.model.widths))} to "
                f"{','.join(map(str, cfg.model.widths))} channels, keeping what it computes")
    elif widths is not None:
        raise EngineError("--widths with --init grows the starting network; a new run takes its widths "
                          "from its config")
    if resume:
        if not (out / STATE_FILE).is_file():
            raise EngineError(f"{out}: nothing to resume (no {STATE_FILE}); drop --resume to start a new run")
        state = read_file(out / STATE_FILE)
        steps = cfg.steps                     # None: the run's own
        # what is learned comes from the run; how it is computed, from this call (MACHINE_FIELDS)
        cfg = replace(TrainConfig(**state["train_config"]), **{k: getattr(cfg, k) for k in MACHINE_FIELDS})
        if steps is not None and steps != cfg.steps:
            if steps <= state["step"]:
                raise EngineError(f"{out}: the run is already at step {state['step']}; give --steps above "
                                  f"that to extend it, or leave --steps out to finish its {cfg.steps}")
            log(f"resume: changing the run's length from {cfg.steps} to {steps} steps")
            cfg.steps = steps
    elif cfg.steps is None:
        raise EngineError("a new run needs a number of steps (--steps)")
    elif (out / STATE_FILE).exists():
        raise EngineError(f"{out} already holds a run; use --resume to continue it or choose another --out")
    writable_dir(out, "--out")
    device = pick_device(cfg.device)
    guided = cfg.kind == "feature_guided"
    conditional = cfg.kind == "conditional"          # told each image's class (engine/conditional.py)
    policy = resolve(cfg.precision, device)
    # each process takes a contiguous share of the batch: whole pools, so that a group of
    # `pool` images of one class at one sigma is conditioned on its own partners' mean phi
    unit = cfg.pool if guided else 1
    if cfg.batch % (unit * world.size):
        raise EngineError(f"batch {cfg.batch} does not split across {world.size} processes"
                          + (f" in whole pools of {unit}" if unit > 1 else "")
                          + f"; use a multiple of {unit * world.size}")
    part = slice(world.rank * cfg.batch // world.size, (world.rank + 1) * cfg.batch // world.size)
    log(f"config ({'resuming at step ' + str(state['step']) if state else 'new run'}, device {device}"
        + (f", {world.size} processes" if world.active else "") + "):")
    log(cfg.to_json())

    if cfg.stream:
        data = streaming.FolderStream(cfg.dataset, "train", cfg.model.size, cfg.model.channels,
                                      cfg.n_per_class, cfg.crops_seed)
        images, mean = None, streaming.data_mean(data, seed=cfg.crops_seed)
    else:
        data = load_dataset(cfg.dataset, "train", cfg.model.size, cfg.model.channels, cfg.n_per_class, cfg.crops_seed)
        images = torch.from_numpy(data.images).to(device)
        mean = images.mean(dim=(0, 2, 3)).cpu()
    labels = torch.from_numpy(data.labels)
    if conditional:
        if start is not None and start_cfg.model.class_count != len(data.classes):
            raise EngineError(f"--init {init}: a conditional model of {start_cfg.model.class_count} classes "
                              f"cannot be fine-tuned onto {len(data.classes)} ('{cfg.dataset}'): its class "
                              "embeddings are one per class; start from a model of as many classes")
        cfg.model = replace(cfg.model, class_count=len(data.classes))
    by_class = [torch.nonzero(labels == c).flatten() for c in range(len(data.classes))]
    symmetries = data.symmetries

    torch.manual_seed(cfg.seed)
    model = network_for(cfg.model).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    step, elapsed, history = 0, 0.0, []
    lineage = None
    if start is not None:
        load_weights(model, start["model"], start["path"])
        past = start.get("info", {})
        # the starting run's own lineage comes along, so a card can add up the whole training
        lineage = {"path": str(start["path"]), "step": start["step"],
                   "wall_seconds": past.get("wall_seconds"), "train_config": start["train_config"],
                   "init": past.get("init")}
    if state is not None:
        load_weights(model, state["model"], out / STATE_FILE)
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["rng"])
        step, elapsed, history = state["step"], state["info"]["wall_seconds"], state["info"]["history"]
        lineage = state["info"].get("init")
    channels_last = True                  # ~20% faster convolutions on CPU; tensor-core layout on CUDA
    model = model.to(memory_format=torch.channels_last)
    average = None
    if cfg.ema:
        # the first update copies the weights, later ones average them in
        average = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
        if state is not None and state.get("ema") is not None:
            average.load_state_dict(state["ema"])        # with its count: no restart from a copy
    model.train()
    net = model                           # what the step calls: the model, or its DDP / compiled wrapper
    distributed.agree(world, None)        # every process got here (else all stop: distributed.py)
    if world.active:
        for m in model.modules():
            if isinstance(m, BiasFreeNorm):
                m.sync = True             # whole-batch statistics (network.py)
        # gradients averaged over the processes; no buffer broadcast before each pass: the
        # synced norms keep running_sd equal everywhere already
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[torch.cuda.current_device()] if device.type == "cuda" else None,
            forward_sync_buffers=False)
    compiled = None
    if pays_to_compile(cfg.compile, policy, cfg.batch * (cfg.steps - step), "train"):
        net = compiled = Compiled(net, dynamic=False, log=log)   # one batch shape all run long
    log(f"{policy}; {'compiled' if compiled else 'eager'}")

    def info() -> dict:
        out = {"wall_seconds": elapsed, "history": history, "machine": machine(),
               **policy.describe(), "compiled": bool(compiled and compiled.active),
               "dataset_classes": data.classes, "train_images": len(data), "torch": torch.__version__,
               "init": lineage}
        if world.active:
            out["processes"] = world.size         # torchrun: machine() is rank 0's share
        return out

    def checkpoint(path: Path = out / STATE_FILE):
        """Rank 0 writes train_state.pt; every process learns whether that worked."""
        error = None
        if world.main:
            s = model_state(model, cfg, data.classes, mean, step, None, info())
            s["optimizer"] = opt.state_dict()
            s["rng"] = gen.get_state()
            s["ema"] = average.state_dict() if average is not None else None
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                save_atomic(s, path)
            except OSError as e:
                error = EngineError(f"{path}: cannot write the checkpoint ({e.strerror or e})")
        distributed.agree(world, error)

    def write_model(path: Path) -> None:
        """model.pt at this step: the weights (their average, with ema) and their centroid table.
        The mixture model gets a table too: the analyses compare both embeddings (fig. 4)."""
        shipped = copy.deepcopy(average.module if average is not None else model)
        shipped = shipped.to(memory_format=torch.contiguous_format)
        error = None
        if world.main:
            # streamed: 256 images of each class, read when its turn comes (Sample)
            images = streaming.Sample(data, 256) if cfg.stream else data.images
            centroids = compute_centroids(shipped, images, data.labels, data.classes, seed=cfg.seed)
            try:
                save_atomic(model_state(shipped, cfg, data.classes, mean, step, centroids, info()), path)
            except OSError as e:
                error = EngineError(f"{path}: cannot write the model ({e.strerror or e})")
        distributed.agree(world, error)      # the others wait for rank 0's model.pt

    def draw(g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """The step's image indices and noise levels (B,), the whole batch on every process."""
        if guided and cfg.pool > 1:
            # groups of `pool` images of one class at one sigma; each is conditioned on the
            # mean phi of the group's partners (UNet.forward's pool)
            groups = cfg.batch // cfg.pool
            anchors = torch.randint(len(labels), (groups,), generator=g)
            idx = partners(labels[anchors].repeat_interleave(cfg.pool), by_class, g)
            sigma = stratified_sigmas(groups, cfg.sigma_max, g).repeat_interleave(cfg.pool)
        else:
            idx = torch.randint(len(labels), (cfg.batch,), generator=g)
            sigma = sample_sigmas(cfg.batch, cfg.sigma_max, g)
        return idx, sigma

    def stream_draw(s: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Streamed data: the indices of step s (images, noise levels, partners) from a generator of
        (seed, s) alone, so the DataLoader can read ahead and a resumed run reads the same."""
        g = torch.Generator().manual_seed(int(np.random.SeedSequence([cfg.seed, s]).generate_state(1)[0]))
        idx, sigma = draw(g)
        return idx, sigma, partners(labels[idx], by_class, g) if guided else idx

    batches = None
    if cfg.stream:
        batches = iter(torch.utils.data.DataLoader(
            data, batch_sampler=streaming.StepSampler(lambda s: stream_draw(s)[::2 if guided else 3], step, cfg.steps,
                                                      world.rank, world.size),
            num_workers=cfg.workers, collate_fn=streaming.collate, prefetch_factor=4 if cfg.workers else None,
            pin_memory=device.type == "cuda"))

    def full(share: torch.Tensor) -> torch.Tensor:
        """A whole-batch tensor holding this process's share of streamed images (zeros elsewhere):
        augmentation and noise are drawn for the whole batch, as on one process."""
        x = torch.zeros(cfg.batch, *share.shape[1:], device=device)
        x[part] = share.to(device, non_blocking=True).float() / 255     # pinned by the loader on CUDA
        return x

    bar = tqdm(total=cfg.steps, initial=step, disable=not progress, file=sys.stderr,
               dynamic_ncols=True, desc=f"train {cfg.kind}")
    ema = None
    t0 = time.time()
    while step < cfg.steps:
        if cfg.stream:
            idx, sigma, pidx = stream_draw(step)
            got = streaming.next_batch(batches)
            n = part.stop - part.start
            x = full(got[:n])
        else:
            idx, sigma = draw(gen)
            x = images[idx.to(device)]
        sigma = sigma.to(device)[:, None, None, None]
        x = augment(x, labels[idx], symmetries, gen)
        y = x + sigma * torch.randn(x.shape, generator=gen).to(device)
        ref = None
        if guided:
            if cfg.stream:
                xr = full(got[n:])
            else:
                pidx = partners(labels[idx], by_class, gen)
                xr = images[pidx.to(device)]
            xr = augment(xr, labels[pidx], symmetries, gen)
            ref = xr + sigma * torch.randn(x.shape, generator=gen).to(device)
        # this process's share of the batch (all of it on one process)
        x, y, sigma = x[part], y[part], sigma[part]
        ref = ref[part] if ref is not None else None
        if channels_last:
            y = y.contiguous(memory_format=torch.channels_last)
            ref = ref.contiguous(memory_format=torch.channels_last) if ref is not None else None
        for g in opt.param_groups:
            g["lr"] = learning_rate(cfg, step)
        told = drop_classes(labels[idx], cfg.class_dropout, len(data.classes), gen).to(device)[part] \
            if conditional else None
        loss, mse = denoising_loss(net, x, y, sigma, ref, cfg.pool if guided else 1, cfg.sigma_data,
                                   cfg.loss_sigma_min, cfg.weight_cap, policy.autocast, labels=told)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if average is not None:
            average.update_parameters(model)
        step += 1
        # shown and logged: the plain MSE (PSNR), of the whole batch
        value = distributed.mean_value(world, mse.mean().item())
        if not math.isfinite(distributed.mean_value(world, loss.item())):
            raise EngineError(f"training diverged at step {step} (loss {value}); lower --lr and start again")
        ema = value if ema is None else 0.98 * ema + 0.02 * value
        if on_step is not None:
            on_step(step, value)
        bar.update(1)
        bar.set_postfix(loss=f"{ema:.5f}", psnr=f"{10 * math.log10(1 / ema):.2f}dB")
        if step % 50 == 0:
            history.append((step, ema))
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            elapsed += time.time() - t0
            t0 = time.time()
            checkpoint()
        if cfg.snapshot_every and step % cfg.snapshot_every == 0 and step < cfg.steps:
            write_model(out / "snapshots" / f"step_{step}" / MODEL_FILE)
            # and the resumable state: a cool-down branched from here (`--resume --steps
            # STEP + cooldown` on a copy) makes a model of this length, as if trained to it
            checkpoint(out / "snapshots" / f"step_{step}" / STATE_FILE)
            model.train()
            t0 = time.time()                # the snapshot's centroids are not training time
    bar.close()
    elapsed += time.time() - t0

    log("computing the centroid table ...")
    write_model(out / MODEL_FILE)
    log(f"wrote {out / MODEL_FILE} ({step} steps, {elapsed / 60:.1f} min of training on {machine()})")
    return out / MODEL_FILE


def recompute_centroids(path: str | Path, per_class: int = 256, seed: int = 0, device: str = "auto",
                        log=print) -> Path:
    """Recompute and store the centroid table of a checkpoint (model.pt or a run folder)."""
    state = read_file(path)
    cfg = TrainConfig(**state["train_config"])
    model = network_for(cfg.model).to(pick_device(device))
    load_weights(model, state["model"], path)
    if cfg.stream:                        # read per class, as training did (engine/stream.py)
        data = streaming.FolderStream(cfg.dataset, "train", cfg.model.size, cfg.model.channels,
                                      cfg.n_per_class, cfg.crops_seed)
        images = streaming.Sample(data, per_class)
    else:
        data = load_dataset(cfg.dataset, "train", cfg.model.size, cfg.model.channels, cfg.n_per_class, cfg.crops_seed)
        images = data.images
    bar = tqdm(total=len(data.classes), desc="centroids", file=sys.stderr)
    table = compute_centroids(model, images, data.labels, data.classes, per_class=per_class, seed=seed,
                              progress=lambda i, n: bar.update(1))
    bar.close()
    state["centroids"] = table.state()
    target = Path(state.pop("path"))
    if target.name == STATE_FILE:
        for key in ("optimizer", "rng", "ema"):       # training-only state; the trained weights stay
            state.pop(key, None)
        target = target.with_name(MODEL_FILE)
    save_atomic(state, target)
    log(f"wrote centroids for {len(data.classes)} classes x {len(table.sigmas)} sigmas to {target}")
    return target
