"""One app server for the app tests (API and browser), on tiny models trained in seconds.

A pytest plugin of the whole run (`pytest_plugins` in tests/conftest.py): its fixtures are found by
name in every test module and, session-scoped, set up once however many modules use them. Modules
import from here only plain names (`bad_uploads`, `FIRST`, `SECOND`, `OVALS`), never the fixtures.
"""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest
from conftest import huge_png_path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    demo: object
    fg: object
    mixture: object
    atlas: object
    classifier: object
    conditional: object


@pytest.fixture(scope="session")
def tiny_atlas(tiny_fg, tiny_mixture):
    from engine.atlas import build_atlas
    return build_atlas({"feature_guided": tiny_fg, "mixture": tiny_mixture}, per_class=8, umap=False,
                       progress=False)


@pytest.fixture(scope="session")
def tiny_classifier(tiny_fg):
    from engine.classifier import train_classifier
    cfg = tiny_fg.train_config
    key = {"dataset": cfg.dataset, "size": cfg.model.size, "channels": cfg.model.channels,
           "n_per_class": cfg.n_per_class, "seed": cfg.seed}
    return train_classifier(key, steps=30, progress=False)


FIRST, SECOND, OVALS = "tiny", "tiny, without a mixture", "ovals (ratio 1 held out)"


def tiny_classifier_of(dataset: str, like):
    """A classifier of `dataset` at the tiny models' image size, trained in a second."""
    from engine.classifier import train_classifier
    cfg = like.train_config
    key = {"dataset": dataset, "size": cfg.model.size, "channels": cfg.model.channels,
           "n_per_class": cfg.n_per_class, "seed": cfg.seed}
    return train_classifier(key, steps=30, progress=False)


@pytest.fixture(scope="session")
def tiny_conditional_dir(tmp_path_factory):
    """A tiny class-conditional model of the tiny feature-guided model's data (a short warm-up, so
    that its embeddings move in 40 steps)."""
    from conftest import tiny_config
    from engine.train import train
    out = tmp_path_factory.mktemp("tiny_cond")
    train(tiny_config("conditional", warmup=10), out, log=lambda *a: None, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_ovals(tmp_path_factory):
    """A tiny ovals set as assets/ovals holds one: feature_guided/ and conditional/ trained on
    ovals-holdout, and ground_truth.json measured on them (4 samples at 3 alphas, 20 steps)."""
    from conftest import tiny_config
    from engine.checkpoint import load_checkpoint
    from engine.config import SamplerSettings
    from engine.ground_truth import ground_truth
    from engine.train import train
    folder = tmp_path_factory.mktemp("ovals")
    models = {}
    for kind in ("feature_guided", "conditional"):
        train(tiny_config(kind, dataset="ovals-holdout", warmup=10), folder / kind, log=lambda *a: None,
              progress=False)
        models[kind] = load_checkpoint(folder / kind, device="cpu")
    five = tiny_classifier_of("ovals", models["feature_guided"])
    ground_truth(models, n=4, alphas=(0, 0.5, 1), settings=SamplerSettings(max_steps=20),
                 classifier=five).save(folder / "ground_truth.json")
    return folder


@pytest.fixture(scope="session")
def app_server(tiny_fg, tiny_mixture, tiny_atlas, tiny_classifier, tiny_fg_dir, tiny_conditional_dir, tiny_ovals):
    """The app on three entries of the model picker: the tiny pair with its conditional network
    (atlas given); the tiny feature-guided model alone, loaded when picked (its atlas and measures
    then made in the background); and a tiny ovals set (a feature-guided and a conditional model
    without the ratio-1 class, and their ground truth), loaded when picked."""
    from app import create_app, launch_kwargs
    from app.context import FG, MIXTURE, AtlasHolder, ClassifierHolder, Context, ModelSource, Registry
    from engine.checkpoint import load_checkpoint
    conditional = load_checkpoint(tiny_conditional_dir, device="cpu")
    first = Context(tiny_fg, tiny_mixture, AtlasHolder({FG: tiny_fg, MIXTURE: tiny_mixture}, tiny_atlas, warm=False),
                    ClassifierHolder(tiny_fg, tiny_classifier), label=FIRST, conditional=conditional)
    ovals_fg = tiny_ovals / "feature_guided"
    ovals = ModelSource(ovals_fg, None, None, label=OVALS, conditional=tiny_ovals / "conditional",
                        ground_truth=tiny_ovals / "ground_truth.json",
                        classifier=tiny_classifier_of("ovals-holdout", load_checkpoint(ovals_fg, device="cpu")))
    registry = Registry([ModelSource(tiny_fg_dir, None, None, label=SECOND, classifier=tiny_classifier), ovals],
                        loaded={FIRST: first}, warm_umap=False, per_class=8)
    demo = create_app(registry, engine_concurrency=1, max_queue=32)
    port = free_port()
    demo.launch(prevent_thread_lock=True, **launch_kwargs("127.0.0.1", port, quiet=True))
    yield Server(f"http://127.0.0.1:{port}/", demo, tiny_fg, tiny_mixture, tiny_atlas, tiny_classifier, conditional)
    demo.close()


def bad_uploads(folder) -> dict[str, tuple[str, bool]]:
    """Awkward files: name -> (path, whether the app should accept it)."""
    import numpy as np
    from PIL import Image
    rng = np.random.default_rng(0)
    out = {}

    def save(name, im, ok, **kw):
        path = folder / name
        im.save(path, **kw)
        out[name] = (str(path), ok)

    noise = (rng.random((40, 40)) * 255).astype(np.uint8)
    (folder / "not_an_image.png").write_text("this is plain text, not a picture\n")
    out["not_an_image.png"] = (str(folder / "not_an_image.png"), False)
    good = folder / "good.png"
    Image.fromarray(noise).save(good)
    (folder / "corrupt.png").write_bytes(good.read_bytes()[:120])
    out["corrupt.png"] = (str(folder / "corrupt.png"), False)
    rgba = np.dstack([noise, noise, noise, (rng.random((40, 40)) * 255).astype(np.uint8)])
    save("rgba.png", Image.fromarray(rgba, "RGBA"), True)
    save("sixteen_bit.png", Image.fromarray(noise.astype(np.uint16) * 257), True)
    save("palette.png", Image.fromarray(noise).convert("P"), True)
    save("one_pixel.png", Image.new("L", (1, 1), 128), False)
    (folder / "huge.png").symlink_to(huge_png_path())       # 10000 x 10000, made once per run
    out["huge.png"] = (str(folder / "huge.png"), True)
    frames = [Image.fromarray(np.roll(noise, k, 0)).convert("P") for k in range(3)]
    path = folder / "animated.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    out["animated.gif"] = (str(path), True)
    return out
