"""What every view shares: the values a request may send checked into numbers, the status line,
the named results a view returns, and a few words the page uses everywhere."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields
from pathlib import Path

from engine.config import check_seed as engine_check_seed
from engine.errors import EngineError
from engine.methods import methods as compared_methods

CLASS, IMAGES, MIXTURE_MODE = "class", "uploaded images", "mixture model (unconditional)"
BLEND, SWITCH = "blend", "switch"
FG, MIXTURE, CONDITIONAL = "feature_guided", "mixture", "conditional"
# The methods the Sample view compares on one class and seed, as the report compares them
# (engine/methods.py): feature guidance, the class-conditional network alone (w = 0) and with
# classifier-free guidance of weight w; label -> (checkpoint kind, w)
METHODS = {m.label: (m.kind, m.cfg) for m in compared_methods()}
COMPARE_MAX = 8        # samples per method: every method's grid in view side by side at 1280x800
# What the Interpolate view interpolates: centroids of the feature-guided model, or class embeddings
# of the conditional one (engine/conditional.py)
INTERPOLATED = {FG: "centroids (feature guidance)", CONDITIONAL: "class embeddings (conditional network)"}
GRID_PX = 420          # a 4 x 4 grid of 32-pixel samples at 3x: 96 pixels each
MAX_SAMPLES = 64
MAX_UPLOADS = 16


@dataclass
class Result:
    """A view's named result. `outputs()` gives the fields in the order of the endpoint's outputs
    (docs/app.md); fields declared with `metadata={"page": True}` go only to the page."""

    def outputs(self, page: bool = False) -> tuple:
        return tuple(getattr(self, f.name) for f in fields(self) if page or not f.metadata.get("page"))

    @classmethod
    def count(cls, page: bool = False) -> int:
        return sum(1 for f in fields(cls) if page or not f.metadata.get("page"))


PAGE = {"page": True}


def whole(v, what: str) -> int:
    """v as an int, if it is a whole number (2.0 is, 2.5 and NaN are not)."""
    try:
        if isinstance(v, float) and not v.is_integer():
            raise ValueError
        i = int(v)
    except (TypeError, ValueError, OverflowError):
        raise EngineError(f"{what} must be a whole number, got {v!r}") from None
    return i


def number(v, what: str) -> float:
    """v as a finite float (the API may send strings such as '0.05', or NaN)."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise EngineError(f"{what} must be a number, got {v!r}") from None
    if not math.isfinite(x):
        raise EngineError(f"{what} must be a finite number, got {v!r}")
    return x


def check_count(n, most: int = MAX_SAMPLES, what: str = "number of samples") -> int:
    n = whole(n, what)
    if not 1 <= n <= most:
        raise EngineError(f"{what} must be between 1 and {most}, got {n}")
    return n


def check_seed(seed) -> int:
    return engine_check_seed(whole(seed, "seed"))


def file_list(files) -> list[str]:
    """Uploaded files as paths, whatever shape gradio or a client hands them in."""
    if files is None:
        return []
    if isinstance(files, (str, Path)):
        files = [files]
    out = []
    for f in files:
        if isinstance(f, dict):
            f = f.get("path")
        elif hasattr(f, "path"):
            f = f.path
        if f:
            out.append(str(f))
    return out


def possessive(name: str) -> str:
    """stars -> stars', brick -> brick's."""
    return f"{name}'" if name.endswith("s") else f"{name}'s"


def markdown_bold(text: str) -> str:
    """**x** -> <b>x</b>, for a line of markdown put into HTML."""
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)


def status_html(text: str, fraction: float | None = None, kind: str = "") -> str:
    """The run status line: an optional progress bar and the words, styled by kind
    (done, error, stopped, queued, stale)."""
    bar = "" if fraction is None else \
        f'<progress class="run-progress" value="{fraction:.3f}" max="1"></progress>'
    return f'<div class="run-status {kind}">{bar}<span>{text}</span></div>'


def correlation_words(r: float, rho: float) -> str:
    """How strong a correlation is, in words (|r| < 0.3 weak, < 0.6 moderate, else strong)."""
    if not math.isfinite(r):
        return "no correlation can be computed (fewer than three pairs, or constant distances)"
    strength = "weak" if abs(r) < 0.3 else "moderate" if abs(r) < 0.6 else "strong"
    sign = "positive" if r > 0 else "negative"
    return (f"a {strength} {sign} correlation (Pearson r = {r:.2f}, Spearman rho = {rho:.2f}): "
            + ("the two distances rank the pairs alike" if strength == "strong" else
               "the centroid distance predicts only part of the density distance here; other layers or "
               "sigmas may follow it better"))
