"""The page: one tab per view, wired to the callbacks, with the named API endpoints.

Endpoints (docs/app.md): /sample, /interpolate, /interpolate_strip, /trajectories,
/denoise, /embedding, /distances, /pair_samples. Helper events of the page (previews,
the step scrubber, polling the UMAP warm-up) are private: not part of the API.

Queue: engine work (sampling, denoising, analyses) shares one concurrency group of
`engine_concurrency` jobs; cheap page events have their own group, so browsing the
embedding stays quick while a batch is sampling. The queue holds at most `max_queue`
waiting jobs; more are refused with a message instead of piling up.
"""
from __future__ import annotations

import gradio as gr

from engine.sampler import SamplerSettings

from engine.atlas import ALL, ATLAS_SIGMAS

from . import figures, text
from .callbacks import BLEND, CLASS, IMAGES, MIXTURE_MODE, SWITCH, Views
from .context import FG, MIXTURE, Context
from .errors import user_errors

CSS = """
.pixelated img, .pixelated canvas { image-rendering: pixelated; image-rendering: crisp-edges; }
.pixelated .image-container { padding-top: 30px; box-sizing: border-box; }   /* clear of the label */
.run-status { display: flex; align-items: center; gap: 12px; font-size: 0.95em; min-height: 2em; }
.run-progress { width: 160px; height: 12px; flex: none; }
.run-status.done span { color: var(--body-text-color); }
.explain { font-size: 0.92em; color: var(--body-text-color-subdued); }
.explain p { margin: 0 0 0.3em 0; }
"""

ENGINE = "engine"
LIGHT = "light"


