"""Figure glue: plotly figures for the page, built from engine results.

The analysis figures (PSNR, separation, density distance, bifurcation, interpolation) come
from engine.figures when it has them; what is drawn only by the app (the embedding map
with its clickable points, trajectory paths over it, the probability bars, the PSNR bars
of one image) is built here, from numbers the engine computed. Every figure has a title
that says what it shows, labelled axes and the same class colours.
"""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

# plotly loads its classes lazily; load them now, in the importing thread, so that no two
# threads (a request and a background job) ever import them at once
_ = (go.Figure, go.Scatter, go.Bar, go.Heatmap, go.layout.Annotation)

# Plotly's D3 / Tableau 10, extended: one fixed colour per class index
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
           "#e6550d", "#31a354", "#756bb1", "#636363"]
FONT = dict(family="system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif", size=13)
MAP_HEIGHT = 480


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def base_layout(fig: go.Figure, title: str, height: int = 420, **kw) -> go.Figure:
    fig.update_layout(template="plotly_white", title=dict(text=title, x=0.01, xanchor="left", font=dict(size=15)),
                      font=FONT, height=height, margin=dict(l=55, r=20, t=50, b=45), **kw)
    return fig


def message_figure(text: str, height: int = 300) -> go.Figure:
    """An empty figure that says why there is nothing to draw yet."""
    fig = go.Figure()
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
        text=classes, hovertemplate="centroid of %{text}<extra></extra>"))
    axis = "UMAP" if method == "umap" else "PC"
    base_layout(fig, title, height=height, legend=dict(itemsizing="constant"), clickmode="event")
    fig.update_xaxes(title=f"{axis} 1", zeroline=False)
    fig.update_yaxes(title=f"{axis} 2", zeroline=False, scaleanchor=None)
    return fig


def add_points(fig: go.Figure, xy: np.ndarray, name: str, text: list[str] | None = None) -> go.Figure:
    """Uploaded images as large black stars in a map."""
    fig.add_trace(go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers+text", name=name,
                             text=text, textposition="top center",
                             marker=dict(symbol="star", size=18, color="black", line=dict(width=1, color="white")),
                             hovertemplate=f"{name}<extra></extra>"))
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
                    height: int = 420) -> go.Figure:
    """Distance between trajectories against sigma (log axis reversed: the run goes left to right),
    with each pair's bifurcation sigma marked."""
    fig = go.Figure()
    for i, (name, (sig, dist)) in enumerate(curves.items()):
        fig.add_trace(go.Scatter(x=sig, y=dist, mode="lines", name=name, line=dict(color=colour(i), width=2.5),
                                 hovertemplate="sigma %{x:.3f}<br>distance %{y:.3f}<extra></extra>"))
        s = marks.get(name)
        if s is not None and math.isfinite(s):
            y = float(np.interp(math.log(s), np.log(sig[::-1]), dist[::-1]))
            fig.add_trace(go.Scatter(x=[s], y=[y], mode="markers+text", showlegend=False,
                                     marker=dict(size=13, symbol="star", color=colour(i),
                                                 line=dict(width=1, color="black")),
                                     text=[f"bifurcation sigma = {s:.3f}"], textposition="top left",
                                     hovertemplate="bifurcation at sigma %{x:.3f}<extra></extra>"))
    if step_sigma is not None:
        fig.add_vline(x=step_sigma, line=dict(color="#888", dash="dot"))
    base_layout(fig, "Distance between the trajectories against sigma", height=height,
                legend=dict(x=0.01, y=0.98, bgcolor="rgba(255,255,255,0.7)"), showlegend=len(curves) > 1)
    lo, hi = sigma_range
    ticks = [v for v in (2, 1, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001) if lo * 0.9 <= v <= hi * 1.1]
    fig.update_xaxes(tickvals=ticks, ticktext=[f"{v:g}" for v in ticks],type="log", title="sigma (decreasing: the run goes left to right)",
                     range=[math.log10(hi * 1.1), math.log10(lo * 0.9)])
    fig.update_yaxes(title="RMS pixel distance", rangemode="tozero")
    return fig


def probability_bars(probabilities: np.ndarray, classes: list[str], highlight: list[str],
                     title: str, height: int = 330) -> go.Figure:
    """Mean classifier probability of each class over the samples shown (highlighted classes coloured)."""
    mean = probabilities.mean(0)
    cols = [colour(i) if c in highlight else "#c8c8c8" for i, c in enumerate(classes)]
    fig = go.Figure(go.Bar(x=classes, y=mean, marker_color=cols,
                           hovertemplate="%{x}: %{y:.2f}<extra></extra>"))
    base_layout(fig, title, height=height)
    fig.update_yaxes(title="mean probability", range=[0, 1])
    return fig


