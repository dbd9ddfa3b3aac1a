"""What the app serves: the loaded models, the atlas and the classifier, shared read-only by
every session.

Nothing here holds per-user state: a request's results live in its own outputs (and in
`gr.State`, which gradio keeps per browser session), so one user's run never shows in
another user's page. The slow pieces (the atlas of a custom checkpoint, the UMAP maps, the
sample classifier) are prepared in background threads so the first page is usable at once;
each holder says what it is doing in one line (`status`), which the page shows.
"""
from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

from engine.atlas import Atlas, build_atlas
from engine.checkpoint import Checkpoint
from engine.errors import EngineError
from engine.paths import ROOT, shown_path  # noqa: F401 (ROOT, shown_path: the pages')
from engine.measures import Measures, measure

log = logging.getLogger("app")

FG = "feature_guided"
MIXTURE = "mixture"


_BACKGROUND: list[threading.Thread] = []


def background(work, name: str) -> threading.Thread:
    """Start work (atlas, classifier, measures) in a daemon thread that the interpreter waits for at
    exit: a torch or numba call cut off by interpreter shutdown aborts the whole process
    ("terminate called without an active exception") instead of letting it exit cleanly."""
    thread = threading.Thread(target=work, name=name, daemon=True)
    _BACKGROUND.append(thread)
    thread.start()
    return thread