def theme() -> gr.themes.Base:
    # system font stacks only: the page loads no font from anywhere (offline, 127.0.0.1 only)
    return gr.themes.Default(
        primary_hue="indigo",
        font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"])


def explain(words: str) -> gr.Markdown:
    return gr.Markdown(words, elem_classes=["explain"])


PLOT_CLICK_JS = """
() => {
  // Clicking a dot of the embedding map shows that test image: the point's index (its
  // customdata) is written into the "test image #" box, whose change event does the rest.
  const onClick = (ev) => {
    const pt = ev && ev.points && ev.points[0];
    if (!pt || typeof pt.customdata !== "number") return;
    const box = document.querySelector("#emb-point input");
    if (!box) return;
    box.value = String(pt.customdata);
    box.dispatchEvent(new Event("input", { bubbles: true }));
    box.dispatchEvent(new Event("change", { bubbles: true }));
    box.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
  };
  const hook = () => {
    const plot = document.querySelector("#emb-map .js-plotly-plot");
    if (plot && plot.on && !(plot._ev && plot._ev.listeners("plotly_click").includes(onClick))) {
      plot.on("plotly_click", onClick);
    }
  };
  new MutationObserver(hook).observe(document.body, { childList: true, subtree: true });
}
"""


def model_choices(ctx: Context) -> list[tuple[str, str]]:
    return [("feature-guided", FG)] + ([("mixture", MIXTURE)] if ctx.mixture is not None else [])


def atlas_axes(ctx: Context) -> tuple[list[str], list[float]]:
    """Layers and sigmas of the maps: the atlas's, or what build_atlas will produce."""
    atlas = ctx.atlas.get()
    if atlas is not None:
        return list(atlas.layers), list(atlas.sigmas)
    return list(ctx.fg.layer_slices()) + [ALL], list(ATLAS_SIGMAS)


def build_blocks(ctx: Context, engine_concurrency: int = 1) -> gr.Blocks:
    views = Views(ctx)
    classes = ctx.classes
    heavy = dict(concurrency_id=ENGINE, concurrency_limit=engine_concurrency)
    light = dict(concurrency_id=LIGHT, concurrency_limit=4)
    conditions = [CLASS, IMAGES] + ([MIXTURE_MODE] if ctx.mixture is not None else [])
    layers, sigmas = atlas_axes(ctx)
    layer0 = "mid" if "mid" in layers else layers[0]
    second = classes[1] if len(classes) > 1 else classes[0]
    image_kw = dict(format="png", interactive=False, elem_classes=["pixelated"],
                    buttons=["download", "fullscreen"])

    with gr.Blocks(title=text.TITLE, analytics_enabled=False, delete_cache=(1800, 3600)) as demo:
        gr.Markdown(f"## {text.TITLE}")
        with gr.Tabs():
            # ---------------------------------------------------------------- Embeddings
            with gr.Tab("Embeddings", id="embeddings"):
                explain(text.EMBEDDINGS)
                with gr.Row(equal_height=True):
                    e_model = gr.Radio(model_choices(ctx), value=FG, label="Model", scale=2)
                    e_layer = gr.Dropdown(layers, value=layer0, label="Layer", scale=1, min_width=110)
                    # custom values: an API caller may send "0.05" or 0.07; the nearest map sigma is used
                    e_sigma = gr.Dropdown(sigmas, value=sigmas[0], allow_custom_value=True, label="Noise sigma",
                                          scale=1, min_width=110)
                    e_method = gr.Radio([("UMAP", "umap"), ("PCA", "pca")], value="umap", label="Map", scale=1)
                    e_image = gr.File(label="Place an image of yours", height=90, scale=2, elem_id="emb-upload")
                with gr.Row():
                    with gr.Column(scale=3):
                        e_map = gr.Plot(label="embedding", show_label=False, elem_id="emb-map")
                        e_note = gr.Markdown(label="note", elem_id="emb-note")
                    with gr.Column(scale=1, min_width=260):
                        e_class = gr.Dropdown(classes, value=None, label="Show images of class")
                        e_point = gr.Number(None, precision=0, minimum=0, label="or test image # (click a dot)",
                                            elem_id="emb-point")
                        e_gallery = gr.Gallery(label="Images", columns=3, height=400, format="png",
                                               elem_classes=["pixelated"], elem_id="emb-gallery")
                        e_caption = gr.Markdown()
                e_shown = gr.State("none")
                e_timer = gr.Timer(2.0)
                e_inputs = [e_model, e_layer, e_sigma, e_method, e_image]

                @user_errors
                def embedding_ui(model=FG, layer=layer0, sigma=sigmas[0], method="umap", image=None):
                    fig, note = views.embedding(model, layer, sigma, method, image)
                    atlas = ctx.atlas.get()
                    shown = "none" if atlas is None else atlas.embedding(model, layer, float(sigma), method).method
                    return fig, note, shown

                gr.on([e_model.change, e_layer.change, e_sigma.change, e_method.change, e_image.change],
                      embedding_ui, e_inputs, [e_map, e_note, e_shown], api_name="embedding", **light)

                def poll(model, layer, sigma, method, shown):
                    """Redraw once the atlas or this map's UMAP becomes ready; then stop polling."""
                    atlas = ctx.atlas.get()
                    done = ctx.atlas.phase in ("ready", "failed")
                    timer = gr.Timer(active=not done)
                    if atlas is None:
                        return gr.skip(), ctx.atlas.status(), shown, timer
                    want = atlas.embedding(model, layer, float(sigma), method).method
                    if want == shown:
                        return gr.skip(), gr.skip(), shown, timer
                    fig, note = views.embedding(model, layer, sigma, method, None)
                    return fig, note, want, timer

                e_timer.tick(poll, [e_model, e_layer, e_sigma, e_method, e_shown],
                             [e_map, e_note, e_shown, e_timer], api_visibility="private", queue=False,
                             show_progress="hidden")
                e_class.change(views.class_images, e_class, [e_gallery, e_caption], api_visibility="private",
                               **light)
                e_point.change(views.point_images, e_point, [e_gallery, e_caption], api_visibility="private",
                               **light)

            # ---------------------------------------------------------------- Sample
            with gr.Tab("Sample", id="sample"):
                explain(text.SAMPLE)
                with gr.Row(equal_height=True):
                    s_condition = gr.Radio(conditions, value=CLASS, label="Condition on", scale=2)
                    s_class = gr.Dropdown(classes, value=classes[0], label="Class", scale=1, min_width=140)
                    s_n = gr.Slider(1, 64, value=16, step=1, label="Samples", scale=1, min_width=170)
                    s_seed = gr.Number(0, precision=0, minimum=0, label="Seed", scale=1, min_width=90)
                    with gr.Column(scale=1, min_width=110):
                        s_run = gr.Button("Sample", variant="primary", elem_id="sample-run")
                        s_stop = gr.Button("Stop", variant="stop", size="sm")
                with gr.Row():                         # the sampler's own settings, full-width sliders
                    s_beta = gr.Slider(0.01, 1.0, value=SamplerSettings.beta, step=0.01,
                                       label="beta (noise injected: smaller = more, and more steps)")
                    s_h0 = gr.Slider(0.001, 0.2, value=SamplerSettings.h0, step=0.001, label="h0 (first step size)")
                    s_guidance = gr.Slider(0.0, 4.0, value=SamplerSettings.guidance, step=0.05,
                                           label="guidance (past the target, away from the mixture's centroid)")
                    s_eps = gr.Slider(1.0, 2.0, value=SamplerSettings.eps_scale, step=0.05,
                                      label="epsilon scaling (removes less of each step's estimate; 1 = off)")
                with gr.Row(visible=False, equal_height=True) as s_upload_row:
                    s_images = gr.File(file_count="multiple", label="Conditioning images (one or more)",
                                       height=140, scale=2, elem_id="sample-upload")
                    s_preview = gr.Gallery(label="As the model sees them", columns=6, height=140, scale=3,
                                           format="png", elem_classes=["pixelated"], elem_id="sample-preview")
                    s_upload_msg = gr.Markdown(elem_id="sample-upload-msg")
                s_status = gr.HTML(label="status", elem_id="sample-status")
                with gr.Row():
                    s_y = gr.Image(label="y_t: current noisy images", height=380, elem_id="sample-y", **image_kw)
                    s_f = gr.Image(label="f(y_t): denoised estimates", height=380, elem_id="sample-f", **image_kw)
                    s_grid = gr.Image(label="final samples", height=380, elem_id="sample-grid", **image_kw)
                    s_real = gr.Image(label="real images, to compare", height=380,
                                      elem_id="sample-real", **image_kw)
                s_files = gr.File(label="Downloads: PNG grid, trajectory GIF, .npy array, JSON with the command",
                                  file_count="multiple", interactive=False, elem_id="sample-files")
                s_condition.change(lambda c: (gr.update(visible=c == IMAGES), gr.update(visible=c == CLASS)),
                                   s_condition, [s_upload_row, s_class], api_visibility="private", queue=False)
                s_images.change(views.preview_uploads, s_images, [s_preview, s_upload_msg],
                                api_visibility="private", **light)
                run = s_run.click(views.sample, [s_condition, s_class, s_images, s_n, s_seed, s_beta, s_h0,
                                                  s_guidance, s_eps],
                                  [s_y, s_f, s_status, s_grid, s_files, s_real], api_name="sample",
                                  show_progress="minimal", **heavy)
                s_stop.click(None, None, None, cancels=[run], api_visibility="private")

            # ---------------------------------------------------------------- Interpolate
            with gr.Tab("Interpolate", id="interpolate"):
                explain(text.INTERPOLATE)
                with gr.Row(equal_height=True):
                    i_a = gr.Dropdown(classes, value=classes[0], label="Class A", scale=1, min_width=120)
                    i_b = gr.Dropdown(classes, value=second, label="Class B", scale=1, min_width=120)
                    i_mode = gr.Radio([("blend centroids (alpha)", BLEND), ("switch class at sigma*", SWITCH)],
                                      value=BLEND, label="Mode", scale=2)
                    i_n = gr.Slider(1, 16, value=8, step=1, label="Samples", scale=1, min_width=120)
                    i_seed = gr.Number(0, precision=0, minimum=0, label="Seed (same for every alpha)",
                                       scale=1, min_width=120)
                with gr.Row(equal_height=True):
                    i_alpha = gr.Slider(-0.5, 1.5, value=0.5, step=0.05, scale=4, elem_id="interp-alpha",
                                        label="alpha: 0 = centroid of A, 1 = centroid of B (samples when released)")
                    i_sigma = gr.Slider(0.02, 0.9, value=0.3, step=0.01, visible=False, scale=4,
                                        elem_id="interp-sigma",
                                        label="sigma*: class A above this noise level, class B below it "
                                              "(samples when released)")
                    i_run = gr.Button("Sample", variant="primary", scale=1, elem_id="interp-run")
                with gr.Row():
                    i_grid = gr.Image(label="samples", height=360, elem_id="interp-grid", **image_kw)
                    with gr.Column():
                        i_probs = gr.Plot(label="classifier probabilities", show_label=False, elem_id="interp-probs")
                        i_summary = gr.Markdown(label="summary", elem_id="interp-summary")
                with gr.Accordion("Strip across alpha: one sample per alpha, with the classifier's verdict",
                                  open=True):
                    with gr.Row(equal_height=True):
                        i_strip_n = gr.Slider(1, 6, value=3, step=1, label="Samples per alpha", scale=2)
                        i_strip_run = gr.Button("Draw the strip", scale=1, elem_id="interp-strip-run")
                    i_strip = gr.Image(label="strip: columns are alpha values, rows are seeds' samples",
                                       height=330, elem_id="interp-strip", **image_kw)
                    with gr.Row():
                        i_strip_fig = gr.Plot(label="probabilities across alpha", show_label=False,
                                              elem_id="interp-strip-fig")
                        i_strip_table = gr.JSON(label="probabilities by alpha", open=False)
                i_inputs = [i_a, i_b, i_mode, i_alpha, i_sigma, i_n, i_seed]
                i_outputs = [i_grid, i_probs, i_summary]
                i_mode.change(lambda m: (gr.update(visible=m == BLEND), gr.update(visible=m == SWITCH)),
                              i_mode, [i_alpha, i_sigma], api_visibility="private", queue=False)
                i_run.click(views.interpolate, i_inputs, i_outputs, api_name="interpolate", **heavy)
                for slider in (i_alpha, i_sigma):
                    slider.release(views.interpolate, i_inputs, i_outputs, api_visibility="private",
                                   trigger_mode="always_last", **heavy)
                i_strip_run.click(views.interpolate_strip, [i_a, i_b, i_strip_n, i_seed],
                                  [i_strip, i_strip_fig, i_strip_table], api_name="interpolate_strip", **heavy)

            # ---------------------------------------------------------------- Trajectories
            with gr.Tab("Trajectories", id="trajectories"):
                explain(text.TRAJECTORIES)
                with gr.Row(equal_height=True):
                    t_targets = gr.Dropdown(classes, value=classes[:2] if len(classes) > 1 else classes,
                                            multiselect=True, label="Targets (two or more classes)", scale=3)
                    t_seed = gr.Number(0, precision=0, minimum=0, label="Seed", scale=1,
                                       min_width=110)
                    t_layer = gr.Dropdown(layers, value=layer0, label="Map layer", scale=1, min_width=110)
                    t_sigma = gr.Dropdown(sigmas, value=sigmas[0], allow_custom_value=True, label="Map sigma",
                                          scale=1, min_width=110)
                    t_run = gr.Button("Run", variant="primary", scale=1, elem_id="traj-run")
                with gr.Row():
                    with gr.Column(scale=1):
                        t_map = gr.Plot(label="paths", show_label=False, elem_id="traj-map")
                    with gr.Column(scale=1):
                        t_dist = gr.Plot(label="distance", show_label=False, elem_id="traj-dist")
                        t_step = gr.Slider(0, 100, value=0, step=1, label="Step (drag to scrub through the run)",
                                           elem_id="traj-step")
                        t_step_note = gr.Markdown(label="step", elem_id="traj-step-note", height=26)
                        t_pic = gr.Image(label="images at this step", height=290, elem_id="traj-pic", **image_kw)
                t_summary = gr.JSON(label="summary", open=False)
                t_data = gr.State(None)
                t_run.click(views.trajectories, [t_targets, t_seed, t_layer, t_sigma],
                            [t_map, t_dist, t_pic, t_summary, t_data], api_name="trajectories", **heavy
                            ).then(lambda d: (gr.update(maximum=d["y"].shape[1] - 1, value=d["y"].shape[1] - 1),
                                              f"Step **{d['y'].shape[1] - 1}** (the end); drag to scrub.")
                                   if d else (gr.skip(), ""),
                                   t_data, [t_step, t_step_note], api_visibility="private", queue=False)
                # one scrub at a time, newest value last: the pictures never arrive out of order
                t_step.change(views.scrub, [t_data, t_step], [t_pic, t_map, t_dist, t_step_note],
                              api_visibility="private", trigger_mode="always_last", show_progress="hidden",
                              concurrency_id="scrub", concurrency_limit=1)

            # ---------------------------------------------------------------- Distances
            with gr.Tab("Distances", id="distances"):
                explain(text.DISTANCES)
                with gr.Row(equal_height=True):
                    d_layer = gr.Dropdown(layers, value=layer0, label="Layer (centroid distance)", scale=1)
                    d_sigma = gr.Dropdown(sigmas, value=sigmas[0], allow_custom_value=True,
                                          label="sigma (centroid distance)", scale=1)
                    d_run = gr.Button("Compute (the first time takes a while)", variant="primary", scale=2,
                                      elem_id="dist-run")
                with gr.Row():
                    d_h1 = gr.Plot(label="centroid distances", show_label=False, elem_id="dist-centroid")
                    d_h2 = gr.Plot(label="density distances", show_label=False, elem_id="dist-density")
                with gr.Row():
                    with gr.Column(scale=3):
                        d_scatter = gr.Plot(label="scatter", show_label=False, elem_id="dist-scatter")
                        d_summary = gr.JSON(label="summary", open=False)
                    with gr.Column(scale=2):
                        gr.Markdown("**Samples of a pair** (same seed for both classes)")
                        with gr.Row():
                            d_a = gr.Dropdown(classes, value=classes[0], label="Class A", min_width=100)
                            d_b = gr.Dropdown(classes, value=second, label="Class B", min_width=100)
                        with gr.Row():
                            d_n = gr.Slider(1, 16, value=8, step=1, label="Samples", min_width=100)
                            d_seed = gr.Number(0, precision=0, minimum=0, label="Seed", min_width=80)
                        d_pair_run = gr.Button("Sample the pair", elem_id="dist-pair-run")
                        with gr.Row():
                            d_ga = gr.Image(label="class A", height=220, elem_id="dist-a", **image_kw)
                            d_gb = gr.Image(label="class B", height=220, elem_id="dist-b", **image_kw)
                d_run.click(views.distances, [d_layer, d_sigma], [d_h1, d_h2, d_scatter, d_summary],
                            api_name="distances", **heavy)
                d_pair_run.click(views.pair_samples, [d_a, d_b, d_n, d_seed], [d_ga, d_gb],
                                 api_name="pair_samples", **heavy)

            # ---------------------------------------------------------------- Denoise
            with gr.Tab("Denoise", id="denoise"):
                explain(text.DENOISE)
                with gr.Row():
                    with gr.Column(scale=3):
                        n_pick = gr.Gallery(label="Test images: click one", columns=10, height=170, format="png",
                                            allow_preview=False, elem_classes=["pixelated"], elem_id="den-pick")
                    with gr.Column(scale=2):
                        with gr.Row(equal_height=True):
                            n_index = gr.Number(0, precision=0, minimum=0, label="Test image #", min_width=90)
                            n_image = gr.File(label="or upload an image", height=110, elem_id="den-upload")
                        with gr.Row(equal_height=True):
                            n_sigma = gr.Slider(0.02, 1.5, value=0.5, step=0.01, label="Noise sigma",
                                                scale=2, min_width=200)
                            n_seed = gr.Number(0, precision=0, minimum=0, label="Noise seed", scale=1, min_width=90)
                            n_run = gr.Button("Denoise", variant="primary", elem_id="den-run", scale=1, min_width=90)
                with gr.Row():
                    n_out = gr.Image(label="outputs and their PSNR", height=520, elem_id="den-out", scale=3,
                                     **image_kw)
                    with gr.Column(scale=2):
                        n_fig = gr.Plot(label="PSNR", show_label=False, elem_id="den-fig")
                        n_summary = gr.JSON(label="numbers", open=False)
                n_indices = gr.State([])
                n_run.click(views.denoise, [n_index, n_image, n_sigma, n_seed], [n_out, n_fig, n_summary],
                            api_name="denoise", **heavy)

            # ---------------------------------------------------------------- Model
            with gr.Tab("Model", id="model"):
                explain(text.MODEL)
                with gr.Row():
                    with gr.Column(scale=3):
                        gr.Markdown(text.INTRO)
                        gr.Markdown(text.model_card(ctx.fg, ctx.mixture))
                        gr.Markdown(text.HOW_TO_READ)
                        card = text.shipped_card(ctx.fg)
                        if card:
                            with gr.Accordion("Model card and measurements", open=False):
                                gr.Markdown(card)
                    with gr.Column(scale=2):
                        gr.Plot(figures.loss_figure(ctx.fg.info.get("history", []),
                                                    offset=ctx.fg.total_steps - ctx.fg.step), show_label=False)
                with gr.Accordion("Full configuration (JSON)", open=False):
                    gr.JSON(ctx.fg.describe(), label="feature-guided checkpoint")
                    if ctx.mixture is not None:
                        gr.JSON(ctx.mixture.describe(), label="mixture checkpoint")

        def on_load(model, layer, sigma, method):
            fig, note, shown = embedding_ui(model, layer, sigma, method, None)
            gallery, idx = views.test_gallery()
            return fig, note, shown, gallery, idx

        demo.load(on_load, [e_model, e_layer, e_sigma, e_method], [e_map, e_note, e_shown, n_pick, n_indices],
                  api_visibility="private", **light)

        def pick_test(indices, evt: gr.SelectData):
            return indices[evt.index] if indices and evt.index is not None else gr.skip()

        n_pick.select(pick_test, [n_indices], n_index, api_visibility="private", queue=False)
    return demo


def build_app(ctx: Context, engine_concurrency: int = 1, max_queue: int = 32) -> gr.Blocks:
    demo = build_blocks(ctx, engine_concurrency)
    demo.queue(max_size=max_queue, default_concurrency_limit=engine_concurrency)
    return demo


# show_error: our callbacks already raise gr.Error with a readable message; this also lets the
# messages of gradio's own input checks (a wrong type sent to the API) reach the caller, not null.
LAUNCH_DEFAULTS = dict(share=False, theme=None, css=CSS, footer_links=["api"], run_history=False,
                       max_file_size="64mb", show_error=True, ssr_mode=False, pwa=False, mcp_server=False)


def launch_kwargs(host: str = "127.0.0.1", port: int = 7860, **over) -> dict:
    kw = dict(LAUNCH_DEFAULTS, server_name=host, server_port=port, theme=theme(), js=PLOT_CLICK_JS)
    kw.update(over)
    return kw
