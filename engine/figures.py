"""Plotly figures of the analyses: each builder is a pure function of the data analysis.py
(or atlas.py) returns, so the report and the app draw the same figures from the same data.
No computation happens here beyond arranging arrays for display.
"""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .grid import make_grid
from .palette import CLASS_COLOURS, class_colour

PALETTE = list(CLASS_COLOURS)          # one colour per class, as in the app (engine/palette.py)
MODEL_COLOURS = {"feature_guided": "#d62728", "mixture": "#ff7f0e", "conditional": "#1f77b4"}
MODEL_NAMES = {"feature_guided": "feature-guided", "mixture": "mixture", "conditional": "conditional"}
TEMPLATE = "plotly_white"


def _layout(fig: go.Figure, title: str, height: int = 420, width: int | None = None) -> go.Figure:
    fig.update_layout(title=title, template=TEMPLATE, height=height, width=width,
                      margin=dict(l=60, r=20, t=70, b=50), legend=dict(orientation="h", y=-0.18))
    return fig


def image_trace(images, ncol: int | None = None, scale: int = 2, pad: int = 2) -> go.Image:
    """A montage of (N, C, H, W) images in [0, 1] as one plotly Image trace."""
    grid = make_grid(np.asarray(images, np.float32), ncol=ncol, pad=pad, scale=scale)
    if grid.ndim == 2:
        grid = np.repeat(grid[:, :, None], 3, axis=2)
    return go.Image(z=grid, hoverinfo="skip")


def _hide_axes(fig: go.Figure, row=None, col=None) -> None:
    fig.update_xaxes(visible=False, row=row, col=col)
    fig.update_yaxes(visible=False, row=row, col=col)


# ----------------------------------------------------------------------------- denoising

def psnr_figure(result) -> go.Figure:
    """Fig 3: PSNR vs sigma of each denoiser (left) and the gain over the mixture (right)."""
    fig = make_subplots(1, 2, subplot_titles=("PSNR of the denoised image", "gain over the mixture denoiser"))
    s = result.sigmas
    curves = [("correct conditioning", result.psnr_correct, result.stderr["correct"], "#d62728", "circle"),
              ("wrong conditioning", result.psnr_wrong, result.stderr["wrong"], "#7f7f7f", "x"),
              ("mixture", result.psnr_mixture, result.stderr["mixture"], "#ff7f0e", "star"),
              ("noisy input", result.psnr_noisy, result.stderr["noisy"], "#c7c7c7", "line-ew")]
    for name, y, e, colour, symbol in curves:
        fig.add_trace(go.Scatter(x=s, y=y, error_y=dict(array=e, visible=True), name=name, mode="lines+markers",
                                 marker=dict(color=colour, symbol=symbol, size=9), line=dict(color=colour)), 1, 1)
    for name, y, colour, symbol in [("correct - mixture", result.gain_db, "#d62728", "circle"),
                                    ("wrong - mixture", result.wrong_gain_db, "#7f7f7f", "x")]:
        fig.add_trace(go.Scatter(x=s, y=y, name=name, mode="lines+markers",
                                 marker=dict(color=colour, symbol=symbol, size=9), line=dict(color=colour, dash="dot")),
                      1, 2)
    fig.add_hline(y=0, line=dict(color="black", width=1), row=1, col=2)
    fig.update_xaxes(type="log", title_text="sigma")
    fig.update_yaxes(title_text="PSNR (dB)", row=1, col=1)
    fig.update_yaxes(title_text="dB", row=1, col=2)
    return _layout(fig, f"Denoising: conditional vs mixture ({result.n_images} held-out images per sigma)")


