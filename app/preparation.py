"""The background work of one model: its atlas, its independent classifier and its measures,
each prepared once in a daemon thread so that the page is usable at once; each holder says what
it is doing in one line (`status`), which the page shows.
"""
from __future__ import annotations

import atexit
import logging
import threading
import time
from pathlib import Path

from engine.atlas import ATLAS_SIGMAS, Atlas, build_atlas
from engine.checkpoint import Checkpoint
from engine.errors import EngineError
from engine.measures import Measures, measure

log = logging.getLogger("app")


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
def wait_for_background(timeout: float = 120.0) -> list[str]:
    """Wait at most `timeout` seconds in all for the background work started so far; the names of
    the threads still running then."""
    end = time.monotonic() + timeout
    for thread in _BACKGROUND:
        thread.join(max(0.0, end - time.monotonic()))
    return [thread.name for thread in _BACKGROUND if thread.is_alive()]


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

    def join(self, timeout: float | None = None) -> None:
        """Wait for the background work (if started) to end, or timeout to pass."""
        if self._thread is not None:
            self._thread.join(timeout)

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
        self.started: float | None = None
        self.built_done, self.built_total = 0, len(checkpoints) * len(ATLAS_SIGMAS)
        super().__init__()
        if atlas is not None:
            self.phase = "ready"

    def needs_work(self) -> bool:
        """The atlas is built if missing; its UMAP maps are warmed if asked."""
        return self.atlas is None or (self.warm and bool(self.atlas.missing_umaps()))

    def _work(self) -> None:
        if self.atlas is None:
            self.phase = "building"
            self.started = time.perf_counter()
            t0 = self.started
            self.atlas = build_atlas(self.checkpoints, per_class=self.per_class, umap=False, progress=False,
                                     callback=self._built)
            log.info("atlas built in %.1f s", time.perf_counter() - t0)
            self._save()
        if self.warm and self.atlas.missing_umaps():
            self.phase = "umap"
            self.umap_total = len(self.atlas.missing_umaps())
            self.atlas.warm_umap(self._progress)
            self._save()

    def _built(self, done: int, total: int) -> None:
        self.built_done, self.built_total = done, total

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
            models = " and ".join("feature-guided" if m == "feature_guided" else m for m in self.checkpoints)
            since = "" if self.started is None else \
                f" (step {self.built_done} of {self.built_total}, {time.perf_counter() - self.started:.0f} s so far)"
            return (f"Preparing the atlas of this model: the features of {self.per_class} held-out test images "
                    f"per class at {len(ATLAS_SIGMAS)} noise levels, for the {models} model{since}. "
                    "The maps appear when it is done.")
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
