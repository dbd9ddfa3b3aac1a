"""The page: the model picker and one tab per view (app/tabs/), with what crosses tabs: the first
drawing when a page opens, the map redrawn when the atlas or a UMAP becomes ready, and a switch of
model that every control follows.

Endpoints (docs/app.md): /sample, /compare_methods, /interpolate, /interpolate_strip, /trajectories,
/denoise, /embedding, /distances, /pair_samples. Each takes a last parameter `checkpoint`: the model picker's
entry (default: the first model). The page's own events (previews, live redraws, the step
scrubber, polling the UMAP warm-up, clicks on figures, switching models) are private: not part of
the API. The page's events catch a user's mistake and show it in the view, clearing that view's
results (an API caller gets the same message as an error instead); named endpoints are bound to
hidden buttons so that both behaviours hold.

Queue: engine work shares one concurrency group of `engine_concurrency` jobs; cheap page events
have their own group, so browsing the embedding stays quick while a batch is sampling; live
redraws (a slider being dragged) have a group of one each, whose newest request replaces any
waiting one. The queue holds at most `max_queue` waiting jobs; more are refused with a message.
"""
from __future__ import annotations

import gradio as gr

from . import text
from .common import FG, status_html
from .context import Registry
from .errors import user_errors
from .tabs import denoise, distances, embeddings, interpolate, model, sample, trajectories
from .tabs.common import Wiring, defaults
from .tabs.embeddings import draw, model_choices

CSS = """
.pixelated img, .pixelated canvas { image-rendering: pixelated; image-rendering: crisp-edges; }
/* a picture's label floats over its top: the picture starts below it, so no row is hidden */
.pixelated .image-container { padding-top: 30px; box-sizing: border-box; }
.run-status { display: flex; align-items: center; gap: 12px; font-size: 0.95em; min-height: 1.6em; }
.run-progress { width: 160px; height: 12px; flex: none; }
.run-status.done span { color: var(--body-text-color); }
.run-status.error span, .view-error p { color: #c92a2a; }
.run-status.stopped span, .run-status.limit span b:first-child { color: #e67700; }
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
#emb-note p { margin: 0 0 0.3em 0; }
/* uploaded files: every name in full, one compact row per file, so two or three fit the widget */
.file-preview .filename .stem { white-space: normal !important; overflow-wrap: anywhere; }
.file-preview td { padding-top: 2px !important; padding-bottom: 2px !important; }
.captioned .caption-label { position: static !important; max-width: 100% !important; white-space: normal !important;
  border: none !important; background: none !important; text-align: center !important; opacity: 1 !important;
  padding: 1px 0 3px 0 !important; font-size: 0.8em !important; line-height: 1.35; overflow: visible !important; }
.captioned .grid-wrap { padding-top: 30px !important; box-sizing: border-box; }      /* clear of the label */
/* gradio's columns are at least 100 px wide: as many as asked must fit the gallery, smaller if need be */
.captioned .grid-container { grid-template-columns: repeat(var(--grid-cols), minmax(0, 1fr)) !important;
  grid-template-rows: none !important; grid-auto-rows: auto !important; }
.captioned .gallery-item button { display: flex !important; flex-direction: column; }
.captioned .gallery-item img { flex: 1 1 auto; min-height: 0; height: auto !important; object-fit: contain !important; }
/* the comparison of methods: one tall grid per method, as tall as the view allows, not a square thumbnail */
#sample-compared .thumbnail-item { aspect-ratio: auto !important; height: 370px !important; }
"""

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
    if (pt && Array.isArray(pt.customdata)) {
      write("#dist-pick textarea, #dist-pick input", pt.customdata.join("|") + "|" + Date.now());
      const pairs = document.querySelector("#dist-pairs");     // the pair's samples come below the plots
      if (pairs) pairs.scrollIntoView({ behavior: "smooth", block: "end" });
    }
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