def denoising_grid_figure(grid, classes: list[str], scale: int = 3) -> go.Figure:
    """Fig 2: noisy images (rows) denoised under each class centroid (columns) and by the mixture.

    Layout of the montage: first row = clean example of each conditioning class; then for each
    noisy image: [noisy | conditioned on each class ... | mixture]; the diagonal is the correct class."""
    r, q = len(grid.rows), len(grid.columns)
    blank = np.ones_like(grid.noisy[:1])
    cells = [blank, *grid.examples, blank]
    for i in range(r):
        cells += [grid.noisy[i:i + 1], *grid.conditioned[i, :, None], grid.mixture[i:i + 1]]
    images = np.concatenate([c.reshape(-1, *grid.noisy.shape[1:]) for c in cells])
    gap = 6                                    # pixels between cells, room for the PSNR labels
    fig = go.Figure(image_trace(np.clip(images, 0, 1), ncol=q + 2, scale=scale, pad=gap))
    h, w = grid.noisy.shape[2] * scale, grid.noisy.shape[3] * scale
    pad = gap * scale

    def centre(row, col):
        return pad + col * (w + pad) + w / 2, pad + row * (h + pad) + h / 2
    labels = [(0, 0, "noisy \u2193 / cond. \u2192")] + [(0, j + 1, classes[c]) for j, c in enumerate(grid.columns)]
    labels += [(0, q + 1, "mixture")]
    for text_row, col, text in labels:
        x, y = centre(text_row, col)
        fig.add_annotation(x=x, y=y - h / 2 - 2, text=text, showarrow=False, yanchor="bottom", font=dict(size=11))
    for i in range(r):
        for j in range(q):
            x, y = centre(i + 1, j + 1)
            fig.add_annotation(x=x, y=y + h / 2, text=f"{grid.psnr[i, j]:.1f} dB", showarrow=False,
                               yanchor="top", font=dict(size=9, color="#d62728" if i == j else "#555"))
        x, y = centre(i + 1, q + 1)
        fig.add_annotation(x=x, y=y + h / 2, text=f"{grid.psnr_mixture[i]:.1f} dB", showarrow=False,
                           yanchor="top", font=dict(size=9, color="#ff7f0e"))
        x, y = centre(i + 1, 0)
        fig.add_annotation(x=x - w / 2 - 4, y=y, text=classes[grid.rows[i]], showarrow=False, xanchor="right",
                           font=dict(size=11))
    _hide_axes(fig)
    fig.update_layout(margin=dict(l=110, r=20, t=80, b=30))
    return _layout(fig, f"Denoising at sigma = {grid.sigma:g}: rows noisy images, columns conditioning class "
                   "(diagonal correct)", height=int(140 + (r + 1) * (h + pad)),
                   width=int(160 + (q + 2) * (w + pad)))


# ----------------------------------------------------------------------------- embedding

def separation_figure(result, layer: str | None = None) -> go.Figure:
    """Fig 4: per-pair squared centroid distances and within-class spreads in one layer
    (histograms, one panel per model), and the separation ratio of every layer."""
    layer = layer or ("mid" if "mid" in result.layers else result.best_layer(result.models[0]))
    li = result.layers.index(layer)
    titles = [f"{MODEL_NAMES.get(m, m)}, layer {layer}" for m in result.models] + ["separation per layer"]
    fig = make_subplots(1, len(result.models) + 1, subplot_titles=titles)
    for j, m in enumerate(result.models):
        for name, vals, colour in [("||phibar_c - phibar_c'||^2", result.pair_d2[m][li], "#ff7f0e"),
                                   ("sqrt(spread_c spread_c')", result.pair_spread[m][li], "#7f7f7f")]:
            fig.add_trace(go.Histogram(x=np.log10(np.maximum(vals, 1e-30)), name=name, marker_color=colour,
                                       opacity=0.6, nbinsx=20, showlegend=j == 0, legendgroup=name), 1, j + 1)
        fig.update_xaxes(title_text="log10 (squared distance)", row=1, col=j + 1)
    for m in result.models:
        fig.add_trace(go.Scatter(x=result.layers, y=result.separation[m], mode="lines+markers",
                                 name=MODEL_NAMES.get(m, m), marker=dict(color=MODEL_COLOURS.get(m), size=9),
                                 line=dict(color=MODEL_COLOURS.get(m))), 1, len(result.models) + 1)
    fig.update_yaxes(title_text="centroid distance\u00b2 / spread", type="log", row=1, col=len(result.models) + 1)
    fig.update_layout(barmode="overlay")
    sig = "clean images" if result.sigma == 0 else f"sigma = {result.sigma:g}"
    return _layout(fig, f"Class separation in phi ({sig}); most separated layer (feature-guided): "
                   f"{result.best_layer(result.models[0])}", width=1100)


