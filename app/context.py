"""What the app serves: the models of the page's picker, each with its atlas, classifier and
measures (app/preparation.py), shared read-only by every session.

Nothing here holds per-user state: a request's results live in its own outputs (and in
`gr.State`, which gradio keeps per browser session), so one user's run never shows in
another user's page.
"""
from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from engine.atlas import Atlas, same_data
from engine.checkpoint import Checkpoint
from engine.errors import EngineError
from engine.paths import ROOT, shown_path  # noqa: F401 (ROOT, shown_path: the pages')

from .common import CONDITIONAL, FG, MIXTURE
from .preparation import AtlasHolder, ClassifierHolder, MeasuresHolder, background  # noqa: F401

log = logging.getLogger("app")


class Context:
    """Everything a callback needs, shared by all sessions (read-only after start)."""

    def __init__(self, fg: Checkpoint, mixture: Checkpoint | None = None, atlas: AtlasHolder | None = None,
                 classifier: ClassifierHolder | None = None, out_dir: str | Path | None = None,
                 measures_folder: str | Path | None = None, label: str | None = None,
                 conditional: Checkpoint | None = None, ground_truth: str | Path | None = None):
        if fg.kind != FG:
            raise EngineError(f"{fg.path}: this is a {fg.kind} model; the app needs a feature-guided "
                              "checkpoint for --checkpoint (give the mixture one with --mixture)")
        fg.require_centroids()
        if mixture is not None:
            if mixture.kind != MIXTURE:
                raise EngineError(f"{mixture.path}: --mixture must be a mixture model, this one is {mixture.kind}")
            if mixture.classes != fg.classes or mixture.shape != fg.shape:
                raise EngineError(f"{mixture.path}: the mixture model was trained on other data "
                                  f"(classes or image size differ from {fg.path})")
        if conditional is not None:
            if conditional.kind != CONDITIONAL:
                raise EngineError(f"{conditional.path}: --conditional must be a conditional model, this one is "
                                  f"{conditional.kind}")
            if not same_data(conditional, fg):
                raise EngineError(f"{conditional.path}: the conditional model was trained on other data "
                                  f"(dataset, classes or image size differ from {fg.path})")
        self.fg = fg
        self.mixture = mixture
        self.conditional = conditional        # the class-conditional network of the same data, or None
        self.ground_truth_path = Path(ground_truth) if ground_truth else None
        self._truth: tuple[float, object] | None = None
        self.checkpoints = {FG: fg, **({MIXTURE: mixture} if mixture is not None else {})}
        self.atlas = atlas or AtlasHolder(self.checkpoints)
        self.classifier = classifier or ClassifierHolder(fg)
        self.out_dir = Path(out_dir) if out_dir else Path(tempfile.gettempdir()) / "fgd-app"
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.label = label or shown_path(fg.path)
        self.measures = MeasuresHolder(fg, self.atlas, self.classifier, measures_folder or self.atlas.path,
                                       self.atlas.save_to)

    @property
    def classes(self) -> list[str]:
        return self.fg.classes

    def start_background(self) -> None:
        self.atlas.start()
        self.classifier.start()
        self.measures.start()
        for ckpt in [*self.checkpoints.values(), *([self.conditional] if self.conditional is not None else [])]:
            warm_up(ckpt)

    def ground_truth(self):
        """The model set's measured interpolation against its held-out class (engine.ground_truth),
        read again when its file changes; None when the set has none or the file is not there yet.
        A file that is there but unreadable raises EngineError (which says how to write one)."""
        from engine.ground_truth import GroundTruth
        path = self.ground_truth_path
        if path is None or not path.is_file():
            return None
        stamp = path.stat().st_mtime
        if self._truth is None or self._truth[0] != stamp:
            self._truth = (stamp, GroundTruth.load(path))
        return self._truth[1]

    def new_run_dir(self) -> Path:
        """A fresh folder for one request's downloads; folders older than an hour are removed."""
        now = time.time()
        for old in self.out_dir.iterdir():
            try:
                if old.is_dir() and now - old.stat().st_mtime > 3600:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                pass
        d = self.out_dir / uuid.uuid4().hex[:12]
        d.mkdir(parents=True)
        return d

    def density(self, progress=None):
        """The density distances between all pairs of classes (engine.measures, cached beside the
        atlas or measured once in the background): the same numbers for every session."""
        return self.measures.wait_density(progress)

    def test_images(self) -> tuple[np.ndarray, np.ndarray]:
        """Held-out test images (N, C, H, W) and labels, from the atlas."""
        a = self.atlas.require()
        return a.images, a.labels


def use_precision(ckpt: Checkpoint, precision: str) -> None:
    """The network of a model the page serves at `precision` (engine/precision.py), compiled: the
    page makes the same calls again and again, so a compile pays for itself (warm_up does it
    before the first request needs it)."""
    policy = ckpt.use_precision(precision, compile=True, log=log.info)
    log.info("%s: %s", shown_path(ckpt.path), policy)


_WARMED: set[int] = set()


def warm_up(ckpt: Checkpoint) -> None:
    """Compile a model's network in the background, once; until it is done the network answers
    eagerly, so no request waits for the compile."""
    if id(ckpt) in _WARMED or not getattr(ckpt, "compiled", False):
        return
    _WARMED.add(id(ckpt))

    def work():
        seconds = ckpt.warm_up()
        log.info("%s: network compiled in %.1f s", shown_path(ckpt.path), seconds)
    background(work, "warm-up")