def psnr_bars(classes: list[str], psnr: np.ndarray, true: int | None, mixture: float | None, noisy: float,
              sigma: float, height: int = 380) -> go.Figure:
    """PSNR of the feature-guided output under each class, with the mixture and the noisy input as lines."""
    cols = [colour(i) if i == true else "#9aa5c4" for i in range(len(classes))]
    names = [f"{c} (true)" if i == true else c for i, c in enumerate(classes)]
    fig = go.Figure(go.Bar(x=names, y=psnr, marker_color=cols, name="feature-guided, conditioned on the class",
                           hovertemplate="conditioned on %{x}: %{y:.1f} dB<extra></extra>"))
    if mixture is not None:
        fig.add_hline(y=mixture, line=dict(color="#d62728", width=2),
                      annotation_text=f"mixture {mixture:.1f} dB", annotation_position="top left")
    fig.add_hline(y=noisy, line=dict(color="#555", dash="dot"),
                  annotation_text=f"noisy input {noisy:.1f} dB", annotation_position="bottom left")
    lo = min([noisy, *psnr.tolist()] + ([mixture] if mixture is not None else [])) - 2
    base_layout(fig, f"PSNR of each output at sigma = {sigma:g} (higher is better)", height=height)
    fig.update_yaxes(title="PSNR (dB)", range=[max(0, lo), max(psnr.max(), mixture or 0) + 2])
    return fig


def heatmap(matrix: np.ndarray, classes: list[str], title: str, colorbar: str, height: int = 420) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=matrix, x=classes, y=classes, colorscale="Viridis", colorbar=dict(title=colorbar),
                               hovertemplate="%{y} - %{x}: %{z:.3g}<extra></extra>"))
    base_layout(fig, title, height=height)
    fig.update_yaxes(autorange="reversed")
    return fig


def loss_figure(history: list, height: int = 300, offset: int = 0) -> go.Figure:
    """The training loss a checkpoint recorded (its own run only; `offset`: the steps of the
    runs it was fine-tuned from, so the x axis counts all training)."""
    if not history:
        return message_figure("no training history in this checkpoint", height)
    steps, loss = zip(*[(h[0] + offset, h[1]) for h in history])
    fig = go.Figure(go.Scatter(x=steps, y=loss, mode="lines", line=dict(width=2)))
    base_layout(fig, "Training loss (denoising MSE of the projected denoiser)", height=height)
    fig.update_xaxes(title=f"step (its last run, after {offset:,} steps of earlier runs)" if offset else "step")
    fig.update_yaxes(title="loss", type="log")       # plotly's own ticks: a run rarely spans a decade
    return fig


def strip_probabilities(alphas: np.ndarray, prob_a: np.ndarray, prob_b: np.ndarray, a: str, b: str,
                        height: int = 330) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=alphas, y=prob_a, mode="lines+markers", name=f"P({a})", line=dict(width=3)))
    fig.add_trace(go.Scatter(x=alphas, y=prob_b, mode="lines+markers", name=f"P({b})", line=dict(width=3)))
    for x in (0, 1):
        fig.add_vline(x=x, line=dict(color="#bbb", dash="dot"))
    base_layout(fig, f"Classifier's mean probability of {a} and {b} across alpha", height=height,
                legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(title="alpha (0 = centroid of A, 1 = centroid of B)")
    fig.update_yaxes(title="probability", range=[0, 1.02])
    return fig


def pair_scatter(centroid_d2: np.ndarray, density: np.ndarray, names: list[str], pearson: float,
                 spearman: float, layer: str, sigma: float, height: int = 420) -> go.Figure:
    fig = go.Figure(go.Scatter(x=centroid_d2, y=density, mode="markers", text=names,
                               marker=dict(size=9, color="#4c6ef5", line=dict(width=1, color="white")),
                               hovertemplate="%{text}<br>centroid %{x:.3g}<br>density %{y:.3g}<extra></extra>"))
    base_layout(fig, f"Density distance against squared centroid distance: Pearson r = {pearson:.2f}, "
                     f"Spearman rho = {spearman:.2f}", height=height)
    fig.update_xaxes(title=f"||phibar_a - phibar_b||^2 (layer {layer}, sigma {sigma:g})")
    fig.update_yaxes(title="density distance D(a, b)")
    return fig