def theme() -> gr.themes.Base:
    # system font stacks only: the page loads no font from anywhere (offline, 127.0.0.1 only)
    return gr.themes.Default(
        primary_hue="indigo",
        font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"])


def build_blocks(registry: Registry, engine_concurrency: int = 1) -> gr.Blocks:
    ctx = registry.context()
    with gr.Blocks(title=text.TITLE, analytics_enabled=False, delete_cache=(1800, 3600)) as demo:
        with gr.Row(elem_id="top-row", equal_height=True):
            with gr.Column(scale=3):
                gr.Markdown(f"## {text.TITLE}")
            with gr.Column(scale=0, min_width=70):
                gr.Markdown("**Model:**", elem_id="model-pick-label")
            choices = registry.choices()
            # one model: nothing to pick, so the picker only names it
            pick = gr.Dropdown(choices, value=registry.default, show_label=False, container=False,
                               interactive=len(choices) > 1, label="Model shown in every view", elem_id="model-pick",
                               scale=2, min_width=320)
        w = Wiring(registry, pick, engine_concurrency, {**defaults(ctx), "all_classes": registry.all_classes()})
        with gr.Tabs():
            with gr.Tab("Embeddings", id="embeddings"):
                emb = embeddings.build(w)
            with gr.Tab("Sample", id="sample"):
                smp = sample.build(w)
            with gr.Tab("Interpolate", id="interpolate"):
                itp = interpolate.build(w)
            with gr.Tab("Trajectories", id="trajectories"):
                trj = trajectories.build(w)
            with gr.Tab("Distances", id="distances") as d_tab:
                dst = distances.build(w, d_tab)
            with gr.Tab("Denoise", id="denoise"):
                den = denoise.build(w)
            with gr.Tab("Model", id="model"):
                mdl = model.build()

        def poll(model_, layer, sigma, method, shown, key):
            """Redraw once the atlas or this map's UMAP becomes ready (and fill the Denoise view's test
            images when the atlas arrives); the note says what is being prepared meanwhile; then stop."""
            c = registry.context(key)
            atlas = c.atlas.get()
            done = c.atlas.phase in ("ready", "failed")
            out = {emb.shown: shown, emb.timer: gr.Timer(active=not done)}
            if atlas is None:
                return {**out, emb.note: c.atlas.status()}
            want = atlas.embedding(model_, layer, float(sigma), method).method
            if want == shown:
                return out
            fig, note, now = draw(w, model_, layer, sigma, method, None, key)
            out.update({emb.map: fig, emb.note: note, emb.shown: now})
            if shown == "none":
                gallery = w.views(key).test_gallery()
                out.update({den.pick: gallery.gallery, den.indices: gallery.indices})
            return out

        emb.timer.tick(poll, [emb.model, emb.layer, emb.sigma, emb.method, emb.shown, pick],
                       [emb.map, emb.note, emb.shown, emb.timer, den.pick, den.indices], api_visibility="private",
                       queue=False, show_progress="hidden")

        def on_load(model_, layer, sigma, method, key):
            c = registry.context(key)
            fig, note, shown = draw(w, model_, layer, sigma, method, None, key)
            views = w.views(key)
            gallery = views.test_gallery()
            dd = defaults(c)
            # the class controls were built with every model's classes (for the API): the page's model's here
            classes = lambda value: gr.update(choices=dd["classes"], value=value)         # noqa: E731
            return {emb.map: fig, emb.note: note, emb.shown: shown, den.pick: gallery.gallery,
                    den.indices: gallery.indices, itp.a: classes(dd["pair"][0]), itp.b: classes(dd["pair"][1]),
                    trj.targets: classes(dd["targets"]), smp.cls: classes(dd["classes"][0]),
                    emb.cls: classes(None), dst.a: classes(dd["pair"][0]), dst.b: classes(dd["pair"][1]),
                    **dict(zip(mdl.outputs, model.contents(c))), **smp.shown(dd["conditional"]),
                    **itp.shown(dd, views.truth(*dd["pair"]))}

        per_set = [smp.compare_box, smp.compare_run, smp.pictures, smp.compared, itp.method, itp.alpha, itp.truth_box,
                   itp.truth, itp.truth_note]
        demo.load(on_load, [emb.model, emb.layer, emb.sigma, emb.method, pick],
                  [emb.map, emb.note, emb.shown, den.pick, den.indices, itp.a, itp.b, trj.targets, smp.cls, emb.cls,
                   dst.a, dst.b, *mdl.outputs, *per_set], api_visibility="private", **w.light)

        # switching models: every control follows the model's classes, layers and defaults, and every
        # view's results of the previous model are cleared
        results = [*smp.results, *itp.results, *trj.results, *dst.results, *den.results, emb.gallery]
        texts = [smp.upload_msg, *itp.texts, *trj.texts, *dst.texts, den.error, emb.caption]

        def switch(key):
            c = registry.context(key)
            dd = defaults(c)
            fig, note, shown = draw(w, FG, dd["layer"], dd["sigma"], "umap", None, key)
            views = w.views(key)
            gallery = views.test_gallery()
            classes = lambda value: gr.update(choices=dd["classes"], value=value)         # noqa: E731
            layers = gr.update(choices=dd["layers"], value=dd["layer"])
            sigmas = gr.update(choices=dd["sigmas"], value=dd["sigma"])
            return {emb.map: fig, emb.note: note, emb.shown: shown, emb.model: gr.update(choices=model_choices(c), value=FG),
                    emb.layer: layers, emb.sigma: sigmas, emb.cls: gr.update(choices=dd["classes"], value=None),
                    emb.point: None, smp.cls: classes(dd["classes"][0]), itp.a: classes(dd["pair"][0]),
                    itp.b: classes(dd["pair"][1]), trj.targets: classes(dd["targets"]), trj.layer: layers,
                    trj.sigma: sigmas, dst.layer: layers, dst.sigma: sigmas, dst.a: classes(dd["pair"][0]),
                    dst.b: classes(dd["pair"][1]), den.pick: gallery.gallery, den.indices: gallery.indices,
                    **dict(zip(mdl.outputs, model.contents(c))), **{r: None for r in results},
                    **{t: "" for t in texts}, trj.table: [], emb.timer: gr.Timer(active=True),
                    smp.status: status_html(f"Now showing <b>{c.label}</b>: run a view again to see this model."),
                    **smp.shown(dd["conditional"]), **itp.shown(dd, views.truth(*dd["pair"]))}

        pick.change(user_errors(switch), pick,
                    [emb.map, emb.note, emb.shown, emb.model, emb.layer, emb.sigma, emb.cls, emb.point, smp.cls,
                     itp.a, itp.b, trj.targets, trj.layer, trj.sigma, dst.layer, dst.sigma, dst.a, dst.b, den.pick,
                     den.indices, *mdl.outputs, *results, *texts, trj.table, emb.timer, smp.status, *per_set],
                    api_visibility="private", **w.heavy)
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
