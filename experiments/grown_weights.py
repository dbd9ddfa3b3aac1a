"""How much does a grown network use its new channels?

    python experiments/grown_weights.py [RUN ...] [--old-widths 24,48,96]

For each convolution of a network grown with `train --init --widths` (engine/grow.py): the RMS of
the weights from the new input channels into the old output channels - zero when it was grown -
against the RMS of the old-to-old weights. The old widths are those of the first run in the
checkpoint's lineage unless given. Default RUN: the shipped feature-guided and mixture models.
Takes a second.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys


from engine.checkpoint import DEFAULT_CHECKPOINT, DEFAULT_MIXTURE, load_checkpoint
from engine.errors import EngineError
from engine.grow import new_channel_use


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="*", default=[DEFAULT_CHECKPOINT, DEFAULT_MIXTURE])
    p.add_argument("--old-widths", default=None, help="widths before growing (default: the first run's)")
    args = p.parse_args()
    try:
        for run in args.runs:
            ckpt = load_checkpoint(run, device="cpu")
            widths = (tuple(int(w) for w in args.old_widths.split(",")) if args.old_widths
                      else ckpt.first_widths)
            if widths == tuple(ckpt.config.widths):
                raise EngineError(f"{run}: widths {widths} were never grown (give --old-widths if "
                                  "its earlier runs were not recorded)")
            old = dataclasses.replace(ckpt.config, widths=widths)
            print(f"{ckpt.path}: widths {widths} -> {tuple(ckpt.config.widths)}, {ckpt.total_steps} steps")
            print(f"  {'layer':22s} {'new -> old':>10s} {'old -> old':>10s}")
            for key, (new_in, old_in) in new_channel_use(ckpt.model.state_dict(), old, ckpt.config).items():
                print(f"  {key:22s} {new_in:10.4f} {old_in:10.4f}")
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
