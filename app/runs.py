"""What a sampling run leaves behind: the downloads, and the command that reproduces it.

A run's JSON holds every parameter and the seed; its "command" field is the
`python -m engine sample` line that draws the same samples (same checkpoint, target,
seed and settings give the same numbers: engine/sampler.py seeds one noise stream per image).
"""
from __future__ import annotations

import json
import os
import shlex
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from engine.paths import shown_path
from engine.sampler import SamplerSettings

from . import imaging


def command_path(path: str) -> str:
    """A checkpoint path as the user would type it in a command: relative to the working folder when
    inside it, else as given (the command must run; the page shows the command's checkpoint by
    engine.paths.shown_path)."""
    try:
        rel = os.path.relpath(path)
    except ValueError:                          # another drive (Windows)
        return path
    return path if rel.startswith("..") else rel


def sample_command(checkpoint: str, target: dict, n: int, seed: int, settings: SamplerSettings,
                   image_names: list[str] | None = None, out: str = "samples.npy", precision: str | None = None) -> str:
    """The `python -m engine sample` line for a run (see engine/cli.py)."""
    args = ["python", "-m", "engine", "sample", "--checkpoint", command_path(checkpoint)]
    mode = target["mode"]
    if mode == "class":
        args += ["--class", str(target["class"])]
    elif mode == "images":
        args += ["--image", *(image_names or [])]
    elif mode == "interpolate":
        args += ["--interpolate", str(target["a"]), str(target["b"]), "--alpha", repr(float(target["alpha"]))]
    elif mode == "switch":
        args += ["--switch", str(target["a"]), str(target["b"]), "--sigma-star", repr(float(target["sigma_star"]))]
    else:
        args += ["--unconditional"]
    args += ["--n", str(n), "--seed", str(seed), "--beta", repr(settings.beta), "--h0", repr(settings.h0),
             "--guidance", repr(settings.guidance), "--eps-scale", repr(settings.eps_scale),
             "--eps-scale-sigma", repr(settings.eps_scale_sigma),
             "--sigma0", repr(settings.sigma_0), "--sigmaL", repr(settings.sigma_L),
             "--max-steps", str(settings.max_steps)]
    if precision is not None:                   # bf16 draws other numbers than fp32: the run's own
        args += ["--precision", precision]
    return shlex.join(args + ["--out", out])


def run_record(checkpoint: str, target: dict, n: int, seed: int, settings: SamplerSettings,
               image_names: list[str] | None = None, precision: str | None = None, **facts) -> dict:
    # the page's rule for paths: relative to the project, or the last two parts (no machine's path)
    rec = {"command": sample_command(checkpoint, target, n, seed, settings, image_names, precision=precision),
           "checkpoint": shown_path(checkpoint), "target": target, "n": n, "seed": seed, "settings": asdict(settings),
           **({"precision": precision} if precision else {})}
    if image_names:
        rec["images"] = image_names
        rec["note"] = "run the command in the folder that holds the original image files"
    rec.update(facts)
    rec["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return rec


def write_downloads(folder: Path, samples: np.ndarray, frames: list[np.ndarray], record: dict,
                    stem: str = "samples") -> list[str]:
    """PNG grid, animated GIF of the trajectory, .npy array (N, C, H, W) float32 in [0, 1], JSON."""
    png = imaging.save_png(imaging.grid(samples, scale=4), folder / f"{stem}.png")
    gif = imaging.save_gif(frames, folder / f"{stem}_trajectory.gif")
    npy = folder / f"{stem}.npy"
    np.save(npy, samples.astype(np.float32))
    js = folder / f"{stem}.json"
    js.write_text(json.dumps(record, indent=1, default=str))
    return [str(png), str(gif), str(npy), str(js)]
