"""The page's plotly figures, drawn from numbers the engine computed: the embedding map with its
clickable points, trajectory paths over it, the distance between trajectories, the probability
bars, the gains of one image, the heatmaps, the labelled scatter and the lineage's loss. Every
figure has a title that says what it shows, labelled axes, and the class colours of
engine/palette.py, which the report's figures share.
"""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from engine.palette import NOT_HIGHLIGHTED, class_colour, colour_of, series_style

# plotly loads its classes lazily; load them now, in the importing thread, so that no two
# threads (a request and a background job) ever import them at once
_ = (go.Figure, go.Scatter, go.Bar, go.Heatmap, go.layout.Annotation)

FONT = dict(family="system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif", size=13)
MAP_HEIGHT = 430


def colour(i: int) -> str:
    """The colour of the class at index i (engine.palette: the same in every figure)."""
    return class_colour(i)


def log_ticks(lo: float, hi: float) -> tuple[list[float], list[str]]:
    """Tick values 1, 2, 5 x 10^k between lo and hi (> 0), each labelled in full, so a log axis never
    reads as a row of bare digits; fewer when they would crowd."""
    lo, hi = max(lo, 1e-300), max(hi, 1e-300)
    e0, e1 = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    for mantissas in ((1, 2, 5), (1, 3), (1,)):
        ticks = [m * 10.0 ** e for e in range(e0, e1 + 1) for m in mantissas if lo <= m * 10.0 ** e <= hi]
        if len(ticks) <= 7:
            break
    if len(ticks) < 2:
        ticks = [lo, hi]
    return ticks, [tick(v) for v in ticks]


def base_layout(fig: go.Figure, title: str, height: int = 420, **kw) -> go.Figure:
    kw.setdefault("margin", dict(l=55, r=20, t=50, b=45))
    fig.update_layout(template="plotly_white", title=dict(text=title, x=0.01, xanchor="left", font=dict(size=15)),
                      font=FONT, height=height, **kw)
    return fig


def message_figure(text: str, height: int = 300, width: int | None = None) -> go.Figure:
    """An empty figure that says why there is nothing to draw yet; in lines of about `width`
    characters when given (a figure in a third of the page has room for no more than 44)."""
    import textwrap
    fig = go.Figure()
    text = "<br>".join(textwrap.wrap(text, width)) if width else text
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font=dict(size=14, color="#555"))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return base_layout(fig, "", height=height)


def map_figure(coords: np.ndarray, labels: np.ndarray, classes: list[str], centroids: np.ndarray,
               title: str, method: str, highlight: int | None = None, height: int = MAP_HEIGHT,
               faint: bool = False) -> go.Figure:
    """Held-out points coloured by class (customdata: the point's index, for clicks), centroids as crosses."""
    fig = go.Figure()
    for c, name in enumerate(classes):
        idx = np.nonzero(labels == c)[0]
        dim = faint or (highlight is not None and highlight != c)
        fig.add_trace(go.Scatter(
            x=coords[idx, 0], y=coords[idx, 1], mode="markers", name=name, legendgroup=name, showlegend=not faint,
            customdata=idx, marker=dict(size=6, color=colour(c), opacity=0.18 if dim else 0.75),
            hovertemplate=f"{name}<br>test image #%{{customdata}}<extra></extra>"))
    fig.add_trace(go.Scatter(
        x=centroids[:, 0], y=centroids[:, 1], mode="markers+text" if faint else "markers", name="centroids",
        textposition="bottom center", textfont=dict(size=11, color=[colour(c) for c in range(len(classes))]),
        marker=dict(symbol="x-thin", size=14, line=dict(width=3, color=[colour(c) for c in range(len(classes))])),
        text=classes, hovertemplate="centroid of %{text} (from its training crops; placed by its nearest "
                                    "test images)<extra></extra>"))
    axis = "UMAP" if method == "umap" else "PC"
    base_layout(fig, title, height=height, legend=dict(itemsizing="constant"), clickmode="event")
    fig.update_xaxes(title=f"{axis} 1", zeroline=False)
    fig.update_yaxes(title=f"{axis} 2", zeroline=False, scaleanchor=None)
    return fig


