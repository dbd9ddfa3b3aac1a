"""What every tab's layout shares: the wiring of events to the picked model's views, the queue
groups, the error line of a view, the one-line explanation folded over the longer one."""
from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass

import gradio as gr

from engine.atlas import ALL, ATLAS_SIGMAS

from ..common import status_html
from ..context import Context, Registry
from ..errors import user_errors

ENGINE = "engine"
LIGHT = "light"
IMAGE_KW = dict(format="png", interactive=False, elem_classes=["pixelated"], buttons=["download", "fullscreen"])
HIDDEN = dict(visible=False)


def about(short: str, more: str) -> None:
    """The view's one-line explanation; the longer text folded under it."""
    with gr.Accordion(short, open=False, elem_classes=["about"]):
        gr.Markdown(more, elem_classes=["explain"])


def error_line(message: str) -> str:
    return f"**Error:** {message}"


def error_status(message: str) -> str:
    return status_html(f"<b>Error:</b> {message}", kind="error")


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
    if ctx.ground_truth_path is not None:           # a set with a held-out class: the pair either side of it
        from engine.ground_truth import PAIR
        if all(c in classes for c in PAIR):
            pair = list(PAIR)
    targets = list(m.targets) if m is not None else classes[:3]
    return {"classes": classes, "layers": layers, "sigmas": sigmas, "layer": "mid" if "mid" in layers else layers[0],
            "sigma": sigmas[0], "pair": pair, "targets": targets, "measured": m is not None,
            "conditional": ctx.conditional is not None, "truth": ctx.ground_truth_path is not None}


def bind(registry: Registry, name: str, page: bool = False, n_out: int = 0, error_as=None):
    """The endpoint `name` (app.views.ENDPOINTS) of the model named by a last `checkpoint` argument
    (the picker's value), returning its result's outputs in the endpoint's order.

    page=True: the page's version: the result's page-only fields too, and a user's mistake clears the
    view's `n_out` outputs and comes back as error_as(message) in one more output, instead of an error."""
    from ..views import ENDPOINTS
    method = ENDPOINTS[name]
    sig = inspect.signature(method)
    params = list(sig.parameters.values())[1:]
    params.append(inspect.Parameter("checkpoint", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=registry.default))
    new_sig = sig.replace(parameters=params, return_annotation=inspect.Signature.empty)

    def call(args, kwargs):
        b = new_sig.bind(*args, **kwargs)
        key = b.arguments.pop("checkpoint", None)
        return getattr(user_errors(registry.views)(key), name)(**b.arguments)

    if inspect.isgeneratorfunction(inspect.unwrap(method)):
        def wrapper(*args, **kwargs):
            try:
                for out in call(args, kwargs):
                    yield (*out.outputs(page), "") if page else out.outputs()
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
            return (*out.outputs(page), "") if page else out.outputs()
    functools.update_wrapper(wrapper, method)
    del wrapper.__wrapped__
    wrapper.__signature__ = new_sig
    return wrapper


@dataclass
class Wiring:
    """What a tab needs to build and wire itself: the models, the picker, the queue groups and the
    controls' starting values."""
    registry: Registry
    pick: gr.Dropdown
    engine_concurrency: int
    d: dict

    @property
    def heavy(self) -> dict:
        """Engine work (sampling, denoising, analyses): one group of `engine_concurrency` jobs."""
        return dict(concurrency_id=ENGINE, concurrency_limit=self.engine_concurrency)

    @property
    def light(self) -> dict:
        """Cheap page events: their own group, so browsing stays quick while a batch samples."""
        return dict(concurrency_id=LIGHT, concurrency_limit=4)

    def api(self, name: str):
        return bind(self.registry, name)

    def page(self, name: str, n_out: int, error_as=error_line):
        return bind(self.registry, name, page=True, n_out=n_out, error_as=error_as)

    def views(self, key):
        return self.registry.views(key)

    @property
    def class_choices(self) -> list[str]:
        """The choices of a class control as built: every model's classes (Registry.all_classes), so
        that an API call may name a class of any model of the picker; a page shows its model's."""
        return self.d["all_classes"]
