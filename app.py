"""Serve the exploration app: `python app.py` (what `make run` does) or
`python app.py --checkpoint DIR` for a model trained with `python -m engine train`.

Binds 127.0.0.1:7860 by default (--host / --port to change it); never creates a share link.
The page loads nothing from outside the server. See docs/app.md for the views and the API.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"     # before gradio is imported: no telemetry
os.environ.setdefault("GRADIO_SHARE", "False")

T_START = time.perf_counter()


def parse_args(argv=None) -> argparse.Namespace:
    from engine.cli import whole_number
    p = argparse.ArgumentParser(description="Feature-guided score diffusion explorer (gradio app).")
    p.add_argument("--checkpoint", action="append", default=None,
                   help="feature-guided run folder or .pt file; repeat to offer several in the page's model "
                   "picker (default: the shipped assets/feature_guided and every feature-guided run under runs/)")
    p.add_argument("--mixture", default=None,
                   help="mixture (unconditional) run folder for the comparisons (default: the shipped "
                   "assets/mixture for the shipped model; for another, a mixture run under runs/ trained on the same "
                   "dataset and classes, as its checkpoint records, else the shipped one when it matches)")
    p.add_argument("--conditional", default=None,
                   help="class-conditional run folder (train --kind conditional) to compare the feature-guided "
                   "model with, in Sample and Interpolate (default: the shipped assets/conditional for the shipped "
                   "model when it is there; for another, a conditional run under runs/ trained on the same data)")
    p.add_argument("--atlas", default=None,
                   help="atlas folder of the first model (default: assets/atlas for the shipped models; for "
                   "another checkpoint DIR/atlas, built in the background and saved there when missing)")
    p.add_argument("--no-runs", action="store_true", help="do not offer the runs found under runs/ in the picker")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=whole_number(1, 65535), default=7860, help="port (default 7860)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument("--threads", type=whole_number(), default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="the networks' arithmetic: auto (bf16 where the CPU or GPU multiplies bfloat16 in hardware, "
                   "else fp32), fp32 or bf16; compiled in the background at start (default auto)")
    p.add_argument("--concurrency", type=whole_number(), default=1,
                   help="engine jobs run at once; more requests wait in the queue (default 1)")
    p.add_argument("--queue", type=whole_number(), default=32,
                   help="most requests waiting in the queue (default 32)")
    p.add_argument("--no-umap", action="store_true", help="do not fit missing UMAP maps (PCA only)")
    return p.parse_args(argv)


def find_runs(root) -> list:
    """model.pt files of feature-guided runs under root (app/sources.py)."""
    from app.sources import find_runs as found
    return found(root)


def sources(args, runs_root=None) -> list:
    """The model picker's entries (app/sources.py): --checkpoint ones (or the shipped model and the
    shipped ovals set), then runs/."""
    from app.sources import sources as entries
    return entries(args, runs_root)


def load(args):
    """The registry of models the app serves, its first model loaded (the rest on first use)."""
    from app.context import Registry
    reg = Registry(sources(args), warm_umap=not args.no_umap, device=args.device, precision=args.precision)
    reg.loaded[reg.default] = reg.load(reg.sources[reg.default])
    return reg


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    log = logging.getLogger("app")
    import torch

    from engine.errors import EngineError
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        registry = load(args)
        from app import create_app, launch_kwargs
        demo = create_app(registry, engine_concurrency=args.concurrency, max_queue=args.queue)
    except EngineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    log.info("models and page ready in %.1f s; serving http://%s:%d", time.perf_counter() - T_START,
             args.host, args.port)
    print(f"* serving http://{args.host}:{args.port} (Ctrl+C to stop)", flush=True)
    try:
        demo.launch(**launch_kwargs(args.host, args.port, quiet=True))
    except OSError as e:         # a bad --host or a port in use: gradio says only "cannot find empty port"
        print(f"error: cannot serve on {args.host}:{args.port} ({e}); check --host (an address of this "
              "machine, e.g. 127.0.0.1) and --port (a free one)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