def add_points(fig: go.Figure, xy: np.ndarray, name: str, text: list[str] | None = None,
               far: bool = False) -> go.Figure:
    """Uploaded images as large black stars in a map; one far from every class as a red-ringed star."""
    fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers+text", name=name, cliponaxis=False,
                             text=text, textposition="top center",
                             textfont=dict(color="#c92a2a" if far else "black", size=13),
                             marker=dict(symbol="star", size=20, color="black",
                                         line=dict(width=3 if far else 1, color="#c92a2a" if far else "white")),
                             hovertemplate=f"{name}" + (" (far from every class)" if far else "") + "<extra></extra>"))
    return fig


def add_paths(fig: go.Figure, paths: list[np.ndarray], names: list[str], colours: list[str],
              sigmas: list[np.ndarray], step: int | None = None) -> go.Figure:
    """Trajectories (T, 2) drawn as lines from start (circle) to end (diamond); the scrubbed step ringed."""
    for xy, name, col, sig in zip(paths, names, colours, sigmas):
        fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="lines+markers", name=f"path: {name}",
                                 line=dict(color=col, width=3), marker=dict(size=4, color=col),
                                 customdata=np.stack([np.arange(len(xy)), sig], 1),
                                 hovertemplate=f"{name}<br>step %{{customdata[0]}}<br>sigma %{{customdata[1]:.3f}}"
                                               "<extra></extra>"))
        fig.add_trace(go.Scatter(x=xy[-1:, 0], y=xy[-1:, 1], mode="markers", showlegend=False,
                                 marker=dict(symbol="diamond", size=13, color=col, line=dict(width=1, color="black")),
                                 hovertemplate=f"{name}: final<extra></extra>"))
        if step is not None:
            s = min(step, len(xy) - 1)
            fig.add_trace(go.Scatter(x=xy[s:s + 1, 0], y=xy[s:s + 1, 1], mode="markers", showlegend=False,
                                     marker=dict(symbol="circle-open", size=18, color=col, line=dict(width=3)),
                                     hovertemplate=f"{name}: step {s}<extra></extra>"))
    start = paths[0][0]
    fig.add_trace(go.Scatter(x=[start[0]], y=[start[1]], mode="markers", name="start (same noise)",
                             marker=dict(symbol="circle", size=12, color="white", line=dict(width=2, color="black"))))
    return fig


def distance_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], marks: dict[str, float],
                    sigma_range: tuple[float, float], step_sigma: float | None = None,
                    height: int = 420, model: str | None = None) -> go.Figure:
    """Distance between trajectories against sigma (log axis reversed: the run goes left to right),
    with each pair's bifurcation sigma starred; the sigmas are given in the legend, not over the curves."""
    fig = go.Figure()
    for i, (name, (sig, dist)) in enumerate(curves.items()):
        s = marks.get(name)
        known = s is not None and math.isfinite(s)
        label = f"{name} (parts at sigma {s:.2g})" if known else name
        grey, dash = series_style(i)          # a pair is not a class: greys and dashes, never a class colour
        fig.add_trace(go.Scatter(x=sig, y=dist, mode="lines", name=label, line=dict(color=grey, width=2.5, dash=dash),
                                 legendgroup=name,
                                 hovertemplate="sigma %{x:.3f}<br>distance %{y:.3f}<extra>" + name + "</extra>"))
        if known:
            y = float(np.interp(math.log(s), np.log(sig[::-1]), dist[::-1]))
            fig.add_trace(go.Scatter(x=[s], y=[y], mode="markers", showlegend=False, legendgroup=name,
                                     marker=dict(size=13, symbol="star", color=grey,
                                                 line=dict(width=1, color="black")),
                                     hovertemplate=f"{name}: bifurcation at sigma %{{x:.3f}}<extra></extra>"))
    if step_sigma is not None:
        fig.add_vline(x=step_sigma, line=dict(color="#888", dash="dot"))
    title = "Distance between the paths (★: where a pair parts)"
    base_layout(fig, title + (f"<br><sup>{model}</sup>" if model else ""), height=height,
                legend=dict(orientation="h", x=0, y=-0.28, font=dict(size=11)), showlegend=True,
                margin=dict(l=55, r=15, t=55, b=40))
    lo, hi = sigma_range
    ticks = [v for v in (2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001) if lo * 0.9 <= v <= hi * 1.1]
    fig.update_xaxes(tickvals=ticks, ticktext=[f"{v:g}" for v in ticks], type="log",
                     title=dict(text="sigma (falling: the run goes left to right)", standoff=4),
                     range=[math.log10(hi * 1.1), math.log10(lo * 0.9)])
    fig.update_yaxes(title="RMS pixel distance", rangemode="tozero")
    return fig