def embedding_figure(embedding, classes: list[str], labels: np.ndarray, extra_points=None,
                     title: str | None = None) -> go.Figure:
    """Held-out points coloured by class, class centroids as labelled crosses; extra_points is a
    dict name -> (M, 2) array (e.g. an uploaded image, a trajectory), drawn as a line with markers."""
    fig = go.Figure()
    for c, name in enumerate(classes):
        pts = embedding.coords[labels == c]
        colour = PALETTE[c % len(PALETTE)]
        fig.add_trace(go.Scattergl(x=pts[:, 0], y=pts[:, 1], mode="markers", name=name, legendgroup=name,
                                   marker=dict(color=colour, size=5, opacity=0.6)))
        fig.add_trace(go.Scatter(x=embedding.centroids[c:c + 1, 0], y=embedding.centroids[c:c + 1, 1],
                                 mode="markers+text", text=[name], textposition="top center", legendgroup=name,
                                 showlegend=False, hovertext=f"centroid of {name}",
                                 marker=dict(color=colour, size=14, symbol="x", line=dict(width=1, color="black"))))
    for k, (name, pts) in enumerate((extra_points or {}).items()):
        pts = np.asarray(pts).reshape(-1, 2)
        fig.add_trace(go.Scatter(x=pts[:, 0], y=pts[:, 1], mode="lines+markers" if len(pts) > 1 else "markers",
                                 name=name, line=dict(color="black", width=1),
                                 marker=dict(size=np.linspace(5, 11, len(pts)) if len(pts) > 1 else 12,
                                             color="black", symbol=["circle", "diamond", "square"][k % 3])))
    fig.update_xaxes(title_text=f"{embedding.method} 1", showticklabels=False)
    fig.update_yaxes(title_text=f"{embedding.method} 2", showticklabels=False)
    return _layout(fig, title or f"Feature atlas ({embedding.method.upper()})", height=560)


# ----------------------------------------------------------------------------- density distance

