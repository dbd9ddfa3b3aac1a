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
                   "assets/mixture for the shipped model; for a run, the matching mixture run if any, else the "
                   "shipped one when trained on the same data)")
    p.add_argument("--atlas", default=None,
                   help="atlas folder of the first model (default: assets/atlas for the shipped models; for "
                   "another checkpoint DIR/atlas, built in the background and saved there when missing)")
    p.add_argument("--no-runs", action="store_true", help="do not offer the runs found under runs/ in the picker")
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


def find_runs(root) -> list:
    """model.pt files of feature-guided runs under root (runs/NAME/model.pt, runs/NAME/stages/S/model.pt)."""
    from pathlib import Path

    from engine.checkpoint import safe_load
    found = []
    root = Path(root)
    if not root.is_dir():
        return found
    for path in sorted(list(root.glob("*/model.pt")) + list(root.glob("*/stages/*/model.pt"))):
        try:
            state = safe_load(path)
            tc = state["train_config"]
            kind = tc.get("kind") or tc["model"].get("kind")
            if kind == "feature_guided" and state.get("centroids"):
                found.append(path)
        except Exception:                     # unreadable or not a checkpoint: not offered
            continue
    return found


def mixture_for(run) -> "Path | None":
    """The mixture run beside a feature-guided one: the same path with feature_guided -> mixture."""
    from pathlib import Path
    text = str(run)
    if "feature_guided" not in text:
        return None
    other = Path(text.replace("feature_guided", "mixture"))
    return other if other.is_file() else None


def sources(args) -> list:
    """The model picker's entries: --checkpoint ones (or the shipped model), then runs/."""
    from pathlib import Path

    from app.context import ModelSource, shown_path
    from engine.atlas import DEFAULT_ATLAS
    from engine.checkpoint import DEFAULT_CHECKPOINT, DEFAULT_MIXTURE
    out = []
    if args.checkpoint:
        for k, ck in enumerate(args.checkpoint):
            folder = Path(ck) if Path(ck).is_dir() else Path(ck).parent
            atlas = args.atlas if (k == 0 and args.atlas) else folder / "atlas"
            out.append(ModelSource(ck, args.mixture or mixture_for(Path(ck) / "model.pt" if Path(ck).is_dir() else ck),
                                   atlas, save_to=None if (k == 0 and args.atlas) else folder / "atlas",
                                   atlas_given=bool(k == 0 and args.atlas)))
    else:
        out.append(ModelSource(None, args.mixture or DEFAULT_MIXTURE, args.atlas or DEFAULT_ATLAS,
                               label=f"shipped ({shown_path(Path(DEFAULT_CHECKPOINT))})",
                               atlas_given=bool(args.atlas)))
    if not args.no_runs:
        from app.context import ROOT
        seen = {str(Path(s.checkpoint).resolve()) for s in out if s.checkpoint}
        for run in find_runs(ROOT / "runs"):
            if str(run.resolve()) in seen or str(run.parent.resolve()) in seen:
                continue
            out.append(ModelSource(run, mixture_for(run) or DEFAULT_MIXTURE, run.parent / "atlas",
                                   save_to=run.parent / "atlas"))
    return out


def load(args):
    """The registry of models the app serves, its first model loaded (the rest on first use)."""
    from app.context import Registry
    reg = Registry(sources(args), warm_umap=not args.no_umap, device=args.device)
    reg.loaded[reg.default] = reg._load(reg.sources[reg.default])
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
