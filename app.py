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
    p.add_argument("--checkpoint", default=None,
                   help="feature-guided run folder or .pt file (default: the shipped assets/feature_guided)")
    p.add_argument("--mixture", default=None,
                   help="mixture (unconditional) run folder for the comparisons (default: the shipped "
                   "assets/mixture when --checkpoint is the default, else none)")
    p.add_argument("--atlas", default=None,
                   help="atlas folder (default: assets/atlas for the shipped models; for another checkpoint "
                   "DIR/atlas, built in the background and saved there when missing)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=whole_number(1, 65535), default=7860, help="port (default 7860)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument("--threads", type=whole_number(), default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--concurrency", type=whole_number(), default=1,
                   help="engine jobs run at once; more requests wait in the queue (default 1)")
    p.add_argument("--queue", type=whole_number(), default=32,
                   help="most requests waiting in the queue (default 32)")
    p.add_argument("--no-umap", action="store_true", help="do not fit missing UMAP maps (PCA only)")
    return p.parse_args(argv)


def load(args):
    """The checkpoints and the atlas holder the app serves."""
    from pathlib import Path

    from app.context import FG, MIXTURE, AtlasHolder
    from engine.atlas import DEFAULT_ATLAS, Atlas
    from engine.checkpoint import DEFAULT_MIXTURE, load_checkpoint
    from engine.errors import EngineError

    log = logging.getLogger("app")
    fg = load_checkpoint(args.checkpoint, args.device)
    mixture = None
    if args.mixture:
        mixture = load_checkpoint(args.mixture, args.device)
    elif args.checkpoint is None:
        try:
            mixture = load_checkpoint(DEFAULT_MIXTURE, args.device)
        except EngineError as e:
            log.warning("no mixture model: %s", e)
    checkpoints = {FG: fg, **({MIXTURE: mixture} if mixture is not None else {})}

    if args.atlas:
        atlas = Atlas.load(args.atlas)
        save_to = None
    else:
        folder = DEFAULT_ATLAS if args.checkpoint is None else Path(fg.path).parent / "atlas"
        save_to = None if args.checkpoint is None else folder     # never write into assets/
        try:
            atlas = Atlas.load(folder)
        except EngineError:
            atlas = None
    if atlas is not None and not atlas.matches(checkpoints):
        if args.atlas:
            log.warning("the atlas %s was built from other checkpoints; its maps may not match", args.atlas)
        else:
            log.warning("the atlas was built from other checkpoints; rebuilding it in the background")
            atlas = None
    return fg, mixture, AtlasHolder(checkpoints, atlas, save_to=save_to, warm=not args.no_umap)


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
        fg, mixture, holder = load(args)
        from app.context import Context
        Context(fg, mixture, holder)        # refuse unusable models before importing gradio
        from app import create_demo, launch_kwargs
        demo = create_demo(fg, mixture, holder, engine_concurrency=args.concurrency, max_queue=args.queue)
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
