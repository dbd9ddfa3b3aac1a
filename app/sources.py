"""The models of the page's picker: the `--checkpoint` ones (or the shipped model), then the
feature-guided runs under runs/, each paired with a mixture model trained on the same data.

A model's mixture partner is found by what the checkpoints record - the dataset, its classes and
the image shape - never by the folders' names: a run of `runs/` gets a mixture run of `runs/`
trained on the same data (the longest trained, when there are several), else the shipped mixture
when that one matches.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from engine.atlas import DEFAULT_ATLAS
from engine.checkpoint import DEFAULT_CHECKPOINT, DEFAULT_MIXTURE, read_file
from engine.errors import EngineError
from engine.paths import ROOT, atlas_home, shown_path

from .common import FG, MIXTURE
from .context import ModelSource

log = logging.getLogger("app")


@dataclass(frozen=True)
class Found:
    """What a checkpoint file records about itself, read without building its network."""
    path: Path
    kind: str
    dataset: str
    classes: tuple[str, ...]
    shape: tuple[int, int]           # channels, size
    steps: int
    centroids: bool

    def same_data(self, other: "Found") -> bool:
        return (self.dataset, self.classes, self.shape) == (other.dataset, other.classes, other.shape)


def describe(path) -> Found:
    """The facts of one checkpoint (a run folder or a .pt file); EngineError when it is not one."""
    state = read_file(path)
    try:
        tc = state["train_config"]
        model = tc["model"]
        steps = int(state.get("step", 0)) + sum(int(r.get("step", 0)) for r in _lineage(state.get("info", {})))
        return Found(Path(state["path"]), tc.get("kind") or model.get("kind"), str(tc["dataset"]),
                     tuple(state["classes"]), (int(model["channels"]), int(model["size"])), steps,
                     bool(state.get("centroids")))
    except (KeyError, TypeError, ValueError) as e:
        raise EngineError(f"{path}: checkpoint is missing or has malformed field {e}") from None


def _lineage(info: dict) -> list[dict]:
    runs, init = [], info.get("init")
    while isinstance(init, dict):
        runs.append(init)
        init = init.get("init")
    return runs


def scan(root) -> list[Found]:
    """Every readable checkpoint under root (root/NAME/model.pt, root/NAME/stages/S/model.pt); a file
    that is unreadable, not a checkpoint of this tool, or refused as unsafe is left out (logged)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for path in sorted(list(root.glob("*/model.pt")) + list(root.glob("*/stages/*/model.pt"))):
        try:
            found.append(describe(path))
        except EngineError as e:
            log.warning("not offered: %s", e)
    return found


def find_runs(root) -> list[Path]:
    """model.pt files of the feature-guided runs (with a centroid table) under root."""
    return [f.path for f in scan(root) if f.kind == FG and f.centroids]


def mixture_for(fg: Found, candidates: list[Found]) -> Path | None:
    """The mixture model trained on fg's data among the candidates: the longest trained (ties: the
    first), or None."""
    matches = [c for c in candidates if c.kind == MIXTURE and c.same_data(fg)]
    if not matches:
        return None
    return max(matches, key=lambda c: (c.steps, -matches.index(c))).path


def shipped_mixture() -> list[Found]:
    try:
        return [describe(DEFAULT_MIXTURE)]
    except EngineError:
        return []


def sources(args, runs_root=None) -> list[ModelSource]:
    """The model picker's entries: --checkpoint ones (or the shipped model), then the runs under
    runs_root (default: the project's runs/), unless args.no_runs."""
    runs_root = Path(runs_root) if runs_root is not None else ROOT / "runs"
    found = [] if args.no_runs else scan(runs_root)
    candidates = [f for f in found if f.kind == MIXTURE] + shipped_mixture()
    out = []
    if args.checkpoint:
        for k, ck in enumerate(args.checkpoint):
            folder = Path(ck) if Path(ck).is_dir() else Path(ck).parent
            given = k == 0 and bool(args.atlas)
            mixture = args.mixture
            if mixture is None:
                try:
                    mixture = mixture_for(describe(ck), candidates)
                except EngineError:
                    mixture = None        # the checkpoint itself is refused when loaded, with its reason
            out.append(ModelSource(ck, mixture, args.atlas if given else atlas_home(folder),
                                   save_to=None if given else atlas_home(folder), atlas_given=given))
    else:
        out.append(ModelSource(None, args.mixture or DEFAULT_MIXTURE, args.atlas or DEFAULT_ATLAS,
                               label=f"shipped ({shown_path(Path(DEFAULT_CHECKPOINT))})",
                               atlas_given=bool(args.atlas)))
    seen = {str(Path(s.checkpoint).resolve()) for s in out if s.checkpoint}
    for run in found:
        if run.kind != FG or not run.centroids:
            continue
        if str(run.path.resolve()) in seen or str(run.path.parent.resolve()) in seen:
            continue
        out.append(ModelSource(run.path, mixture_for(run, candidates), run.path.parent / "atlas",
                               save_to=run.path.parent / "atlas"))
    return out
