"""Training on several processes (torchrun) with torch's DistributedDataParallel.

    torchrun --standalone --nproc_per_node N -m engine train ...

torchrun sets RANK, WORLD_SIZE and LOCAL_RANK in each process; without them (a plain
`python -m engine train`) everything here is a no-op and the run is the single-process run.

Backend: gloo for CPU tensors, NCCL for CUDA ones. Where CUDA is present both are set up
("cpu:gloo,cuda:nccl"), so the small CPU messages (errors, the loss) go over gloo while
gradients go over NCCL.

Errors: an EngineError on one process alone (an unreadable folder on one machine, a full
disk under rank 0) would leave the others waiting for it in a collective - until torchrun
stops them on that machine, for up to TIMEOUT on the others - and the line saying why would
come from one process among many, or from several at once. So the phases that can fail end in
`agree`: every process learns of the first failure, local rank 0 of each machine prints it in
one line, and all of them raise `Quiet` (the command line exits 2 without a second line).
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from .errors import EngineError

TIMEOUT = timedelta(minutes=30)     # a collective waits this long for a lost process, then fails


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the process that prints progress and writes checkpoints."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


SINGLE = World()


class Agreed(EngineError):
    """An error every process of the job raises (from `agree`): nobody waits for anybody."""


class Quiet(Agreed):
    """A failure already reported (by `agree`): exit non-zero without a second line."""


def from_env() -> World:
    """The process's place in a torchrun job, or SINGLE outside one."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise EngineError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers (torchrun sets them); "
                          "unset them for a single-process run") from None
    return World(rank, size, local) if size > 1 else SINGLE


def speaks() -> bool:
    """Whether this process prints user-facing lines: always outside torchrun, else local rank 0
    (one line per machine, not one per process)."""
    return os.environ.get("LOCAL_RANK", "0") == "0"


@contextmanager
def session(device: str = "auto"):
    """Join the torchrun job for the duration of a run (yield its World), and leave it cleanly.

    device: the run's --device; with CUDA each process takes the GPU of its local rank."""
    world = from_env()
    if not world.active or dist.is_initialized():     # alone, or inside a session already (stages)
        yield world
        return
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        if world.local_rank >= torch.cuda.device_count():
            raise EngineError(f"local rank {world.local_rank} has no GPU ({torch.cuda.device_count()} here); "
                              "give torchrun --nproc_per_node at most the number of GPUs, or --device cpu")
        torch.cuda.set_device(world.local_rank)
    dist.init_process_group("cpu:gloo,cuda:nccl" if cuda else "gloo", timeout=TIMEOUT)
    try:
        yield world
    finally:
        dist.destroy_process_group()


def agree(world: World, error: Exception | None) -> None:
    """A barrier that fails everywhere if it failed anywhere: every process passes the EngineError
    it met (or None); if any did, each raises - the first failing rank's message, once per machine."""
    if not world.active:
        if error is not None:
            raise Agreed(str(error)) from None
        return
    messages = [None] * world.size
    dist.all_gather_object(messages, None if error is None else str(error))
    failed = [(r, m) for r, m in enumerate(messages) if m is not None]
    if not failed:
        return
    rank, message = failed[0]
    if rank != world.rank and error is None:
        message = f"{message} (process {rank})"
    if speaks():
        print(f"error: {message}", file=sys.stderr, flush=True)
    # nobody exits before the line is out: torchrun stops the rest as soon as one process ends
    dist.barrier()
    raise Quiet(message)


def mean_value(world: World, value: float) -> float:
    """A float averaged over all processes (the loss shown and logged)."""
    if not world.active:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.item() / world.size