def density_figure(result, highlight: int = 3) -> go.Figure:
    """Fig 5: density distance against the squared centroid distance, one point per class pair;
    the `highlight` closest pairs in red, the most distant in blue. When the result carries the
    per-sigma breakdown, a second panel shows, along the sigma grid, the Pearson correlation of
    the integrand with the centroid distance at that sigma and each sigma's share of D."""
    local = getattr(result, "local_pearson", None)
    panels = local is not None
    fig = (make_subplots(1, 2, column_widths=[0.62, 0.38], horizontal_spacing=0.12,
                         subplot_titles=("over the whole sigma integral", "sigma by sigma"))
           if panels else go.Figure())
    at = dict(row=1, col=1) if panels else {}
    x, y = result.centroid_d2, result.density_distance
    names = [f"{result.classes[a]} / {result.classes[b]}" for a, b in result.pairs]
    order = np.argsort(y)
    colour = np.full(len(y), "#7f7f7f", dtype=object)
    if highlight:
        colour[order[:highlight]] = "#d62728"
        colour[order[-highlight:]] = "#1f77b4"
    fig.add_trace(go.Scatter(x=x, y=y, mode="markers", text=names, marker=dict(color=list(colour), size=9),
                             hovertemplate="%{text}<br>centroid d\u00b2 %{x:.3g}<br>density distance %{y:.3g}"
                             "<extra></extra>", showlegend=False), **at)
    if len(x) >= 2 and np.ptp(x) > 0:
        slope, icpt = np.polyfit(x, y, 1)
        xs = np.linspace(x.min(), x.max(), 2)
        fig.add_trace(go.Scatter(x=xs, y=slope * xs + icpt, mode="lines", line=dict(color="black", dash="dot"),
                                 name="least-squares line"), **at)
    fig.add_annotation(xref="x domain" if panels else "paper", yref="y domain" if panels else "paper",
                       x=0.02, y=0.98, showarrow=False, align="left",
                       text=f"Pearson {result.pearson:.3f}<br>Spearman {result.spearman:.3f}<br>"
                            f"{len(x)} class pairs", bgcolor="rgba(255,255,255,0.8)")
    fig.update_xaxes(title_text=f"||phibar_c - phibar_c'||\u00b2 (blocks {', '.join(result.blocks)}, "
                                f"sigma {result.reference_sigma:g})", **at)
    fig.update_yaxes(title_text="density distance (symmetrised KL estimate)", **at)
    if panels:
        sig = np.asarray(result.sigmas)
        fig.add_trace(go.Scatter(x=sig, y=local, mode="lines+markers", line=dict(color="#1f77b4"),
                                 name="Pearson(integrand, centroid d\u00b2 at sigma)",
                                 hovertemplate="sigma %{x:.3g}<br>Pearson %{y:.2f}<extra></extra>"), row=1, col=2)
        fig.add_trace(go.Bar(x=sig, y=result.share, name="share of the density distance", opacity=0.45,
                             marker_color="#7f7f7f", width=sig * 0.35,
                             hovertemplate="sigma %{x:.3g}<br>share %{y:.2f}<extra></extra>"), row=1, col=2)
        fig.update_xaxes(type="log", title_text="sigma", row=1, col=2)
        fig.update_yaxes(range=[-1, 1.05], row=1, col=2)
    return _layout(fig, "Density distance vs squared centroid distance", height=520)


# ----------------------------------------------------------------------------- bifurcation

def bifurcation_figure(result, scale: int = 2, per_target: int = 8) -> go.Figure:
    """Fig 1: distance between the two trajectories as sigma falls (left to right), in pixels and
    in phi, with the separation sigma; below, the first `per_target` final samples of both targets."""
    fig = make_subplots(2, 1, row_heights=[0.68, 0.32], vertical_spacing=0.2,
                        specs=[[{"secondary_y": True}], [{}]],
                        subplot_titles=(f"trajectories under '{result.a}' and '{result.b}' (same noise)",
                                        f"final samples: top '{result.a}', bottom '{result.b}'"))
    fig.add_trace(go.Scatter(x=result.sigma, y=result.distance_pixels, name="||y_a - y_b|| / sqrt(N) (pixels)",
                             mode="lines", line=dict(color="#1f77b4")), 1, 1, secondary_y=False)
    fig.add_trace(go.Scatter(x=result.sigma, y=result.distance_phi, name="||phi(y_a) - phi(y_b)||",
                             mode="lines", line=dict(color="#d62728", dash="dash")), 1, 1, secondary_y=True)
    if math.isfinite(result.bifurcation_sigma):
        # a line trace, not a layout shape: shapes on a log axis take log10 coordinates
        top = float(np.max(result.distance_pixels)) if len(result.distance_pixels) else 1.0
        fig.add_trace(go.Scatter(x=[result.bifurcation_sigma] * 2, y=[0, top], mode="lines",
                                 name=f"separation sigma {result.bifurcation_sigma:.3g}",
                                 line=dict(color="black", dash="dot")), 1, 1, secondary_y=False)
    fig.update_xaxes(type="log", autorange="reversed", title_text="sigma (falls to the right)", row=1, col=1)
    fig.update_yaxes(title_text="pixel distance (RMS)", secondary_y=False, row=1, col=1)
    fig.update_yaxes(title_text="phi distance", secondary_y=True, row=1, col=1)
    n = min(per_target, len(result.samples_a))
    fig.add_trace(image_trace(np.clip(np.concatenate([result.samples_a[:n], result.samples_b[:n]]), 0, 1), ncol=n,
                              scale=scale), 2, 1)
    _hide_axes(fig, 2, 1)
    return _layout(fig, f"Bifurcation: the trajectories separate at sigma = {result.bifurcation_sigma:.3g} "
                   f"(phi: {result.bifurcation_sigma_phi:.3g})", height=640)