def probability_bars(probabilities: np.ndarray, classes: list[str], highlight: list[str],
                     title: str, height: int = 330) -> go.Figure:
    """Mean classifier probability of each class over the samples shown (highlighted classes coloured)."""
    mean = probabilities.mean(0)
    cols = [colour(i) if c in highlight else NOT_HIGHLIGHTED for i, c in enumerate(classes)]
    fig = go.Figure(go.Bar(x=classes, y=mean, marker_color=cols,
                           hovertemplate="%{x}: %{y:.2f}<extra></extra>"))
    base_layout(fig, title, height=height)
    fig.update_yaxes(title="mean probability", range=[0, 1])
    return fig


def psnr_gain(classes: list[str], psnr: np.ndarray, true: int | None, mixture: float | None, noisy: float,
              sigma: float, model: str | None = None, height: int = 380) -> go.Figure:
    """Each class's output against the mixture's, in dB (positive: knowing that class helped), with
    a zero line; horizontal bars so that every class name is readable. Without a mixture model the
    bars are the gain over the noisy input."""
    ref, what = (mixture, "mixture") if mixture is not None else (noisy, "noisy input")
    gain = np.asarray(psnr, float) - ref
    names = [f"{c} (true class)" if i == true else c for i, c in enumerate(classes)]
    cols = ["#2f9e44" if g >= 0 else "#e03131" for g in gain]
    line = [2.5 if i == true else 0 for i in range(len(classes))]
    fig = go.Figure(go.Bar(y=names, x=gain, orientation="h", marker=dict(color=cols, line=dict(color="black", width=line)),
                           text=[f"{g:+.2f} dB" for g in gain], textposition="outside", cliponaxis=False,
                           hovertemplate="conditioned on %{y}: %{x:+.2f} dB against the " + what + "<extra></extra>"))
    fig.add_vline(x=0, line=dict(color="black", width=1.5))
    span = max(0.05, float(np.abs(gain).max()))
    sub = (f"mixture {mixture:.1f} dB, noisy input {noisy:.1f} dB" if mixture is not None else
           f"noisy input {noisy:.1f} dB; no mixture model loaded") + (f"; {model}" if model else "")
    base_layout(fig, f"Gain over the {what} at sigma = {sigma:g} (dB; right of 0: better)<br><sup>{sub}</sup>",
                height=height, margin=dict(l=150, r=60, t=60, b=45))
    fig.update_xaxes(title=f"PSNR - PSNR of the {what} (dB)", range=[-span * 1.9, span * 1.9], zeroline=False)
    fig.update_yaxes(autorange="reversed", automargin=True)
    return fig


def tick(v: float) -> str:
    """A colour-bar label: 20,000 / 500 / 2 / 0.05."""
    return f"{v:,.0f}" if v >= 100 else f"{v:.2g}"


def heatmap(matrix: np.ndarray, classes: list[str], title: str, colorbar: str, height: int = 400,
            log: bool = False) -> go.Figure:
    """A class-by-class matrix; log=True colours by log10 of the value (the diagonal left blank), so
    one large pair does not leave every other pair dark. The hover gives the value itself."""
    m = np.asarray(matrix, float)
    z = m.copy()
    if log:
        z = np.where(m > 0, np.log10(np.where(m > 0, m, 1)), np.nan)
        lo, hi = np.nanmin(z) if np.isfinite(z).any() else 0, np.nanmax(z) if np.isfinite(z).any() else 1
        ticks = [math.log10(m_ * 10.0 ** e) for e in range(math.floor(lo), math.ceil(hi) + 1) for m_ in (1, 2, 5)]
        ticks = [t for t in ticks if lo - 1e-9 <= t <= hi + 1e-9] or [lo, hi]
        bar = dict(title=colorbar, tickvals=ticks, ticktext=[tick(10.0 ** t) for t in ticks], thickness=12)
    else:
        bar = dict(title=colorbar)
    fig = go.Figure(go.Heatmap(z=z, x=classes, y=classes, customdata=m, colorscale="Viridis", colorbar=bar,
                               hovertemplate="%{y} - %{x}: %{customdata:.3g}<extra></extra>", xgap=1, ygap=1))
    base_layout(fig, title, height=height, margin=dict(l=80, r=10, t=40, b=80))
    fig.update_yaxes(autorange="reversed")
    return fig


