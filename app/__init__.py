"""The exploration app over the engine: the page (page.py) assembled from one module per tab
(tabs/), the views of one model behind them (views/, one module per tab), the models and their
background work (context.py, preparation.py), pictures and files (imaging.py, runs.py), figures
(figures.py) and words (text.py). `app.py` at the repository root parses the command line,
finds the models of the picker (sources.py) and launches it.

gradio is imported only when the page is built (create_demo), so the command line can
check its models and refuse a bad one before paying for that import.
"""


def create_demo(fg, mixture=None, atlas=None, classifier=None, engine_concurrency: int = 1,
                max_queue: int = 32, start_background: bool = True, warm_umap: bool = True,
                atlas_per_class: int = 50, conditional=None, ground_truth=None):
    """A ready-to-launch gr.Blocks for checkpoints already loaded (tests pass tiny ones).

    atlas: an engine.atlas.Atlas, an app.context.AtlasHolder, or None to build one in the
    background from the checkpoints. classifier: an engine.classifier.Classifier, or None to
    load (or train and cache) it in the background. conditional: the class-conditional checkpoint of
    the same data, compared with the feature-guided one; ground_truth: a ground_truth.json of the
    set's interpolation against its held-out class (engine.ground_truth). Launch with `demo.launch(**launch_kwargs())`.
    """
    from .context import FG, MIXTURE, AtlasHolder, ClassifierHolder, Context, Registry
    checkpoints = {FG: fg, **({MIXTURE: mixture} if mixture is not None else {})}
    holder = atlas if isinstance(atlas, AtlasHolder) else \
        AtlasHolder(checkpoints, atlas, per_class=atlas_per_class, warm=warm_umap)
    ctx = Context(fg, mixture, holder, ClassifierHolder(fg, classifier), conditional=conditional,
                  ground_truth=ground_truth)
    registry = Registry(loaded={ctx.label: ctx}, warm_umap=warm_umap, per_class=atlas_per_class)
    return create_app(registry, engine_concurrency, max_queue, start_background)


def create_app(registry, engine_concurrency: int = 1, max_queue: int = 32, start_background: bool = True):
    """A ready-to-launch gr.Blocks serving the models of an app.context.Registry (the page's
    model picker); its first model is prepared in the background at once."""
    from .page import build_app
    demo = build_app(registry, engine_concurrency, max_queue)
    demo.registry = registry
    demo.ctx = registry.context()
    if start_background:               # after the page is built: its imports are done by then
        demo.ctx.start_background()
    return demo


def launch_kwargs(host: str = "127.0.0.1", port: int = 7860, **over) -> dict:
    """Arguments for demo.launch(): local only, no share link, no external fonts (page.py)."""
    from .page import launch_kwargs as kw
    return kw(host, port, **over)


__all__ = ["create_app", "create_demo", "launch_kwargs"]