# ----------------------------------------------------------------------------- interpolation

def interpolation_figure(result, per_alpha: int = 4, scale: int = 2) -> go.Figure:
    """Samples along alpha (columns; rows: the first `per_alpha` seeds) and the classifier's
    mean probability of both classes against alpha."""
    fig = make_subplots(2, 1, row_heights=[0.5, 0.5], vertical_spacing=0.1,
                        subplot_titles=(f"samples from (1 - alpha) phibar('{result.a}') + alpha phibar('{result.b}')",
                                        "independent classifier"))
    rows = min(per_alpha, result.samples.shape[1])
    strip = result.samples[:, :rows].transpose(1, 0, 2, 3, 4).reshape(-1, *result.samples.shape[2:])
    fig.add_trace(image_trace(np.clip(strip, 0, 1), ncol=len(result.alphas), scale=scale), 1, 1)
    _hide_axes(fig, 1, 1)
    ends = [(result.a, result.prob_a, "#1f77b4"), (result.b, result.prob_b, "#d62728")]
    for name, p, colour in [(f"P({c})", p, class_colour(result.classes.index(c)) if c in result.classes else fallback)
                            for c, p, fallback in ends]:
        fig.add_trace(go.Scatter(x=result.alphas, y=p, name=name, mode="lines+markers",
                                 marker=dict(color=colour, size=8), line=dict(color=colour)), 2, 1)
    for edge in (0, 1):
        fig.add_vline(x=edge, line=dict(color="#bbb", dash="dot"), row=2, col=1)
    fig.update_xaxes(title_text="alpha", row=2, col=1)
    fig.update_yaxes(title_text="mean probability", range=[0, 1.02], row=2, col=1)
    return _layout(fig, f"Interpolation between centroids (Spearman of P({result.b}) with alpha: "
                   f"{result.spearman_b:.2f})", height=700)


def ground_truth_figure(gt, alpha: float | None = None, live: dict | None = None):
    """Aspect ratio against alpha for each method (median, quartile band, of the samples that hold
    an oval: ground_truth.has_oval), the two trained classes and the held-out one drawn across;
    `alpha` marks a position, `live` ({method: ratios}) adds the ratios of samples drawn there."""
    from .ground_truth import METHOD_NAMES
    fig = go.Figure()
    for k, (method, c) in enumerate(gt.curves.items()):
        color = MODEL_COLOURS.get(method, PALETTE[k])
        name = METHOD_NAMES.get(method, method)
        fig.add_trace(go.Scatter(x=c.alphas + c.alphas[::-1], y=c.q75 + c.q25[::-1], fill="toself",
                                 fillcolor=color, opacity=0.15, line=dict(width=0), hoverinfo="skip",
                                 showlegend=False, legendgroup=method))
        fig.add_trace(go.Scatter(x=c.alphas, y=c.median, mode="lines+markers", name=name, legendgroup=method,
                                 line=dict(color=color, width=2), customdata=[100 * v for v in c.oval_share],
                                 hovertemplate="alpha %{x:g}<br>median ratio %{y:.2f}<br>%{customdata:.0f}% of "
                                 "the samples hold an oval<extra>" + name + "</extra>"))
        if live and method in live:
            r = np.asarray(live[method], float)
            fig.add_trace(go.Scatter(x=np.full(len(r), alpha), y=r, mode="markers", legendgroup=method,
                                     name=f"{name}: these samples", marker=dict(color=color, size=7,
                                     symbol="circle-open")))
    for value, label, dash in ((float(gt.a.split()[-1]), gt.a, "dot"), (float(gt.b.split()[-1]), gt.b, "dot"),
                               (gt.real_ratio_median, f"held-out {gt.held_out} (never trained)", "dash")):
        fig.add_hline(y=value, line=dict(color="#666", dash=dash, width=1))
        # on a log axis plotly.js places a line by its value but an annotation by log10 of it
        fig.add_annotation(x=0, xref="paper", xanchor="left", y=math.log10(value), yref="y", yanchor="bottom",
                           text=label, showarrow=False, font=dict(size=11, color="#444"))
    if alpha is not None:
        fig.add_vline(x=alpha, line=dict(color="#999", width=1))
    fig.update_yaxes(type="log", title="aspect ratio of the samples (width / height)")
    fig.update_xaxes(title=f"alpha: 0 = {gt.a}, 1 = {gt.b}")
    fig.update_layout(legend=dict(orientation="h", y=-0.25))
    return _layout(fig, "Interpolation against the held-out class", height=400)


