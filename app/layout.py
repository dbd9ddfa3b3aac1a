"""The page: a model picker and one tab per view, wired to the callbacks, with the named API endpoints.

Endpoints (docs/app.md): /sample, /interpolate, /interpolate_strip, /trajectories,
/denoise, /embedding, /distances, /pair_samples. Each takes a last parameter `checkpoint`: the
model picker's entry (default: the first model). Helper events of the page (previews, the step
scrubber, polling the UMAP warm-up, clicks on figures, switching models) are private: not part of
the API.

The page's own events catch a user's mistake and show it in the view, clearing that view's results
(an API caller gets the same message as an error instead); named endpoints are bound to hidden
buttons so that both behaviours hold.

Queue: engine work (sampling, denoising, analyses) shares one concurrency group of
`engine_concurrency` jobs; cheap page events have their own group, so browsing the
embedding stays quick while a batch is sampling. The queue holds at most `max_queue`
waiting jobs; more are refused with a message instead of piling up.
"""
from __future__ import annotations

import functools
import inspect
import time

import gradio as gr

from engine.atlas import ALL, ATLAS_SIGMAS
from engine.config import SamplerSettings

from . import figures, text
from .callbacks import BLEND, CLASS, FRAME_SECONDS, IMAGES, MIXTURE_MODE, SWITCH, status_html
from .context import FG, MIXTURE, Context, Registry
from .errors import user_errors

CSS = """
.pixelated img, .pixelated canvas { image-rendering: pixelated; image-rendering: crisp-edges; }
.run-status { display: flex; align-items: center; gap: 12px; font-size: 0.95em; min-height: 1.6em; }
.run-progress { width: 160px; height: 12px; flex: none; }
.run-status.done span { color: var(--body-text-color); }
.run-status.error span, .view-error p { color: #c92a2a; }
.run-status.stopped span { color: #e67700; }
.explain { font-size: 0.92em; color: var(--body-text-color-subdued); }
.explain p { margin: 0 0 0.3em 0; }
.about > button span { font-size: 0.92em; font-weight: normal; text-align: left; }
.tidy table { display: block; overflow-x: auto; font-size: 0.88em; }
.tidy th, .tidy td { white-space: nowrap; padding: 2px 8px; }
.tidy h1 { font-size: 1.2em; } .tidy h2 { font-size: 1.05em; }
.summary-table table td:first-child { white-space: nowrap; font-weight: 600; }
.summary-table table thead { display: none; }   /* a markdown table needs a header row; this one is empty */
.pick-box { display: none !important; }
#top-row { align-items: center; }
#top-row h2 { margin: 0; }
#top-row { margin-bottom: -8px; }
#model-pick-label p { text-align: right; margin: 0; }
.captioned .caption-label { position: static !important; max-width: 100% !important; white-space: normal !important;
  border: none !important; background: none !important; text-align: center !important; opacity: 1 !important;
  padding: 1px 0 0 0 !important; font-size: 0.8em !important; line-height: 1.15; }
.captioned .grid-wrap { padding-top: 30px !important; box-sizing: border-box; }      /* clear of the label */
.captioned .gallery-item button { display: flex !important; flex-direction: column; }
.captioned .gallery-item img { flex: 1 1 auto; min-height: 0; height: auto !important; object-fit: contain !important; }
"""

ENGINE = "engine"
# The Sample tab's pictures: 430 px shows 16 samples at 3x with the grid in view at 1280x800; the
# upload message line above them takes the difference when conditioning on uploaded images.
SAMPLE_HEIGHT = 430
UPLOAD_MSG_HEIGHT = 70
LIGHT = "light"


