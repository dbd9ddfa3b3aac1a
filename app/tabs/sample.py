"""The Sample tab: the run's controls, its live pictures and status, Stop, the downloads and the
real images to compare with; uploads of conditioning images with what the model makes of them."""
from __future__ import annotations

import time
from dataclasses import dataclass

import gradio as gr

from engine.config import SamplerSettings
from engine.errors import EngineError

from .. import text
from ..common import CLASS, COMPARE_MAX, IMAGES, METHODS, MIXTURE_MODE, file_list, status_html, whole
from ..views.sample import FRAME_SECONDS, SampleUpdate
from .common import HIDDEN, IMAGE_KW, Wiring, about, error_status

# The pictures: 430 px shows 16 samples at 3x with the grid in view at 1280x800; the upload
# message line above them takes the difference when conditioning on uploaded images.
SAMPLE_HEIGHT = 430
UPLOAD_MSG_HEIGHT = 140


@dataclass
class SampleTab:
    condition: gr.Dropdown
    cls: gr.Dropdown
    images: gr.File
    upload_msg: gr.Markdown
    status: gr.HTML
    y: gr.Image
    f: gr.Image
    real: gr.Image
    grid: gr.Image
    files: gr.File
    compare_box: gr.Accordion        # the methods to compare (a model set with a conditional network)
    compare_run: gr.Button
    pictures: gr.Row                 # y_t, f(y_t), real images: a sampling run's view
    compared: gr.Column              # the comparison's view, shown in their place
    compare_gallery: gr.Gallery

    @property
    def results(self) -> list:
        return [self.y, self.f, self.grid, self.files, self.real, self.compare_gallery]

    def shown(self, conditional: bool) -> dict:
        """A model set's switch: the comparison offered when it has a conditional network; a
        sampling run's view in place."""
        return {self.compare_box: gr.update(visible=conditional), self.compare_run: gr.update(visible=conditional),
                self.pictures: gr.update(visible=True), self.compared: gr.update(visible=False)}


