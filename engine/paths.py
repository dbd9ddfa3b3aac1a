"""Output paths checked before any work: a run, a report or an evaluation that fails only when
it comes to write its result has wasted the time it took (and the user's patience)."""
from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from typing import BinaryIO, Callable

from .errors import EngineError

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "assets"
CACHE = ROOT / "runs" / ".cache"      # ignored by git, like every run
# The shipped class-conditional baseline, beside assets/feature_guided and assets/mixture
DEFAULT_CONDITIONAL = ASSETS / "conditional"
# The second model set: the ovals pair trained without the ratio-1 class (feature_guided/,
# conditional/) and its measured interpolation against that class (ground_truth.json)
OVALS_SET = ASSETS / "ovals"


def write_atomic(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Write `path` whole or not at all: `write` fills a temporary file beside it, which is synced
    and renamed over it, so a reader never sees half a file, whenever the writer is stopped. Each
    write has a temporary file of its own, so two that build the same cache at once (the app's
    background work and a command, two test workers) each rename a complete file: the last wins."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:12]}.tmp")     # opened like any file: the umask's mode
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def cache_home(folder: str | Path) -> Path:
    """Where caches drawn from the model in `folder` (its atlas, measures, classifier) are kept:
    beside it, except for a model under assets/, whose files never change under a user: then
    CACHE/assets/<its path there>. A cache records the weights it was drawn from, so one left by
    other weights is rebuilt, never served."""
    folder = Path(folder).resolve()
    try:
        return CACHE / "assets" / folder.relative_to(ASSETS.resolve())
    except ValueError:
        return folder


def atlas_home(folder: str | Path) -> Path:
    """The atlas folder of the model in `folder` (cache_home)."""
    return cache_home(folder) / "atlas"


def shown_path(path) -> str:
    """A path as the project shows it (page, model card, evaluation JSON): relative to the project
    (or the working folder) when inside it, else only its last two parts; never the machine's
    absolute path."""
    if not path:
        return "(in memory)"
    p = Path(str(path)).resolve()
    for base in (ROOT, Path.cwd()):
        try:
            return p.relative_to(base.resolve()).as_posix()
        except ValueError:
            pass
    return "/".join(p.parts[-2:])


def _probe(folder: Path, what: str, shown: Path) -> None:
    """Make `folder` (and its parents) and write a scratch file in it: the one test that also
    catches read-only and special file systems (/proc), where permission bits say yes to root."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except FileExistsError:
        raise EngineError(f"{what} {shown}: a file stands where a folder is needed; choose another path") from None
    except OSError as e:
        raise EngineError(f"{what} {shown}: cannot write there ({e.strerror or e}); choose another path") from None


def writable_file(path: str | Path, what: str = "--out") -> Path:
    """`path` as a Path, once its folder exists and takes files; an existing folder is refused."""
    p = Path(path)
    if p.is_dir():
        raise EngineError(f"{what} {p}: is a folder; give a file name")
    _probe(p.parent, what, p)
    return p


def writable_dir(path: str | Path, what: str = "--out") -> Path:
    """`path` as a Path, created if missing, once it takes files; an existing file is refused."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise EngineError(f"{what} {p}: is a file; give a folder")
    _probe(p, what, p)
    return p