def theme() -> gr.themes.Base:
    # system font stacks only: the page loads no font from anywhere (offline, 127.0.0.1 only)
    return gr.themes.Default(
        primary_hue="indigo",
        font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"])


def about(short: str, more: str) -> None:
    """The view's one-line explanation; the longer text folded under it."""
    with gr.Accordion(short, open=False, elem_classes=["about"]):
        gr.Markdown(more, elem_classes=["explain"])


PLOT_CLICK_JS = """
() => {
  // Clicks on figures write into a box whose change event does the rest: a dot of the embedding
  // map (customdata: the test image's index) and a point of the distances scatter ([a, b]).
  const write = (selector, value) => {
    const box = document.querySelector(selector);
    if (!box) return;
    box.value = value;
    box.dispatchEvent(new Event("input", { bubbles: true }));
    box.dispatchEvent(new Event("change", { bubbles: true }));
    box.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
  };
  const onMap = (ev) => {
    const pt = ev && ev.points && ev.points[0];
    if (pt && typeof pt.customdata === "number") write("#emb-point textarea, #emb-point input",
                                                       String(pt.customdata));
  };
  const onScatter = (ev) => {
    const pt = ev && ev.points && ev.points[0];
    if (pt && Array.isArray(pt.customdata)) write("#dist-pick textarea, #dist-pick input",
                                                  pt.customdata.join("|") + "|" + Date.now());
  };
  const hook = (selector, handler) => {
    const plot = document.querySelector(selector + " .js-plotly-plot");
    if (plot && plot.on && !(plot._ev && plot._ev.listeners("plotly_click").includes(handler))) {
      plot.on("plotly_click", handler);
    }
  };
  new MutationObserver(() => { hook("#emb-map", onMap); hook("#dist-scatter", onScatter); })
    .observe(document.body, { childList: true, subtree: true });
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


def defaults(ctx: Context) -> dict:
    """The controls' starting values for a model: the interpolation pair and trajectory targets
    come from its measures (engine.measures) once measured, else the first classes."""
    classes = ctx.classes
    layers, sigmas = atlas_axes(ctx)
    m = ctx.measures.get()
    pair = list(m.pair) if m is not None else classes[:2] if len(classes) > 1 else classes * 2
    targets = list(m.targets) if m is not None else classes[:3]
    return {"classes": classes, "layers": layers, "sigmas": sigmas, "layer": "mid" if "mid" in layers else layers[0],
            "sigma": sigmas[0], "pair": pair, "targets": targets, "measured": m is not None}


def bind(registry: Registry, name: str, page: bool = False, n_out: int = 0, error_as=None):
    """Views.<name> of the model named by a last `checkpoint` argument (the picker's value).

    page=True: the page's version: a user's mistake clears the view's `n_out` outputs and comes
    back as error_as(message) in one more output, instead of an error."""
    from .callbacks import Views
    method = getattr(Views, name)
    sig = inspect.signature(method)
    params = list(sig.parameters.values())[1:]
    params.append(inspect.Parameter("checkpoint", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=registry.default))
    new_sig = sig.replace(parameters=params)

    def call(args, kwargs):
        b = new_sig.bind(*args, **kwargs)
        key = b.arguments.pop("checkpoint", None)
        return getattr(user_errors(registry.views)(key), name)(**b.arguments)

    if inspect.isgeneratorfunction(inspect.unwrap(method)):
        def wrapper(*args, **kwargs):
            try:
                for out in call(args, kwargs):
                    yield (*out, "") if page else out
            except gr.Error as e:
                if not page:
                    raise
                yield (*([None] * n_out), error_as(e.message))
    else:
        def wrapper(*args, **kwargs):
            try:
                out = call(args, kwargs)
            except gr.Error as e:
                if not page:
                    raise
                return (*([None] * n_out), error_as(e.message))
            return (*out, "") if page else out
    functools.update_wrapper(wrapper, method)
    del wrapper.__wrapped__
    wrapper.__signature__ = new_sig
    return wrapper


def error_line(message: str) -> str:
    return f"**Error:** {message}"


def error_status(message: str) -> str:
    return status_html(f"<b>Error:</b> {message}", kind="error")


def build_blocks(registry: Registry, engine_concurrency: int = 1) -> gr.Blocks:
    ctx = registry.context()
    d = defaults(ctx)
    classes, layers, sigmas, layer0 = d["classes"], d["layers"], d["sigmas"], d["layer"]
    heavy = dict(concurrency_id=ENGINE, concurrency_limit=engine_concurrency)
    light = dict(concurrency_id=LIGHT, concurrency_limit=4)
    conditions = [CLASS, IMAGES, MIXTURE_MODE]
    image_kw = dict(format="png", interactive=False, elem_classes=["pixelated"],
                    buttons=["download", "fullscreen"])
    hidden = dict(visible=False)

    def page(name, n_out, error_as=error_line):
        return bind(registry, name, page=True, n_out=n_out, error_as=error_as)

    def api(name):
        return bind(registry, name)

    with gr.Blocks(title=text.TITLE, analytics_enabled=False, delete_cache=(1800, 3600)) as demo:
        with gr.Row(elem_id="top-row", equal_height=True):
            with gr.Column(scale=3):
                gr.Markdown(f"## {text.TITLE}")
            with gr.Column(scale=0, min_width=70):
                gr.Markdown("**Model:**", elem_id="model-pick-label")
            pick = gr.Dropdown(registry.choices(), value=registry.default, show_label=False, container=False,
                               label="Model shown in every view", elem_id="model-pick", scale=2, min_width=320)
        with gr.Tabs():
            # ---------------------------------------------------------------- Embeddings
            with gr.Tab("Embeddings", id="embeddings"):
                about(text.EMBEDDINGS, text.EMBEDDINGS_MORE)
                with gr.Row(equal_height=True):
                    e_model = gr.Radio(model_choices(ctx), value=FG, label="Features of", scale=2)
                    e_layer = gr.Dropdown(layers, value=layer0, label="Layer", scale=1, min_width=110)
                    # custom values: an API caller may send "0.05" or 0.07; the nearest map sigma is used
                    e_sigma = gr.Dropdown(sigmas, value=sigmas[0], allow_custom_value=True, label="Noise sigma",
                                          scale=1, min_width=110)
                    e_method = gr.Radio([("UMAP", "umap"), ("PCA", "pca")], value="umap", label="Map", scale=1,
                                        min_width=190)
                    e_image = gr.File(label="Place an image of yours", height=80, scale=2, elem_id="emb-upload")
                with gr.Row():
                    with gr.Column(scale=3):
                        e_map = gr.Plot(label="embedding", show_label=False, elem_id="emb-map")
                        e_note = gr.Markdown(label="note", elem_id="emb-note")
                    with gr.Column(scale=1, min_width=260):
                        e_class = gr.Dropdown(classes, value=None, label="Show images of class", elem_id="emb-class")
                        e_point = gr.Textbox(None, label="or test image # (click a dot)", placeholder="click a dot",
                                             max_lines=1, elem_id="emb-point")
                        e_gallery = gr.Gallery(label="Images", columns=3, height=380, format="png",
                                               elem_classes=["pixelated", "captioned"], elem_id="emb-gallery")
                        e_caption = gr.Markdown(elem_id="emb-caption")
                e_shown = gr.State("none")
                e_timer = gr.Timer(2.0)
                e_inputs = [e_model, e_layer, e_sigma, e_method, e_image]

                def embedding_ui(model=FG, layer=layer0, sigma=sigmas[0], method="umap", image=None, key=None):
                    """The map; a refused upload is named in the note and the map drawn without it."""
                    views = registry.views(key)
                    try:
                        fig, note = user_errors(views.embedding)(model, layer, sigma, method, image)
                    except gr.Error as e:
                        if image is None:
                            return figures.message_figure(e.message), error_line(e.message), "none"
                        fig, note = user_errors(views.embedding)(model, layer, sigma, method, None)
                        note = error_line(f"{e.message}; the map is drawn without it.") + " " + note
                    atlas = views.ctx.atlas.get()
                    shown = "none" if atlas is None else atlas.embedding(model, layer, float(sigma), method).method
                    return fig, note, shown

                e_api = gr.Button("embedding", **hidden)
                e_api.click(api("embedding"), e_inputs + [pick], [e_map, e_note], api_name="embedding", **light)
                gr.on([e_model.change, e_layer.change, e_sigma.change, e_method.change, e_image.change],
                      embedding_ui, e_inputs + [pick], [e_map, e_note, e_shown], api_visibility="private", **light)

                def show_class(name, key):
                    gallery, caption = registry.views(key).class_images(name)
                    return gallery, caption, None

                def show_point(index, key):
                    gallery, caption = registry.views(key).point_images(index)
                    return gallery, caption, (gr.skip() if index is None or str(index).strip() == "" else None)

                e_class.input(user_errors(show_class), [e_class, pick], [e_gallery, e_caption, e_point],
                              api_visibility="private", **light)
                e_point.change(user_errors(show_point), [e_point, pick], [e_gallery, e_caption, e_class],
                               api_visibility="private", **light)

            # ---------------------------------------------------------------- Sample
            with gr.Tab("Sample", id="sample"):
                with gr.Row():
                    with gr.Column(scale=3):
                        about(text.SAMPLE, text.SAMPLE_MORE)
                    with gr.Column(scale=2):
                        with gr.Accordion("Sampler settings (beta, h0, guidance, epsilon scaling)", open=False):
                            s_beta = gr.Slider(0.01, 1.0, value=SamplerSettings.beta, step=0.01,
                                               label="beta (noise injected: smaller = more, and more steps)")
                            s_h0 = gr.Slider(0.001, 0.2, value=SamplerSettings.h0, step=0.001,
                                             label="h0 (first step size)")
                            s_guidance = gr.Slider(0.0, 4.0, value=SamplerSettings.guidance, step=0.05,
                                                   label="guidance (past the target, away from the mixture's centroid)")
                            s_eps = gr.Slider(1.0, 2.0, value=SamplerSettings.eps_scale, step=0.05,
                                              label="epsilon scaling (removes less of each step's estimate; 1 = off)")
                with gr.Row(equal_height=True):
                    s_condition = gr.Dropdown(conditions, value=CLASS, label="Condition on", scale=2, min_width=200,
                                              elem_id="sample-condition")
                    s_class = gr.Dropdown(classes, value=classes[0], label="Class", scale=1, min_width=140)
                    s_images = gr.File(file_count="multiple", label="Conditioning images (one or more)",
                                       height=90, scale=2, min_width=220, visible=False, elem_id="sample-upload")
                    s_n = gr.Slider(1, 64, value=16, step=1, label="Samples", scale=1, min_width=170, elem_id="sample-n")
                    s_seed = gr.Number(0, precision=0, minimum=0, label="Seed", scale=1, min_width=90)
                    with gr.Column(scale=1, min_width=110):
                        s_run = gr.Button("Sample", variant="primary", elem_id="sample-run")
                        s_stop = gr.Button("Stop", variant="stop", size="sm", elem_id="sample-stop")
                s_upload_msg = gr.Markdown(elem_id="sample-upload-msg", visible=False)
                s_status = gr.HTML(label="status", elem_id="sample-status")
                with gr.Row():
                    s_y = gr.Image(label="y_t: the noisy images (at the end: the path of the first samples)",
                                   height=SAMPLE_HEIGHT, scale=3, elem_id="sample-y", **image_kw)
                    s_f = gr.Image(label="f(y_t): the denoised estimate (at the end: the samples)",
                                   height=SAMPLE_HEIGHT, scale=3, elem_id="sample-f", **image_kw)
                    s_real = gr.Image(label="real images to compare (or yours)", height=SAMPLE_HEIGHT,
                                      scale=2,
                                      elem_id="sample-real", **image_kw)
                s_grid = gr.Image(label="final samples", elem_id="sample-grid", **hidden, **image_kw)
                s_files = gr.File(label="Downloads: PNG grid, trajectory GIF, .npy array, JSON with the command",
                                  file_count="multiple", interactive=False, elem_id="sample-files")
                s_prev_files = gr.State([])

                def condition_shown(c):
                    """The upload widget and its message for uploads (the pictures shortened by the
                    message's height, so the whole grid stays in view at 1280x800), the class otherwise."""
                    pictures = gr.update(height=SAMPLE_HEIGHT - UPLOAD_MSG_HEIGHT if c == IMAGES else SAMPLE_HEIGHT)
                    return (gr.update(visible=c == IMAGES), gr.update(visible=c == IMAGES),
                            gr.update(visible=c == CLASS), pictures, pictures, pictures)

                s_condition.change(condition_shown, s_condition, [s_images, s_upload_msg, s_class, s_y, s_f, s_real],
                                   api_visibility="private", queue=False)

                def new_uploads(files, before):
                    """A second upload replaces the first instead of adding to it."""
                    from .callbacks import file_list
                    now, old = file_list(files), set(before or [])
                    fresh = [f for f in now if f not in old] or now
                    return (fresh if fresh != now else gr.skip()), fresh

                s_images.upload(new_uploads, [s_images, s_prev_files], [s_images, s_prev_files],
                                api_visibility="private", queue=False)
                s_images.clear(lambda: [], None, s_prev_files, api_visibility="private", queue=False)
                s_images.change(lambda files, key: registry.views(key).preview_uploads(files), [s_images, pick],
                                [s_real, s_upload_msg], api_visibility="private", **light)
                s_inputs = [s_condition, s_class, s_images, s_n, s_seed, s_beta, s_h0, s_guidance, s_eps, pick]
                s_outputs = [s_y, s_f, s_status, s_grid, s_files, s_real]
                gr.Button("sample", **hidden).click(api("sample"), s_inputs, s_outputs, api_name="sample", **heavy)
                api_sample = api("sample")

                # Pages whose Stop was pressed: their run yields no further frame, so that a frame
                # already made cannot arrive after "stopped" when the server is busy.
                stopped_pages: set[str] = set()

                def sample_page(condition, class_name, images, n, seed, beta, h0, guidance, eps, key,
                                request: gr.Request):
                    """The page's run: a mistake clears the view and is said in the status line."""
                    page = request.session_hash if request is not None else None
                    stopped_pages.discard(page)
                    try:
                        for frame in api_sample(condition, class_name, images, n, seed, beta, h0, guidance, eps,
                                                key):
                            if page in stopped_pages:
                                return
                            yield frame
                    except gr.Error as e:
                        yield None, None, error_status(e.message), None, None, None

                # the status leaves the last run's "done" at once, so that Stop pressed while this run
                # still waits in the queue says "stopped" too
                run = s_run.click(lambda: status_html("starting: the run begins when the engine is free", kind="queued"),
                                  None, s_status, api_visibility="private", queue=False).then(
                    sample_page, s_inputs, s_outputs, api_visibility="private", show_progress="minimal", **heavy)

                def stopped(status, request: gr.Request):
                    if request is not None:
                        stopped_pages.add(request.session_hash)
                    if status and ("run-status done" in status or "run-status error" in status):
                        return gr.skip()
                    time.sleep(2 * FRAME_SECONDS + 0.2)     # a frame already on its way arrives first
                    return status_html("<b>stopped</b>: the images shown are where the run was when you "
                                       "stopped it, not finished samples; press Sample to run again",
                                       kind="stopped")

                s_stop.click(stopped, s_status, s_status, cancels=[run], api_visibility="private", queue=False)

            # ---------------------------------------------------------------- Interpolate
            with gr.Tab("Interpolate", id="interpolate"):
                about(text.INTERPOLATE, text.INTERPOLATE_MORE)
                with gr.Row(equal_height=True):
                    i_a = gr.Dropdown(classes, value=d["pair"][0], label="Class A", scale=1, min_width=120,
                                      elem_id="interp-a")
                    i_b = gr.Dropdown(classes, value=d["pair"][1], label="Class B", scale=1, min_width=120,
                                      elem_id="interp-b")
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
                i_warn = gr.Markdown(elem_id="interp-warn", elem_classes=["view-error"])
                with gr.Row():
                    i_grid = gr.Image(label="samples", height=300, elem_id="interp-grid", **image_kw)
                    with gr.Column():
                        i_probs = gr.Plot(label="classifier probabilities", show_label=False, elem_id="interp-probs")
                        i_summary = gr.Markdown(label="summary", elem_id="interp-summary")
                with gr.Accordion("Strip across alpha: every alpha at once, with the classifier's verdict against alpha",
                                  open=True):
                    with gr.Row(equal_height=True):
                        i_strip_n = gr.Slider(1, 6, value=3, step=1, label="Samples per alpha", scale=2)
                        i_strip_run = gr.Button("Draw the strip", scale=1, elem_id="interp-strip-run")
                    i_strip = gr.Image(label="strip", show_label=False, height=330, elem_id="interp-strip",
                                       **image_kw)
                    i_strip_cols = gr.Markdown(elem_id="interp-strip-cols", elem_classes=["explain"])
                    i_strip_fig = gr.Plot(label="probabilities against alpha", show_label=False,
                                          elem_id="interp-strip-fig")
                    i_strip_table = gr.JSON(label="probabilities by alpha", **hidden)
                i_inputs = [i_a, i_b, i_mode, i_alpha, i_sigma, i_n, i_seed, pick]
                i_outputs = [i_grid, i_probs, i_summary]
                i_mode.change(lambda m: (gr.update(visible=m == BLEND), gr.update(visible=m == SWITCH)),
                              i_mode, [i_alpha, i_sigma], api_visibility="private", queue=False)

                def same_class(a, b):
                    return (f"**Class A and class B are both {a}.** Choose two different classes: the blend of a "
                            "class with itself is that class.") if a and a == b else ""

                gr.on([i_a.change, i_b.change], same_class, [i_a, i_b], i_warn, api_visibility="private",
                      queue=False)
                gr.Button("interpolate", **hidden).click(api("interpolate"), i_inputs, i_outputs,
                                                         api_name="interpolate", **heavy)
                i_run.click(page("interpolate", 3), i_inputs, i_outputs + [i_warn], api_visibility="private", **heavy)
                for slider in (i_alpha, i_sigma):
                    slider.release(page("interpolate", 3), i_inputs, i_outputs + [i_warn], api_visibility="private",
                                   trigger_mode="always_last", **heavy)
                strip_in = [i_a, i_b, i_strip_n, i_seed, pick]
                gr.Button("strip", **hidden).click(api("interpolate_strip"), strip_in,
                                                   [i_strip, i_strip_fig, i_strip_table],
                                                   api_name="interpolate_strip", **heavy)

                def strip_page(a, b, n, seed, key, progress=gr.Progress(track_tqdm=True)):
                    views = registry.views(key)
                    try:
                        strip, fig, table = user_errors(views.interpolate_strip)(a, b, n, seed, progress)
                    except gr.Error as e:
                        return None, None, None, error_line(e.message)
                    return strip, fig, table, views.strip_columns(a, b, views.atlas_or_none() is not None)

                i_strip_run.click(strip_page, strip_in, [i_strip, i_strip_fig, i_strip_table, i_strip_cols],
                                  api_visibility="private", **heavy)

            # ---------------------------------------------------------------- Trajectories
            with gr.Tab("Trajectories", id="trajectories"):
                about(text.TRAJECTORIES, text.TRAJECTORIES_MORE)
                with gr.Row(equal_height=True):
                    t_targets = gr.Dropdown(classes, value=d["targets"], multiselect=True,
                                            label="Targets (two to six classes)", scale=3, elem_id="traj-targets")
                    t_seed = gr.Number(0, precision=0, minimum=0, label="Seed", scale=1, min_width=110)
                    t_layer = gr.Dropdown(layers, value=layer0, label="Map layer", scale=1, min_width=110)
                    t_sigma = gr.Dropdown(sigmas, value=sigmas[0], allow_custom_value=True, label="Map sigma",
                                          scale=1, min_width=110)
                    t_run = gr.Button("Run", variant="primary", scale=1, elem_id="traj-run")
                t_error = gr.Markdown(elem_classes=["view-error"], elem_id="traj-error")
                with gr.Row():
                    with gr.Column(scale=5):
                        t_dist = gr.Plot(label="distance", show_label=False, elem_id="traj-dist")
                        t_step = gr.Slider(0, 100, value=0, step=1, label="Step (drag to scrub through the run)",
                                           elem_id="traj-step")
                        t_step_note = gr.Markdown(label="step", elem_id="traj-step-note")
                    with gr.Column(scale=4):
                        t_pic = gr.Gallery(label="images at this step", columns=4, height=300, format="png",
                                           allow_preview=False, object_fit="contain",
                                           elem_classes=["pixelated", "captioned"], elem_id="traj-pic")
                        t_table = gr.Dataframe(headers=["pair", "parts at sigma", "final distance"],
                                               label="where each pair parts", interactive=False,
                                               elem_id="traj-table", max_height=200)
                with gr.Row():
                    t_map = gr.Plot(label="paths", show_label=False, elem_id="traj-map")
                t_summary = gr.JSON(label="summary", **hidden)
                t_data = gr.State(None)
                t_inputs = [t_targets, t_seed, t_layer, t_sigma, pick]
                t_outputs = [t_map, t_dist, t_pic, t_summary, t_data]
                gr.Button("trajectories", **hidden).click(api("trajectories"), t_inputs, t_outputs,
                                                          api_name="trajectories", **heavy)

                def after_run(data, summary):
                    if not data:
                        return gr.skip(), "", []
                    last = data["y"].shape[1] - 1
                    rows = [[k, "-" if v is None else f"{v:.3g}", f"{summary['final_distance'][k]:.3f}"]
                            for k, v in summary["bifurcation_sigma"].items()]
                    return (gr.update(maximum=last, value=last), f"Step **{last}** (the end); drag to scrub.", rows)

                t_run.click(page("trajectories", 5), t_inputs, t_outputs + [t_error], api_visibility="private",
                            **heavy).then(after_run, [t_data, t_summary], [t_step, t_step_note, t_table],
                                          api_visibility="private", queue=False)

                def scrub(data, step, key):
                    return registry.views(key).scrub(data, step)

                # one scrub at a time, newest value last: the pictures never arrive out of order
                t_step.change(scrub, [t_data, t_step, pick], [t_pic, t_map, t_dist, t_step_note],
                              api_visibility="private", trigger_mode="always_last", show_progress="hidden",
                              concurrency_id="scrub", concurrency_limit=1)

            # ---------------------------------------------------------------- Distances
            with gr.Tab("Distances", id="distances") as d_tab:
                about(text.DISTANCES, text.DISTANCES_MORE)
                with gr.Row(equal_height=True):
                    d_layer = gr.Dropdown(layers, value=layer0, label="Layer (centroid distance)", scale=1)
                    d_sigma = gr.Dropdown(sigmas, value=sigmas[0], allow_custom_value=True,
                                          label="sigma (centroid distance)", scale=1)
                    d_run = gr.Button("Redraw", variant="primary", scale=1, elem_id="dist-run")
                d_text = gr.Markdown(elem_id="dist-text")
                with gr.Row():
                    d_h1 = gr.Plot(label="centroid distances", show_label=False, elem_id="dist-centroid")
                    d_h2 = gr.Plot(label="density distances", show_label=False, elem_id="dist-density")
                    d_scatter = gr.Plot(label="scatter", show_label=False, elem_id="dist-scatter")
                with gr.Row():
                    with gr.Column(scale=1, min_width=240):
                        gr.Markdown("**Samples of a pair** (same seed for both; or click a point of the scatter)")
                        with gr.Row():
                            d_a = gr.Dropdown(classes, value=d["pair"][0], label="Class A", min_width=100,
                                              elem_id="dist-a-class")
                            d_b = gr.Dropdown(classes, value=d["pair"][1], label="Class B", min_width=100,
                                              elem_id="dist-b-class")
                        with gr.Row():
                            d_n = gr.Slider(1, 16, value=8, step=1, label="Samples", min_width=100)
                            d_seed = gr.Number(0, precision=0, minimum=0, label="Seed", min_width=80)
                        d_pair_run = gr.Button("Sample the pair", elem_id="dist-pair-run")
                        d_pick = gr.Textbox(elem_id="dist-pick", elem_classes=["pick-box"], show_label=False)
                    d_ga = gr.Image(label="class A", height=240, scale=2, elem_id="dist-a", **image_kw)
                    d_gb = gr.Image(label="class B", height=240, scale=2, elem_id="dist-b", **image_kw)
                with gr.Accordion("The numbers (JSON)", open=False):
                    d_summary = gr.JSON(label="summary")
                d_inputs = [d_layer, d_sigma, pick]
                d_outputs = [d_h1, d_h2, d_scatter, d_summary]
                gr.Button("distances", **hidden).click(api("distances"), d_inputs, d_outputs,
                                                       api_name="distances", **heavy)

                def verdict(summary):
                    if not summary:
                        return gr.skip()
                    return (f"**{summary['model']}**, layer {summary['layer']}, sigma {summary['sigma']:g}: "
                            f"{summary['correlation']}.")

                d_draw = page("distances", 4)
                for ev in (d_run.click, d_tab.select):
                    ev(d_draw, d_inputs, d_outputs + [d_text], api_visibility="private", **heavy
                       ).then(verdict, d_summary, d_text, api_visibility="private", queue=False)
                p_inputs = [d_a, d_b, d_n, d_seed, pick]
                gr.Button("pairs", **hidden).click(api("pair_samples"), p_inputs, [d_ga, d_gb],
                                                   api_name="pair_samples", **heavy)
                d_pair_run.click(page("pair_samples", 2), p_inputs, [d_ga, d_gb, d_text], api_visibility="private",
                                 **heavy)

                def picked(value):
                    parts = (value or "").split("|")
                    return (parts[0], parts[1]) if len(parts) >= 2 else (gr.skip(), gr.skip())

                d_pick.change(picked, d_pick, [d_a, d_b], api_visibility="private", queue=False).then(
                    page("pair_samples", 2), p_inputs, [d_ga, d_gb, d_text], api_visibility="private", **heavy)

            # ---------------------------------------------------------------- Denoise
            with gr.Tab("Denoise", id="denoise"):
                about(text.DENOISE, text.DENOISE_MORE)
                with gr.Row():
                    with gr.Column(scale=3):
                        n_pick = gr.Gallery(label="Test images: click one to denoise it", columns=8, height=270,
                                            format="png", allow_preview=False, elem_classes=["pixelated", "captioned"],
                                            elem_id="den-pick")
                    with gr.Column(scale=2):
                        with gr.Row(equal_height=True):
                            n_index = gr.Number(0, precision=0, minimum=0, label="Test image #", min_width=90)
                            n_image = gr.File(label="or upload an image", height=100, elem_id="den-upload")
                        with gr.Row(equal_height=True):
                            n_sigma = gr.Slider(0.02, 1.5, value=0.5, step=0.01, label="Noise sigma",
                                                scale=2, min_width=200)
                            n_seed = gr.Number(0, precision=0, minimum=0, label="Noise seed", scale=1, min_width=90)
                            n_run = gr.Button("Denoise", variant="primary", elem_id="den-run", scale=1, min_width=90)
                n_error = gr.Markdown(elem_classes=["view-error"], elem_id="den-error")
                with gr.Row():
                    n_out = gr.Gallery(label="clean, noisy, the mixture's output, then conditioned on each class "
                                             "(* the true class), with PSNR", columns=6, height="auto", format="png",
                                       allow_preview=False, object_fit="contain",
                                       elem_classes=["pixelated", "captioned"], elem_id="den-out", scale=3)
                    n_fig = gr.Plot(label="gain", show_label=False, elem_id="den-fig", scale=2)
                with gr.Accordion("The numbers (JSON)", open=False):
                    n_summary = gr.JSON(label="numbers")
                n_indices = gr.State([])
                n_inputs = [n_index, n_image, n_sigma, n_seed, pick]
                n_outputs = [n_out, n_fig, n_summary]
                gr.Button("denoise", **hidden).click(api("denoise"), n_inputs, n_outputs, api_name="denoise", **heavy)
                n_run.click(page("denoise", 3), n_inputs, n_outputs + [n_error], api_visibility="private", **heavy)

                def pick_test(indices, evt: gr.SelectData):
                    return (indices[evt.index], None) if indices and evt.index is not None else (gr.skip(), gr.skip())

                n_pick.select(pick_test, [n_indices], [n_index, n_image], api_visibility="private", queue=False
                              ).then(page("denoise", 3), n_inputs, n_outputs + [n_error], api_visibility="private",
                                     **heavy)

            # ---------------------------------------------------------------- Model
            with gr.Tab("Model", id="model"):
                gr.Markdown(text.MODEL, elem_classes=["explain"])
                with gr.Row():
                    with gr.Column(scale=3):
                        m_summary = gr.Markdown(elem_classes=["summary-table"], elem_id="model-summary")
                    with gr.Column(scale=2):
                        m_loss = gr.Plot(show_label=False, elem_id="model-loss")
                with gr.Accordion("Model card and measurements", open=False):
                    m_card = gr.Markdown(elem_classes=["tidy"], elem_id="model-card")
                with gr.Accordion("What the app shows, and how to read each view", open=False):
                    gr.Markdown(text.INTRO + "\n" + text.HOW_TO_READ)
                with gr.Accordion("Full configuration (JSON)", open=False):
                    m_config = gr.JSON(label="checkpoints")

        def poll(model, layer, sigma, method, shown, key):
            """Redraw once the atlas or this map's UMAP becomes ready (and fill the Denoise view's
            test images when the atlas arrives); then stop polling."""
            c = registry.context(key)
            atlas = c.atlas.get()
            done = c.atlas.phase in ("ready", "failed")
            timer = gr.Timer(active=not done)
            if atlas is None:
                return gr.skip(), c.atlas.status(), shown, timer, gr.skip(), gr.skip()
            want = atlas.embedding(model, layer, float(sigma), method).method
            if want == shown:
                return gr.skip(), gr.skip(), shown, timer, gr.skip(), gr.skip()
            fig, note, now = embedding_ui(model, layer, sigma, method, None, key)
            gallery, idx = registry.views(key).test_gallery() if shown == "none" else (gr.skip(), gr.skip())
            return fig, note, now, timer, gallery, idx

        e_timer.tick(poll, [e_model, e_layer, e_sigma, e_method, e_shown, pick],
                     [e_map, e_note, e_shown, e_timer, n_pick, n_indices], api_visibility="private", queue=False,
                     show_progress="hidden")

        def model_tab(key):
            c = registry.context(key)
            return (text.model_summary(c),
                    figures.loss_figure(text.lineage_segments(c.fg), model=c.label),
                    (text.model_card(c.fg, c.mixture) + "\n\n" + (text.shipped_card(c.fg) or
                                                                   "No model card beside this checkpoint.")),
                    text.config_json(c))

        def on_load(model, layer, sigma, method, key):
            c = registry.context(key)
            fig, note, shown = embedding_ui(model, layer, sigma, method, None, key)
            gallery, idx = registry.views(key).test_gallery()
            dd = defaults(c)
            return (fig, note, shown, gallery, idx, *model_tab(key),
                    gr.update(value=dd["pair"][0]), gr.update(value=dd["pair"][1]), gr.update(value=dd["targets"]))

        demo.load(on_load, [e_model, e_layer, e_sigma, e_method, pick],
                  [e_map, e_note, e_shown, n_pick, n_indices, m_summary, m_loss, m_card, m_config, i_a, i_b,
                   t_targets], api_visibility="private", **light)

        # switching models: every control follows the model's classes, layers and defaults, and every
        # view's results of the previous model are cleared
        cleared = [s_y, s_f, s_grid, s_files, s_real, i_grid, i_probs, i_strip, i_strip_fig, t_map, t_dist, t_pic,
                   t_data, d_h1, d_h2, d_scatter, d_ga, d_gb, n_out, n_fig, n_summary, e_gallery]
        texts = [s_status, i_summary, i_strip_cols, t_step_note, d_text, n_error, t_error, e_caption]

        def switch(key):
            c = registry.context(key)
            dd = defaults(c)
            cls, lay, sig = dd["classes"], dd["layers"], dd["sigmas"]
            fig, note, shown = embedding_ui(FG, dd["layer"], dd["sigma"], "umap", None, key)
            gallery, idx = registry.views(key).test_gallery()
            dropdown = lambda value: gr.update(choices=cls, value=value)             # noqa: E731
            layer_dd = gr.update(choices=lay, value=dd["layer"])
            sigma_dd = gr.update(choices=sig, value=dd["sigma"])
            return (fig, note, shown, gr.update(choices=model_choices(c), value=FG), layer_dd, sigma_dd,
                    gr.update(choices=cls, value=None), None,
                    dropdown(cls[0]), dropdown(dd["pair"][0]), dropdown(dd["pair"][1]), dropdown(dd["targets"]),
                    layer_dd, sigma_dd, layer_dd, sigma_dd, dropdown(dd["pair"][0]), dropdown(dd["pair"][1]),
                    gallery, idx, *model_tab(key), *([None] * len(cleared)),
                    *([f"Now showing **{c.label}**: run the view again."] + [""] * (len(texts) - 1)), [],
                    gr.Timer(active=True))

        pick.change(user_errors(switch), pick,
                    [e_map, e_note, e_shown, e_model, e_layer, e_sigma, e_class, e_point,
                     s_class, i_a, i_b, t_targets, t_layer, t_sigma, d_layer, d_sigma, d_a, d_b,
                     n_pick, n_indices, m_summary, m_loss, m_card, m_config, *cleared, *texts, t_table, e_timer],
                    api_visibility="private", **heavy)
    return demo


def build_app(registry: Registry, engine_concurrency: int = 1, max_queue: int = 32) -> gr.Blocks:
    demo = build_blocks(registry, engine_concurrency)
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
