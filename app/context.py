"""What the app serves: the loaded models, the atlas and the classifier, shared read-only by
every session.

Nothing here holds per-user state: a request's results live in its own outputs (and in
`gr.State`, which gradio keeps per browser session), so one user's run never shows in
another user's page. The slow pieces (the atlas of a custom checkpoint, the UMAP maps, the
sample classifier) are prepared in background threads so the first page is usable at once;
each holder says what it is doing in one line (`status`), which the page shows.
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

from engine.atlas import Atlas, build_atlas
from engine.checkpoint import Checkpoint
from engine.errors import EngineError

log = logging.getLogger("app")

FG = "feature_guided"
MIXTURE = "mixture"


class AtlasHolder:
    """The atlas, possibly still being built, with its UMAP maps warming up in the background.

    `get()` returns the atlas or None while a custom checkpoint's atlas is being computed;
    embedding views draw PCA until `umap_ready` (the engine's rule), so nothing ever waits.
    """

    def __init__(self, checkpoints: dict[str, Checkpoint], atlas: Atlas | None = None,
                 path: str | Path | None = None, save_to: str | Path | None = None,
                 per_class: int = 50, warm: bool = True):
        self.checkpoints = checkpoints
        self.atlas = atlas
        self.path = Path(path) if path else None
        self.save_to = Path(save_to) if save_to else None
        self.per_class = per_class
        self.warm = warm
        self.error: str | None = None
        self.umap_done = 0
        self.umap_total = 0
        self.phase = "ready" if atlas is not None else "waiting"
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Build (if needed) and warm the UMAP maps in a daemon thread; returns at once."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="atlas", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        try:
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
            self.phase = "ready"
        except EngineError as e:
            self.error, self.phase = str(e), "failed"
        except Exception as e:                 # a bug, but the rest of the app keeps serving
            log.exception("atlas preparation failed")
            self.error, self.phase = f"{type(e).__name__}: {e}", "failed"

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


class ClassifierHolder:
    """The independent sample classifier (engine.classifier), loaded or trained in the background."""

    def __init__(self, ckpt: Checkpoint, classifier=None):
        self.ckpt = ckpt
        self.classifier = classifier
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.classifier is None and self._thread is None:
            self._thread = threading.Thread(target=self._work, name="classifier", daemon=True)
            self._thread.start()

    def _work(self) -> None:
        from engine.classifier import load_classifier
        try:
            self.classifier = load_classifier(self.ckpt, progress=False)
        except EngineError as e:
            self.error = str(e)
        except Exception as e:
            log.exception("classifier failed")
            self.error = f"{type(e).__name__}: {e}"

    def get(self):
        return self.classifier

    def wait(self, progress=None, timeout: float = 600.0):
        """The classifier, waiting for the background preparation if needed."""
        self.start()
        t0 = time.perf_counter()
        while self.classifier is None and self.error is None and self._thread is not None \
                and self._thread.is_alive() and time.perf_counter() - t0 < timeout:
            if progress is not None:
                progress(None, desc="waiting for the classifier (trained once, then cached)")
            self._thread.join(0.5)
        if self.classifier is None:
            raise EngineError(self.status())
        return self.classifier

    def status(self) -> str:
        if self.classifier is not None:
            return f"classifier test accuracy {self.classifier.test_accuracy:.0%}"
        if self.error:
            return f"no classifier: {self.error}"
        return "the classifier is being prepared in the background; probabilities appear on the next run"


class Context:
    """Everything a callback needs, shared by all sessions (read-only after start)."""

    def __init__(self, fg: Checkpoint, mixture: Checkpoint | None = None, atlas: AtlasHolder | None = None,
                 classifier: ClassifierHolder | None = None, out_dir: str | Path | None = None):
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
        self._density = None
        self._density_lock = threading.Lock()

    @property
    def classes(self) -> list[str]:
        return self.fg.classes

    def start_background(self) -> None:
        self.atlas.start()
        self.classifier.start()

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
        """The density distances between all pairs of classes (engine.analysis.density_distance),
        computed on first use from the atlas's held-out images and kept: they depend only on
        the model and the fixed seed, so every session gets the same numbers."""
        with self._density_lock:
            if self._density is None:
                from engine.analysis import density_distance
                images, labels = self.test_images()
                self._density = density_distance(self.fg, images, labels, progress=progress is not None)
        return self._density

    def test_images(self) -> tuple[np.ndarray, np.ndarray]:
        """Held-out test images (N, C, H, W) and labels, from the atlas."""
        a = self.atlas.require()
        return a.images, a.labels