def loss_figure(segments: list, height: int = 320, model: str | None = None, offset: int = 0) -> go.Figure:
    """The training loss over a model's whole lineage: segments (run name, [(step, loss), ...]) with
    the steps already counted from the start of the first run (text.lineage_segments); a run whose
    record is missing is left as a gap, named in the title. A plain history [(step, loss), ...] is
    one run, its steps shifted by `offset` (the steps of the runs before it)."""
    if segments and not isinstance(segments[0][0], str):
        segments = [("training", [(h[0] + offset, h[1]) for h in segments])]
    drawn = [(name, h) for name, h in segments if h]
    if not drawn:
        return message_figure("no training history in this checkpoint", height)
    fig = go.Figure()
    for i, (name, history) in enumerate(drawn):
        steps, loss = zip(*[(h[0], h[1]) for h in history])
        grey, dash = series_style(i)          # a run is not a class: greys and dashes
        fig.add_trace(go.Scatter(x=steps, y=loss, mode="lines", name=name, line=dict(width=2, color=grey, dash=dash)))
    missing = [name for name, h in segments if not h]
    title = "Training loss over the whole lineage" + (f"<br><sup>not recorded: {', '.join(missing)}</sup>"
                                                      if missing else (f"<br><sup>{model}</sup>" if model else ""))
    base_layout(fig, title, height=height, showlegend=len(drawn) > 1,
                legend=dict(orientation="h", y=-0.3))
    fig.update_xaxes(title="training step (all runs of the lineage)")
    values = [point[1] for _, history in drawn for point in history if point[1] > 0]
    ticks, labels = log_ticks(min(values), max(values)) if values else (None, None)
    fig.update_yaxes(title="loss (denoising MSE)", type="log", tickvals=ticks, ticktext=labels)
    return fig


def strip_probabilities(alphas: np.ndarray, prob_a: np.ndarray, prob_b: np.ndarray, a: str, b: str,
                        model: str | None = None, height: int = 330, classes: list[str] | None = None) -> go.Figure:
    """P(A) and P(B) against alpha, each in its class's colour (classes: the model's class list)."""
    fig = go.Figure()
    for name, p in ((a, prob_a), (b, prob_b)):
        col = colour_of(name, classes) if classes and name in classes else None
        fig.add_trace(go.Scatter(x=alphas, y=p, mode="lines+markers", name=f"P({name})",
                                 line=dict(width=3, color=col), marker=dict(color=col)))
    for x in (0, 1):
        fig.add_vline(x=x, line=dict(color="#bbb", dash="dot"))
    base_layout(fig, f"Classifier's mean probability of {a} and {b} against alpha"
                + (f"<br><sup>{model}</sup>" if model else ""), height=height, legend=dict(orientation="h", y=-0.3))
    fig.update_xaxes(title="alpha (0 = centroid of A, 1 = centroid of B)")
    fig.update_yaxes(title="probability", range=[0, 1.02])
    return fig


def pair_scatter(centroid_d2: np.ndarray, density: np.ndarray, pairs: list[tuple[str, str]], pearson: float,
                 spearman: float, layer: str, sigma: float, height: int = 400) -> go.Figure:
    """One point per pair of classes; customdata [a, b] for clicks. Only points with room around them
    carry their pair's name (the rest say it on hover): 28 pairs in one plot would overprint."""
    names = [f"{a}-{b}" for a, b in pairs]
    shown = label_room(np.log10(np.maximum(centroid_d2, 1e-12)), np.log10(np.maximum(density, 1e-12)))
    fig = go.Figure(go.Scatter(x=centroid_d2, y=density, mode="markers+text",
                               text=[n if k in shown else "" for k, n in enumerate(names)],
                               textposition=[shown.get(k, "top center") for k in range(len(names))],
                               textfont=dict(size=9, color="#555"),
                               customdata=[[a, b] for a, b in pairs],
                               marker=dict(size=11, color="#4c6ef5", line=dict(width=1, color="white")),
                               hovertemplate="%{customdata[0]}-%{customdata[1]}<br>centroid %{x:.3g}<br>"
                                             "density %{y:.3g}<br>click: samples of both<extra></extra>"))
    base_layout(fig, f"One point per pair: r = {pearson:.2f}, rho = {spearman:.2f}", height=height,
                clickmode="event", margin=dict(l=55, r=30, t=40, b=45), modebar=dict(orientation="v"))
    xt, xl = log_ticks(float(np.min(centroid_d2)), float(np.max(centroid_d2)))
    yt, yl = log_ticks(float(np.min(density)), float(np.max(density)))
    fig.update_xaxes(title=f"centroid distance² ({layer}, sigma {sigma:g})", type="log", tickvals=xt, ticktext=xl)
    fig.update_yaxes(title="density distance D(a, b)", type="log", tickvals=yt, ticktext=yl)
    return fig