METHOD_COLOURS = {"feature_guided": "#d62728", "conditional": "#1f77b4"}
CFG_BLUES = ("#6baed6", "#3182bd", "#08519c", "#08306b")


def methods_figure(comparison: dict) -> go.Figure:
    """Feature guidance beside the conditional network and classifier-free guidance (methods.py):
    class accuracy, kernel distance, diversity and memorisation per method, what real held-out crops
    score drawn across, and the PSNR gain over the mixture against sigma."""
    rows = comparison["methods"]
    keys = list(rows)
    labels = [rows[k]["label"] for k in keys]
    colours = [METHOD_COLOURS.get(k, CFG_BLUES[i % len(CFG_BLUES)])
               for i, k in enumerate(k for k in keys)]
    real = comparison.get("real_held_out") or {}
    fig = make_subplots(2, 2, subplot_titles=("class accuracy (independent classifier)",
                                              "kernel distance, median over classes (lower: nearer real)",
                                              "diversity (plain) and memorisation (hatched) ratios",
                                              "PSNR gain over the mixture denoiser"),
                        vertical_spacing=0.2, horizontal_spacing=0.1)
    for (key, title), col in ((("class_accuracy", "accuracy"), 1), (("kid_median", "KID"), 2)):
        fig.add_trace(go.Bar(x=labels, y=[rows[k][key] for k in keys], marker_color=colours, showlegend=False,
                             hovertemplate="%{x}: %{y:.3f}<extra>" + title + "</extra>"), 1, col)
        if key in real:
            fig.add_hline(y=real[key], line=dict(color="#444", dash="dash", width=1), row=1, col=col,
                          annotation_text="real held-out crops", annotation_position="top right")
    for key, name, pattern in (("diversity_ratio", "diversity", ""), ("memorisation_ratio", "memorisation", "/")):
        fig.add_trace(go.Bar(x=labels, y=[rows[k][key] for k in keys], name=name, marker_color=colours,
                             marker_pattern_shape=pattern, hovertemplate="%{x}: %{y:.3f}<extra>" + name + "</extra>"),
                      2, 1)
    for k, label, colour in zip(keys, labels, colours):
        gain = rows[k]["psnr_gain_over_mixture_db"]
        if gain:
            s = [float(v) for v in gain]
            fig.add_trace(go.Scatter(x=s, y=list(gain.values()), name=label, mode="lines+markers",
                                     line=dict(color=colour), marker=dict(color=colour)), 2, 2)
    fig.add_hline(y=0, line=dict(color="black", width=1), row=2, col=2)
    fig.update_layout(barmode="group")
    fig.update_xaxes(type="log", title_text="sigma", row=2, col=2)
    fig.update_yaxes(title_text="dB", row=2, col=2)
    n = comparison.get("samples_per_class")
    return _layout(fig, f"Feature guidance beside a class-conditional network ({n} samples per class)", height=760,
                   width=1100)