def build(w: Wiring) -> SampleTab:
    d = w.d
    with gr.Row():
        with gr.Column(scale=5):
            about(text.SAMPLE, text.SAMPLE_MORE + "\n\n" + text.COMPARE)
        with gr.Column(scale=2, min_width=200):
            with gr.Accordion("Sampler settings", open=False, elem_id="sample-settings"):
                beta = gr.Slider(0.01, 1.0, value=SamplerSettings.beta, step=0.01,
                                 label="beta (noise injected: smaller = more, and more steps)")
                h0 = gr.Slider(0.001, 0.2, value=SamplerSettings.h0, step=0.001, label="h0 (first step size)")
                guidance = gr.Slider(0.0, 4.0, value=SamplerSettings.guidance, step=0.05,
                                     label="guidance (past the target, away from the mixture's centroid)")
                eps = gr.Slider(1.0, 2.0, value=SamplerSettings.eps_scale, step=0.05,
                                label="epsilon scaling (removes less of each step's estimate; 1 = off)")
        with gr.Column(scale=2, min_width=200):
            with gr.Accordion("Methods to compare", open=False, visible=d["conditional"],
                              elem_id="sample-compare-box") as compare_box:
                methods = gr.CheckboxGroup(list(METHODS), value=list(METHODS), container=False,
                                           label="the same class and noise under each method", elem_id="sample-methods")
    with gr.Row(equal_height=True):
        condition = gr.Dropdown([CLASS, IMAGES, MIXTURE_MODE], value=CLASS, label="Condition on", scale=1,
                                min_width=200, elem_id="sample-condition")
        cls = gr.Dropdown(w.class_choices, value=d["classes"][0], label="Class", scale=1, min_width=140,
                          elem_id="sample-class")
        images = gr.File(file_count="multiple", label="Conditioning images (one or more)", height=110, scale=3,
                         min_width=240, visible=False, elem_id="sample-upload")
        n = gr.Slider(1, 64, value=16, step=1, label="Samples", scale=1, min_width=170, elem_id="sample-n")
        seed = gr.Number(0, precision=0, minimum=0, label="Seed", scale=1, min_width=90, elem_id="sample-seed")
        with gr.Column(scale=1, min_width=110):
            run_button = gr.Button("Sample", variant="primary", elem_id="sample-run")
            with gr.Row():
                # one line each: the row is no taller than with Stop alone
                stop = gr.Button("Stop", variant="stop", size="sm", scale=2, min_width=40, elem_id="sample-stop")
                compare_run = gr.Button("Compare methods", size="sm", scale=3, min_width=60, visible=d["conditional"],
                                        elem_id="sample-compare")
    upload_msg = gr.Markdown(elem_id="sample-upload-msg", visible=False)
    status = gr.HTML(label="status", elem_id="sample-status")
    with gr.Row() as pictures:
        y = gr.Image(label="y_t (at the end: the path of 4 samples)",
                     height=SAMPLE_HEIGHT, scale=5, elem_id="sample-y", **IMAGE_KW)
        f = gr.Image(label="f(y_t), the estimate (at the end: the samples)",
                     height=SAMPLE_HEIGHT, scale=5, elem_id="sample-f", **IMAGE_KW)
        # 3 columns of real crops need less width than 4 of samples: both at the same scale
        real = gr.Image(label="real images to compare (or yours)", height=SAMPLE_HEIGHT, scale=4,
                        elem_id="sample-real", **IMAGE_KW)
    with gr.Column(visible=False) as compared:
        # one grid per method side by side, captioned with its cost: every one in view at 1280x800
        compare_gallery = gr.Gallery(label="the same class and noise under each method", columns=len(METHODS),
                                     height=SAMPLE_HEIGHT, format="png", allow_preview=False, object_fit="contain",
                                     elem_classes=["pixelated", "captioned"], elem_id="sample-compared")
    compare_table = gr.JSON(label="per method", **HIDDEN)
    grid = gr.Image(label="final samples", elem_id="sample-grid", **HIDDEN, **IMAGE_KW)
    files = gr.File(label="Downloads: PNG grid, trajectory GIF, .npy array, JSON with the command",
                    file_count="multiple", interactive=False, elem_id="sample-files")
    tab = SampleTab(condition, cls, images, upload_msg, status, y, f, real, grid, files, compare_box, compare_run,
                    pictures, compared, compare_gallery)
    prev_files = gr.State([])
    sampling_view = (gr.update(visible=True), gr.update(visible=False))        # pictures, compared

    def condition_shown(c):
        """The upload widget and its message for uploads (the pictures shortened by the message's
        height, so the whole grid stays in view at 1280x800), the class otherwise; the last run's
        results no longer answer the controls, so they go."""
        height = SAMPLE_HEIGHT - UPLOAD_MSG_HEIGHT if c == IMAGES else SAMPLE_HEIGHT
        pictures = [gr.update(value=None, height=height) for _ in range(3)]      # one update per component
        return (gr.update(visible=c == IMAGES), gr.update(visible=c == IMAGES), gr.update(visible=c == CLASS),
                *pictures, None, None, "", None, *sampling_view)

    condition.input(condition_shown, condition, [images, upload_msg, cls, y, f, real, grid, files, status,
                                                 compare_gallery, tab.pictures, tab.compared],
                    api_visibility="private", queue=False)

    def new_uploads(now, before):
        """A second upload replaces the first instead of adding to it."""
        now, old = file_list(now), set(before or [])
        fresh = [p for p in now if p not in old] or now
        return (fresh if fresh != now else gr.skip()), fresh

    images.upload(new_uploads, [images, prev_files], [images, prev_files], api_visibility="private", queue=False)
    images.clear(lambda: [], None, prev_files, api_visibility="private", queue=False)

    def preview(files_now, key):
        """New files: the last run's results and status go (they were drawn from other images), and
        the message says what the model makes of the new ones, or which were refused."""
        r = w.views(key).preview_uploads(files_now)
        return r.picture, r.message, None, None, None, None, ""

    images.change(preview, [images, w.pick], [real, upload_msg, y, f, grid, files, status],
                  api_visibility="private", **w.light)
    inputs = [condition, cls, images, n, seed, beta, h0, guidance, eps, w.pick]
    outputs = [y, f, status, grid, files, real]
    gr.Button("sample", **HIDDEN).click(w.api("sample"), inputs, outputs, api_name="sample", **w.heavy)
    api_sample = w.api("sample")

    # Pages whose Stop was pressed: their run yields no further frame, so that a frame already
    # made cannot arrive after "stopped" when the server is busy.
    stopped_pages: set[str] = set()
    cleared = (None, None)

    def sample_page(condition, class_name, files_now, n, seed, beta, h0, guidance, eps, key, request: gr.Request):
        """The page's run: a mistake clears the view and is said in the status line, once: refused
        uploads are named in the message above, so the status only says the run did not start."""
        page = request.session_hash if request is not None else None
        stopped_pages.discard(page)
        if condition == IMAGES and file_list(files_now):
            try:
                w.views(key).read_uploads(files_now)
            except EngineError:
                yield SampleUpdate(*cleared, error_status("not run: remove the refused files named above and "
                                                          "upload images the model can read"), None, None,
                                   None).outputs()
                return
        try:
            for frame in api_sample(condition, class_name, files_now, n, seed, beta, h0, guidance, eps, key):
                if page in stopped_pages:
                    return
                yield frame
        except gr.Error as e:
            yield SampleUpdate(*cleared, error_status(e.message), None, None, None).outputs()

    # the status leaves the last run's "done" at once, so that Stop pressed while this run still
    # waits in the queue says "stopped" too
    run = run_button.click(lambda: (status_html("starting: the run begins when the engine is free", kind="queued"),
                                    *sampling_view),
                           None, [status, pictures, compared], api_visibility="private", queue=False).then(
        sample_page, inputs, outputs, api_visibility="private", show_progress="minimal", **w.heavy)

    # the comparison of methods: the same class and seed under feature guidance, the conditional
    # network and classifier-free guidance, in place of a run's pictures
    compare_in = [condition, cls, methods, n, seed, beta, h0, guidance, eps, w.pick]
    gr.Button("compare", **HIDDEN).click(w.api("compare_methods"), compare_in, [compare_gallery, status, compare_table],
                                         api_name="compare_methods", **w.heavy)
    api_compare = w.api("compare_methods")

    def compare_page(condition, class_name, chosen, n, seed, beta, h0, guidance, eps, key, request: gr.Request):
        """The page's comparison: at most COMPARE_MAX samples per method (the first of the seed's), one
        column per method asked; a mistake clears the view and is said in the status line."""
        page = request.session_hash if request is not None else None
        stopped_pages.discard(page)
        try:
            n = min(whole(n, "number of samples"), COMPARE_MAX)
        except EngineError:
            pass                               # the endpoint refuses it with its message
        columns = max(1, len(set(chosen or [])))
        try:
            for gallery, words, table in api_compare(condition, class_name, chosen, n, seed, beta, h0, guidance, eps,
                                                     key):
                if page in stopped_pages:
                    return
                yield gr.Gallery(value=gallery, columns=columns), words, table
        except gr.Error as e:
            yield None, error_status(e.message), None

    comparing = compare_run.click(
        lambda: (status_html("starting: the comparison begins when the engine is free", kind="queued"),
                 None, gr.update(visible=False), gr.update(visible=True)),
        None, [status, compare_gallery, pictures, compared], api_visibility="private", queue=False).then(
        compare_page, compare_in, [compare_gallery, status, compare_table], api_visibility="private",
        show_progress="minimal", **w.heavy)

    def stopped(now, request: gr.Request):
        if request is not None:
            stopped_pages.add(request.session_hash)
        if now and ("run-status done" in now or "run-status error" in now):
            return gr.skip()
        time.sleep(2 * FRAME_SECONDS + 0.2)     # a frame already on its way arrives first
        return status_html("<b>stopped</b>: the images shown are where the run was when you stopped it, not "
                           "finished samples; press Sample to run again", kind="stopped")

    stop.click(stopped, status, status, cancels=[run, comparing], api_visibility="private", queue=False)
    return tab