class ModelSource:
    """One entry of the page's model picker (a model set): a feature-guided checkpoint, the mixture
    model it is compared with, the class-conditional network of the same data (optional), where its
    atlas (and measures) live and, for a set with a held-out class, its measured interpolation
    against that class (ground_truth.json). Loaded on first use."""

    def __init__(self, checkpoint: str | Path | None, mixture: str | Path | None = None, atlas: str | Path | None = None,
                 save_to: str | Path | None = None, label: str | None = None, atlas_given: bool = False,
                 classifier=None, conditional: str | Path | None = None, ground_truth: str | Path | None = None,
                 classes: list[str] | None = None):
        self.checkpoint = checkpoint
        self.classifier = classifier          # an engine.classifier.Classifier; None: loaded in the background
        self.mixture = mixture
        self.conditional = conditional
        self.ground_truth = ground_truth
        self._classes: list[str] | None = list(classes) if classes is not None else None   # None: read when asked
        self.atlas = atlas
        self.save_to = save_to
        self.atlas_given = atlas_given
        self.label = label or shown_path(checkpoint)

    @property
    def key(self) -> str:
        return self.label

    def classes(self) -> list[str]:
        """The classes its checkpoint records, read without building its network ([] when it cannot
        be read: it is refused with its reason when picked)."""
        if self._classes is None:
            from engine.checkpoint import DEFAULT_CHECKPOINT, read_file
            try:
                self._classes = [str(c) for c in read_file(self.checkpoint or DEFAULT_CHECKPOINT)["classes"]]
            except (EngineError, KeyError, TypeError):
                self._classes = []
        return self._classes


class Registry:
    """The models the page can switch between without restarting the server. The first is loaded
    at start; any other on first use (its atlas, classifier and measures then prepared in the
    background, as for the first)."""

    def __init__(self, sources: list[ModelSource] | None = None, loaded: dict[str, Context] | None = None,
                 device: str = "auto", warm_umap: bool = True, per_class: int = 50, precision: str | None = None):
        self.sources = {s.key: s for s in (sources or [])}
        self.loaded: dict[str, Context] = dict(loaded or {})
        self.order = list(self.loaded) + [k for k in self.sources if k not in self.loaded]
        if not self.order:
            raise EngineError("no model to serve")
        self.device, self.warm_umap, self.per_class = device, warm_umap, per_class
        self.precision = precision            # None: the engine's default (fp32, eager)
        self._views: dict[str, object] = {}
        self._lock = threading.Lock()

    @property
    def default(self) -> str:
        return self.order[0]

    def choices(self) -> list[str]:
        return list(self.order)

    def all_classes(self) -> list[str]:
        """Every class of the picker's models, the first model's first: what the page's class controls
        accept from a programmatic call, whichever model it names (the view then checks that the
        class is its model's). A page shows only its model's classes (set when it loads)."""
        names = list(self.context().classes)
        for key in self.order:
            more = self.loaded[key].classes if key in self.loaded else self.sources[key].classes()
            names += [c for c in more if c not in names]
        return names

    def context(self, key: str | None = None) -> Context:
        key = self.default if key in (None, "") else str(key)
        if key not in self.loaded and key not in self.sources:
            raise EngineError(f"unknown model '{key}'; the page offers {', '.join(self.order)}")
        with self._lock:
            if key not in self.loaded:
                self.loaded[key] = self.load(self.sources[key])
                self.loaded[key].start_background()
        return self.loaded[key]

    def load_first(self) -> Context:
        """Load the first model now (the others wait until picked)."""
        return self.context(self.default)

    def views(self, key: str | None = None):
        from .views import Views
        ctx = self.context(key)
        with self._lock:
            if id(ctx) not in self._views:
                self._views[id(ctx)] = Views(ctx)
            return self._views[id(ctx)]

    def load(self, src: ModelSource) -> Context:
        """A picker entry's models, read from disk, with their atlas if it was drawn from them."""
        from engine.checkpoint import load_checkpoint
        fg = load_checkpoint(src.checkpoint, self.device)
        mixture = None
        if src.mixture is not None:
            try:
                mixture = load_checkpoint(src.mixture, self.device)
                if mixture.kind != MIXTURE or mixture.classes != fg.classes or mixture.shape != fg.shape:
                    mixture = None
            except EngineError as e:
                log.warning("no mixture model for %s: %s", src.label, e)
        conditional = None
        if src.conditional is not None:
            try:
                conditional = load_checkpoint(src.conditional, self.device)
                if conditional.kind != CONDITIONAL or not same_data(conditional, fg):
                    log.warning("%s: not a conditional model of %s's data; compared without it",
                                shown_path(conditional.path), src.label)
                    conditional = None
            except EngineError as e:
                log.warning("no conditional model for %s: %s", src.label, e)
        checkpoints = {FG: fg, **({MIXTURE: mixture} if mixture is not None else {})}
        if self.precision is not None:
            for ckpt in [*checkpoints.values(), *([conditional] if conditional is not None else [])]:
                use_precision(ckpt, self.precision)
        atlas = None
        if src.atlas is not None:
            try:
                atlas = Atlas.load(src.atlas)
            except EngineError:
                atlas = None
        if atlas is not None and not atlas.matches(checkpoints) and not src.atlas_given:
            log.warning("the atlas of %s was built from other checkpoints; rebuilding it in the background", src.label)
            atlas = None
        holder = AtlasHolder(checkpoints, atlas, path=src.atlas, save_to=src.save_to, per_class=self.per_class,
                             warm=self.warm_umap)
        return Context(fg, mixture, holder, ClassifierHolder(fg, src.classifier), label=src.label,
                       measures_folder=src.atlas, conditional=conditional, ground_truth=src.ground_truth)