@atexit.register
def _wait_for_background(timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    for thread in _BACKGROUND:
        thread.join(max(0.0, end - time.monotonic()))


class Preparation:
    """Work done once in the background (the atlas, the classifier, the measures): the thread, the
    failure, the phase and the wait with the page's progress line, kept in one place."""

    name = "preparation"

    def __init__(self):
        self.error: str | None = None
        self.phase = "waiting"
        self._thread: threading.Thread | None = None

    def needs_work(self) -> bool:
        raise NotImplementedError

    def _work(self) -> None:
        raise NotImplementedError

    def status(self) -> str:
        raise NotImplementedError

    def start(self) -> None:
        """Start the work in a background thread, once, if it is needed; returns at once."""
        if self.needs_work() and self._thread is None:
            self._thread = background(self._run, self.name)

    def _run(self) -> None:
        try:
            self._work()
            self.phase = "ready"
        except EngineError as e:
            self.error, self.phase = str(e), "failed"
        except Exception as e:                 # a bug, but the rest of the app keeps serving
            log.exception("%s preparation failed", self.name)
            self.error, self.phase = f"{type(e).__name__}: {e}", "failed"

    def _wait(self, ready, progress, desc, timeout: float) -> bool:
        """Wait, with the page's progress line, until ready() holds, the work failed or ended, or
        timeout passes; returns ready()."""
        self.start()
        t0 = time.perf_counter()
        while not ready() and self.error is None and self._thread is not None \
                and self._thread.is_alive() and time.perf_counter() - t0 < timeout:
            if progress is not None:
                progress(None, desc=desc())
            self._thread.join(0.5)
        return ready()


class AtlasHolder(Preparation):
    """The atlas, possibly still being built, with its UMAP maps warming up in the background.

    `get()` returns the atlas or None while a custom checkpoint's atlas is being computed;
    embedding views draw PCA until `umap_ready` (the engine's rule), so nothing ever waits.
    """

    name = "atlas"

    def __init__(self, checkpoints: dict[str, Checkpoint], atlas: Atlas | None = None,
                 path: str | Path | None = None, save_to: str | Path | None = None,
                 per_class: int = 50, warm: bool = True):
        self.checkpoints = checkpoints
        self.atlas = atlas
        self.path = Path(path) if path else None
        self.save_to = Path(save_to) if save_to else None
        self.per_class = per_class
        self.warm = warm
        self.umap_done = 0
        self.umap_total = 0
        super().__init__()
        if atlas is not None:
            self.phase = "ready"

    def needs_work(self) -> bool:
        """The atlas is built if missing; its UMAP maps are warmed if asked."""
        return self.atlas is None or (self.warm and bool(self.atlas.missing_umaps()))

    def _work(self) -> None:
        if self.atlas is None:
            self.phase = "building"
            t0 = time.perf_counter()
            self.atlas = build_atlas(self.checkpoints, per_class=self.per_class, umap=False, progress=False)
            log.info("atlas built in %.1f s", time.perf_counter() - t0)
            self._save()
        if self.warm and self.atlas.missing_umaps():
            self.phase = "umap"
            self.umap_total = len(self.atlas.missing_umaps())
            self.atlas.warm_umap(self._progress)
            self._save()

    def _progress(self, done: int, total: int, key) -> None:
        self.umap_done, self.umap_total = done, total

    def _save(self) -> None:
        if self.save_to is None:
            return
        try:
            self.atlas.save(self.save_to)
            log.info("atlas saved to %s", self.save_to)
        except OSError as e:
            log.warning("could not save the atlas to %s (%s); it stays in memory", self.save_to, e)

    def get(self) -> Atlas | None:
        return self.atlas

    def require(self) -> Atlas:
        if self.atlas is None:
            raise EngineError(self.status())
        return self.atlas

    def status(self) -> str:
        if self.phase == "failed":
            return f"The atlas could not be prepared: {self.error}"
        if self.atlas is None:
            return ("The atlas (features of held-out test images) is being computed for this model; "
                    "the maps appear in a few seconds.")
        if self.phase == "umap" and self.umap_total:
            return (f"UMAP maps: {self.umap_done} of {self.umap_total} fitted in the background; "
                    "PCA is shown where a map is not ready yet.")
        return "All maps are ready."


class ClassifierHolder(Preparation):
    """The independent sample classifier (engine.classifier), loaded or trained in the background."""

    name = "classifier"

    def __init__(self, ckpt: Checkpoint, classifier=None):
        super().__init__()
        self.ckpt = ckpt
        self.classifier = classifier

    def needs_work(self) -> bool:
        return self.classifier is None

    def _work(self) -> None:
        from engine.classifier import load_classifier
        self.classifier = load_classifier(self.ckpt, progress=False)

    def get(self):
        return self.classifier

    def wait(self, progress=None, timeout: float = 600.0):
        """The classifier, waiting for the background preparation if needed."""
        if not self._wait(lambda: self.classifier is not None, progress,
                          lambda: "waiting for the classifier (trained once, then cached)", timeout):
            raise EngineError(self.status())
        return self.classifier

    def status(self) -> str:
        if self.classifier is not None:
            return f"classifier test accuracy {self.classifier.test_accuracy:.0%}"
        if self.error:
            return f"no classifier: {self.error}"
        return "the classifier is being prepared in the background; probabilities appear on the next run"


class MeasuresHolder(Preparation):
    """The model's cached measures (engine.measures: density distances, how well each class's
    samples are read, the default interpolation pair and trajectory targets): read from the atlas
    folder when drawn from this model, else computed in the background once the atlas and the
    classifier are ready (about a minute on 2 CPU cores) and saved beside the atlas when allowed."""

    name = "measures"

    def __init__(self, fg: Checkpoint, atlas: AtlasHolder, classifier: ClassifierHolder,
                 folder: str | Path | None = None, save_to: str | Path | None = None):
        super().__init__()
        self.fg, self.atlas, self.classifier = fg, atlas, classifier
        self.save_to = Path(save_to) if save_to else None
        self.measures = None
        self.density = None                   # the density distances, as soon as they are measured
        for where in (folder, save_to):
            if where is not None and self.measures is None:
                try:
                    m = Measures.load(where)
                    if m.matches(fg):
                        self.measures, self.phase = m, "ready"
                    else:
                        log.warning("the measures in %s were drawn from other weights; measuring again", where)
                except EngineError:
                    pass

    def needs_work(self) -> bool:
        return self.measures is None

    def _work(self) -> None:
        while self.atlas.get() is None and self.atlas.phase != "failed":
            time.sleep(0.5)
        atlas = self.atlas.require()
        self.phase = "measuring"
        t0 = time.perf_counter()
        self.measures = measure(self.fg, atlas.images, atlas.labels, self.classifier.wait,
                                on_density=self._got_density)
        log.info("measures of %s in %.1f s", self.fg.path and Path(self.fg.path).name, time.perf_counter() - t0)
        if self.save_to is not None:
            try:
                self.measures.save(self.save_to)
            except OSError as e:
                log.warning("could not save the measures (%s); they stay in memory", e)

    def _got_density(self, density) -> None:
        self.density = density

    def get(self) -> Measures | None:
        return self.measures

    def wait_density(self, progress=None, timeout: float = 900.0):
        """The density distances alone: ready before the rest of the measures (which wait for the
        classifier)."""
        self._wait(lambda: self.measures is not None or self.density is not None, progress, self.status, timeout)
        if self.measures is not None:
            return self.measures
        if self.density is None:
            raise EngineError(self.status())
        return self.density

    def wait(self, progress=None, timeout: float = 900.0) -> Measures:
        if not self._wait(lambda: self.measures is not None, progress, self.status, timeout):
            raise EngineError(self.status())
        return self.measures

    def status(self) -> str:
        if self.measures is not None:
            return "measured"
        if self.error:
            return f"this model could not be measured: {self.error}"
        return ("measuring this model once (density distances between classes, samples of every class); "
                "about a minute on 2 CPU cores")


class Context:
    """Everything a callback needs, shared by all sessions (read-only after start)."""

    def __init__(self, fg: Checkpoint, mixture: Checkpoint | None = None, atlas: AtlasHolder | None = None,
                 classifier: ClassifierHolder | None = None, out_dir: str | Path | None = None,
                 measures_folder: str | Path | None = None, label: str | None = None):
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
        self.fg = fg
        self.mixture = mixture
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


class ModelSource:
    """One entry of the page's model picker: a feature-guided checkpoint, the mixture model it is
    compared with, and where its atlas (and measures) live. Loaded on first use."""

    def __init__(self, checkpoint: str | Path | None, mixture: str | Path | None = None, atlas: str | Path | None = None,
                 save_to: str | Path | None = None, label: str | None = None, atlas_given: bool = False,
                 classifier=None):
        self.checkpoint = checkpoint
        self.classifier = classifier          # an engine.classifier.Classifier; None: loaded in the background
        self.mixture = mixture
        self.atlas = atlas
        self.save_to = save_to
        self.atlas_given = atlas_given
        self.label = label or shown_path(checkpoint)

    @property
    def key(self) -> str:
        return self.label


class Registry:
    """The models the page can switch between without restarting the server. The first is loaded
    at start; any other on first use (its atlas, classifier and measures then prepared in the
    background, as for the first)."""

    def __init__(self, sources: list[ModelSource] | None = None, loaded: dict[str, Context] | None = None,
                 device: str = "auto", warm_umap: bool = True, per_class: int = 50):
        self.sources = {s.key: s for s in (sources or [])}
        self.loaded: dict[str, Context] = dict(loaded or {})
        self.order = list(self.loaded) + [k for k in self.sources if k not in self.loaded]
        if not self.order:
            raise EngineError("no model to serve")
        self.device, self.warm_umap, self.per_class = device, warm_umap, per_class
        self._views: dict[str, object] = {}
        self._lock = threading.Lock()

    @property
    def default(self) -> str:
        return self.order[0]

    def choices(self) -> list[str]:
        return list(self.order)

    def context(self, key: str | None = None) -> Context:
        key = self.default if key in (None, "") else str(key)
        if key not in self.loaded and key not in self.sources:
            raise EngineError(f"unknown model '{key}'; the page offers {', '.join(self.order)}")
        with self._lock:
            if key not in self.loaded:
                self.loaded[key] = self._load(self.sources[key])
                self.loaded[key].start_background()
        return self.loaded[key]

    def views(self, key: str | None = None):
        from .callbacks import Views
        ctx = self.context(key)
        with self._lock:
            if id(ctx) not in self._views:
                self._views[id(ctx)] = Views(ctx)
            return self._views[id(ctx)]

    def _load(self, src: ModelSource) -> Context:
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
        checkpoints = {FG: fg, **({MIXTURE: mixture} if mixture is not None else {})}
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
                       measures_folder=src.atlas)