LABEL_W, LABEL_H = 0.22, 0.07       # a pair's name, in units of the plot's width and height


def label_box(u: float, v: float, position: str, width: float = LABEL_W, height: float = LABEL_H):
    """(left, right, bottom, top) of a label at `position` of a point at (u, v), in plot units."""
    if position == "middle right":
        return u + 0.02, u + 0.02 + width, v - height / 2, v + height / 2
    if position == "middle left":
        return u - 0.02 - width, u - 0.02, v - height / 2, v + height / 2
    return u - width / 2, u + width / 2, v + 0.02, v + 0.02 + height


def overlap(a, b) -> bool:
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def label_room(x: np.ndarray, y: np.ndarray, width: float = LABEL_W, height: float = LABEL_H) -> dict[int, str]:
    """{index: plotly textposition} of the points that can carry their label: above the point, or
    beside it near the plot's left and right edges (a centred name would be cut off there), where it
    overlaps no other chosen label and covers no other point. The extremes first, then points by
    distance from the middle."""
    def unit(v):
        span = v.max() - v.min()
        return (v - v.min()) / span if span > 0 else np.zeros_like(v)
    u, v = unit(np.asarray(x, float)), unit(np.asarray(y, float))
    order = np.argsort(-np.hypot(u - 0.5, v - 0.5))
    chosen: dict[int, str] = {}
    boxes = []
    for k in order:
        position = ("middle right" if u[k] < width / 2 - 0.05 else
                    "middle left" if u[k] > 1 - width / 2 + 0.05 else "top center")
        box = label_box(u[k], v[k], position, width, height)
        covers = any(box[0] <= u[j] <= box[1] and box[2] <= v[j] <= box[3] for j in range(len(u)) if j != k)
        if not covers and all(not overlap(box, b) for b in boxes):
            chosen[int(k)] = position
            boxes.append(box)
    return chosen


def ground_truth(gt, alpha: float | None = None, live: dict | None = None, blank: int = 0,
                 height: int = 330) -> go.Figure:
    """The model set's measured interpolation against its held-out class (engine.figures.ground_truth_figure:
    aspect ratio against alpha per method, median and quartiles of the samples that hold an oval), laid
    out as the page's other figures for a third of the page's width: the position shown marked and the
    ratios of the samples shown overlaid (live: {method: ratios} of those holding an oval; `blank`: how
    many more hold none); the legend in one row of short names."""
    from engine.figures import ground_truth_figure
    fig = ground_truth_figure(gt, alpha=alpha, live=live)
    for trace in fig.data:
        if trace.name and trace.name.endswith("these samples"):
            trace.name, trace.showlegend = "these samples", False    # said in the subtitle: the legend stays one row
        elif trace.name:
            trace.name = trace.name.split(" (")[0]
    shown = sum(len(r) for r in (live or {}).values())
    circles = "" if not live else (f"; circles: these samples" if not blank else
                                   f"; circles: {shown} of these samples ({blank} blank)")
    base_layout(fig, f"Aspect ratio of samples against alpha<br><sup>dashed: real {gt.held_out} (never trained)"
                f"{circles}</sup>", height=height, margin=dict(l=55, r=10, t=55, b=40))
    fig.update_layout(legend=dict(orientation="h", y=-0.2, x=0, font=dict(size=11)))
    fig.update_yaxes(title="width / height")
    fig.update_xaxes(title=dict(text=f"alpha: 0 = {gt.a}, 1 = {gt.b}", font=dict(size=12)))
    for note in fig.layout.annotations:
        if note.yref == "y":
            note.font = dict(size=11, color="#555")
    return fig
