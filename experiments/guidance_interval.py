"""Guidance only at the larger noise levels: does a limited interval lift the flat classes?

    python experiments/guidance_interval.py --above 0.2 --guidance 0.5 [--below 0.25] [--seed 1000] [evaluate's flags]

The sampler's guidance (engine/sampler.py, `guided`) carries the target past itself at every noise
level. Kynkaenniemi et al. 2024 ("Applying guidance in a limited interval improves sample and
distribution quality in diffusion models") apply it only in a band of noise levels. This runs
`python -m engine evaluate` (every flag after --above is evaluate's; `--no-timing --precision fp32`
are added) with the target carried by --guidance while an image's noise estimate is above --above,
and by --below (default 0: phi* itself) at and below it, and prints evaluate's JSON. docs/model.md, "2026-12-07 (sampler screens)",
quotes it beside `evaluate --guidance G` at every level.
"""
from __future__ import annotations

import argparse
import sys

import torch

import engine.sampler as sampler
from engine.cli import main


def limited(above: float, below: float = 0.0, carry=sampler.guided):
    """`guided` with the target carried by g for the images whose sigma is above `above`, by
    `below` for the others: the engine's own step past the target (`carry` at g = 1, phi* minus
    the mixture's centroid), taken g times per image."""
    def guided(ckpt, phi_star, sigma, guidance):
        if phi_star is None or guidance == 0:
            return phi_star
        g = torch.where(sigma.to(phi_star.device) > above, guidance, below).to(phi_star)[:, None]
        return phi_star + g * (carry(ckpt, phi_star, sigma, 1.0) - phi_star)
    return guided


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                epilog="Every other flag is passed to `python -m engine evaluate` (--guidance G, --seed S, "
                                       "--per-class N, --sheet FILE.png, --out FILE, ...).")
    p.add_argument("--above", type=float, required=True,
                   help="carry the target by --guidance only while the noise estimate is above this sigma")
    p.add_argument("--below", type=float, default=0.0,
                   help="the guidance at and below --above (default 0: the target itself)")
    return p.parse_known_args(argv)


if __name__ == "__main__":
    args, rest = parse(sys.argv[1:])
    # the walk looks `guided` up in its module at every step (target_function), so this is the
    # only change: the evaluation, its seeds and its measures are evaluate's own
    sampler.guided = limited(args.above, args.below)
    sys.exit(main(["evaluate", "--no-timing", "--precision", "fp32", *rest]))
