"""The model sets of the page's picker: the `--checkpoint` ones (or the shipped model and, when
it is there, the shipped ovals set), then the feature-guided runs under runs/, each paired with a
mixture model and a class-conditional model trained on the same data.

A model's partners are found by what the checkpoints record - the dataset, its classes and the
image shape - never by the folders' names: a run of `runs/` gets a mixture (conditional) run of
`runs/` trained on the same data (the longest trained, when there are several), else a shipped one
when that one matches.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from engine.atlas import DEFAULT_ATLAS
from engine.checkpoint import DEFAULT_CHECKPOINT, DEFAULT_MIXTURE, read_file
from engine.errors import EngineError
from engine.paths import DEFAULT_CONDITIONAL, OVALS_SET, ROOT, atlas_home, shown_path

from .common import CONDITIONAL, FG, MIXTURE
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


OVALS_LABEL = "ovals (ratio 1 held out)"


def partner_for(fg: Found, candidates: list[Found], kind: str = MIXTURE) -> Path | None:
    """The model of `kind` (mixture, conditional) trained on fg's data among the candidates: the
    longest trained (ties: the first), or None."""
    matches = [c for c in candidates if c.kind == kind and c.same_data(fg)]
    if not matches:
        return None
    return max(matches, key=lambda c: (c.steps, -matches.index(c))).path


def mixture_for(fg: Found, candidates: list[Found]) -> Path | None:
    """The mixture model trained on fg's data among the candidates (partner_for)."""
    return partner_for(fg, candidates, MIXTURE)


def conditional_for(fg: Found, candidates: list[Found]) -> Path | None:
    """The class-conditional model trained on fg's data among the candidates (partner_for)."""
    return partner_for(fg, candidates, CONDITIONAL)


def shipped(*paths) -> list[Found]:
    """The shipped checkpoints among `paths` that are there (a folder without model.pt is not)."""
    out = []
    for path in paths:
        path = Path(path)
        if path.is_dir() and not (path / "model.pt").is_file():
            continue
        try:
            out.append(describe(path))
        except EngineError:
            pass
    return out


def shipped_mixture() -> list[Found]:
    return shipped(DEFAULT_MIXTURE)


def ovals_source(candidates: list[Found]) -> ModelSource | None:
    """The shipped ovals set (OVALS_SET: feature_guided/, conditional/, ground_truth.json) when its
    feature-guided model is there: no mixture model; its atlas OVALS_SET/atlas when shipped, else
    made in the background and kept where caches of shipped models go (engine.paths.cache_home)."""
    folder = OVALS_SET / "feature_guided"
    found = shipped(folder)
    if not found or found[0].kind != FG:
        return None
    home = atlas_home(folder)
    atlas = OVALS_SET / "atlas"
    return ModelSource(folder, None, atlas if (atlas / "atlas.json").is_file() else home, save_to=home,
                       label=OVALS_LABEL, conditional=conditional_for(found[0], candidates),
                       ground_truth=OVALS_SET / "ground_truth.json", classes=list(found[0].classes))


def sources(args, runs_root=None) -> list[ModelSource]:
    """The model picker's entries: --checkpoint ones (or the shipped model), then the runs under
    runs_root (default: the project's runs/), unless args.no_runs."""
    runs_root = Path(runs_root) if runs_root is not None else ROOT / "runs"
    found = [] if args.no_runs else scan(runs_root)
    candidates = [f for f in found if f.kind in (MIXTURE, CONDITIONAL)] + \
        shipped(DEFAULT_MIXTURE, DEFAULT_CONDITIONAL, OVALS_SET / "conditional")
    given_conditional = getattr(args, "conditional", None)
    out = []
    if args.checkpoint:
        for k, ck in enumerate(args.checkpoint):
            folder = Path(ck) if Path(ck).is_dir() else Path(ck).parent
            given = k == 0 and bool(args.atlas)
            mixture, conditional = args.mixture, given_conditional
            try:
                facts = describe(ck)
                mixture = mixture if mixture is not None else mixture_for(facts, candidates)
                conditional = conditional if conditional is not None else conditional_for(facts, candidates)
            except EngineError:
                pass                      # the checkpoint itself is refused when loaded, with its reason
            out.append(ModelSource(ck, mixture, args.atlas if given else atlas_home(folder),
                                   save_to=None if given else atlas_home(folder), atlas_given=given,
                                   conditional=conditional))
    else:
        conditional = given_conditional
        if conditional is None:
            facts = shipped(DEFAULT_CHECKPOINT)
            conditional = conditional_for(facts[0], candidates) if facts else None
        out.append(ModelSource(None, args.mixture or DEFAULT_MIXTURE, args.atlas or DEFAULT_ATLAS,
                               label=f"shipped ({shown_path(Path(DEFAULT_CHECKPOINT))})",
                               atlas_given=bool(args.atlas), conditional=conditional))
        ovals = ovals_source(candidates)
        if ovals is not None:
            out.append(ovals)
    seen = {str(Path(s.checkpoint).resolve()) for s in out if s.checkpoint}
    for run in found:
        if run.kind != FG or not run.centroids:
            continue
        if str(run.path.resolve()) in seen or str(run.path.parent.resolve()) in seen:
            continue
        out.append(ModelSource(run.path, mixture_for(run, candidates), run.path.parent / "atlas",
                               save_to=run.path.parent / "atlas", conditional=conditional_for(run, candidates),
                               classes=list(run.classes)))
    return out
