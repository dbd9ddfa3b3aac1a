"""Writing a report's figures and numbers: each plotly figure as offline HTML (plotly.js written
once beside them, from the installed plotly package - never from a CDN) and as PNG (kaleido, which
needs a Chrome; without one PNG is skipped and the reason returned), an index page, and numbers
made JSON-safe.
"""
from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np


def chrome_path() -> str | None:
    """A browser for kaleido: $BROWSER_PATH, else Debian's chromium, else kaleido's own search."""
    return os.environ.get("BROWSER_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


def write_html(figures: dict, out: Path) -> list[str]:
    """Each figure as NAME.html loading plotly.min.js from the same folder (written once)."""
    files = []
    for name, fig in figures.items():
        fig.write_html(out / f"{name}.html", include_plotlyjs="directory", full_html=True)
        files.append(f"{name}.html")
    return files


def write_png(figures: dict, out: Path) -> str:
    """All figures as PNG in one browser session; returns "written" or why it was skipped."""
    try:
        import kaleido
        path = chrome_path()
        jobs = [{"fig": fig, "path": str(out / f"{name}.png"), "opts": {"scale": 1}} for name, fig in figures.items()]
        kaleido.write_fig_from_object_sync(jobs, kopts={"path": path} if path else {})
    except Exception as e:                     # any browser failure: PNG is optional, HTML + JSON are not
        return f"skipped: {type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"
    missing = [n for n in figures if not (out / f"{n}.png").is_file()]
    return f"skipped: kaleido wrote no file for {', '.join(missing)}" if missing else "written"


def write_index(out: Path, names: list[str], summary: dict) -> None:
    items = "\n".join(f'<li><a href="{n}.html">{n}</a></li>' for n in names)
    rows = "\n".join(f"<tr><td>{k}</td><td>{'yes' if v['pass'] else 'NO'}</td><td>{v['value']}</td>"
                     f"<td>{v['rule']}</td></tr>" for k, v in summary.get("bars", {}).items())
    (out / "index.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>feature-guided diffusion report</title></head>"
        f"<body><h1>Feature-guided score diffusion: measurements</h1><ul>{items}</ul>"
        f"<h2>Claims</h2><table border=1 cellpadding=4><tr><th>claim</th><th>holds</th><th>measured</th>"
        f"<th>rule</th></tr>{rows}</table><p>All numbers: <a href='report.json'>report.json</a></p></body></html>")


def plain(x):
    """numpy and NaN -> JSON-safe Python values (NaN becomes null)."""
    if isinstance(x, dict):
        return {str(k): plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return plain(x.tolist())
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    return x
