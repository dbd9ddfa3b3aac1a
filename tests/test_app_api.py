"""The app's programmatic API, through gradio_client, against a live server on tiny models.

Every named endpoint is called; sampling results are checked number for number against the
engine (the app adds nothing to the sampler), including five concurrent clients, and the
JSON's command line is run to show it reproduces the download.
"""
from __future__ import annotations

import json
import re
import shlex
import ssl
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from app_fixtures import bad_uploads
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from engine.data import load_image
from engine.placement import crops_at_scale
from engine.config import SamplerSettings
from engine.sampler import EPS_SCALE, GUIDANCE, ClassTarget, ImageTarget, Interpolation, run

ENDPOINTS = ["/sample", "/compare_methods", "/interpolate", "/interpolate_strip", "/trajectories", "/denoise",
             "/embedding", "/distances", "/pair_samples"]


# gradio_client hands `ssl_verify` to httpx, which, given True, builds a new TLS context (reading the
# whole CA bundle) for every file a result downloads: most of this file's time went there. One
# default context, built once, checks certificates alike (the server here is plain http anyway).
TLS = ssl.create_default_context()


def local_client(url: str) -> Client:
    return Client(url, verbose=False, ssl_verify=TLS)


@pytest.fixture(scope="module")
def client(app_server):
    return local_client(app_server.url)


def by_name(files: list[str]) -> dict[str, str]:
    return {f.rsplit(".", 1)[-1] if not f.endswith("_trajectory.gif") else "gif": f for f in files}


def engine_samples(ckpt, target, n, seed, beta=0.25, h0=0.01, guidance=GUIDANCE, eps_scale=EPS_SCALE) -> np.ndarray:
    x, _ = run(ckpt, target, n=n, seed=seed,
               settings=SamplerSettings(beta=beta, h0=h0, guidance=guidance, eps_scale=eps_scale))
    return x.cpu().numpy()


def test_every_endpoint_is_named_and_documented(client):
    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(ENDPOINTS) <= set(info)
    params = {p["parameter_name"] for p in info["/sample"]["parameters"]}
    assert {"condition", "class_name", "images", "n", "seed", "beta", "h0", "guidance", "eps_scale",
            "checkpoint"} <= params
    for name in ENDPOINTS:                          # every view can be asked of any model of the picker
        assert info[name]["parameters"][-1]["parameter_name"] == "checkpoint", name


def test_sample_streams_then_returns_the_engine_samples_and_a_reproducible_command(client, app_server, tmp_path):
    job = client.submit("class", app_server.fg.classes[2], None, 4, 7, 0.3, 0.02, 0.5, 1.1, api_name="/sample")
    updates = [out for out in job]
    final = job.result()
    assert len(updates) >= 2                       # at least one live frame before the result
    assert updates[0][3] is None and updates[0][0]   # first frame: y_t only, no final grid yet
    assert "done" in final[2]
    assert updates[0][5]                           # real crops of the class, to compare, with the first frame
    assert re.search(r"reads <b>\d of 4</b> as " + app_server.fg.classes[2], final[2])
    files = by_name(final[4])
    assert set(files) == {"png", "gif", "npy", "json"}
    got = np.load(files["npy"])
    want = engine_samples(app_server.fg, ClassTarget(app_server.fg.classes[2]), 4, 7, beta=0.3, h0=0.02,
                          guidance=0.5, eps_scale=1.1)
    np.testing.assert_allclose(got, want, atol=1e-6)
    record = json.loads(open(files["json"]).read())
    assert record["seed"] == 7 and record["n"] == 4 and record["settings"]["beta"] == 0.3
    # no path of the machine: the model's last two parts, as the page shows a path outside the project
    assert record["checkpoint"] == "/".join(Path(app_server.fg.path).parts[-2:])
    assert f"{record['steps']} steps" in final[2]            # the status and the download agree
    assert record["settings"]["guidance"] == 0.5 and record["settings"]["eps_scale"] == 1.1
    # the command in the JSON draws the same samples
    from engine.cli import main
    args = shlex.split(record["command"])[3:]
    args[args.index("--out") + 1] = str(tmp_path / "again.npy")
    assert main(args) == 0
    np.testing.assert_allclose(np.load(tmp_path / "again.npy"), got, atol=1e-6)


def test_sample_conditioned_on_uploaded_images(client, app_server, tmp_path):
    folder = tmp_path / "up"
    folder.mkdir()
    files = bad_uploads(folder)
    paths = [files["rgba.png"][0], files["sixteen_bit.png"][0]]
    out = client.predict("uploaded images", None, [handle_file(p) for p in paths], 3, 2, 0.25, 0.01,
                         api_name="/sample")
    got = np.load(by_name(out[4])["npy"])
    c, _, size = app_server.fg.shape
    images = torch.from_numpy(np.concatenate([crops_at_scale(load_image(p, c), size).images for p in paths]))
    np.testing.assert_allclose(got, engine_samples(app_server.fg, ImageTarget(images, seed=2), 3, 2), atol=1e-6)
    record = json.loads(open(by_name(out[4])["json"]).read())
    assert record["images"] == ["rgba.png", "sixteen_bit.png"] and "--image" in record["command"]


def test_bad_uploads_are_handled_or_refused_clearly_and_the_server_keeps_serving(client, tmp_path):
    for name, (path, ok) in bad_uploads(tmp_path).items():
        if name == "huge.png":                 # 10000 x 10000: read by the same code in test_app_offline
            continue
        if ok:
            out = client.predict("uploaded images", None, [handle_file(path)], 1, 0, 0.5, 0.05, api_name="/sample")
            assert np.load(by_name(out[4])["npy"]).shape[0] == 1, name
        else:
            with pytest.raises(AppError) as e:
                client.predict("uploaded images", None, [handle_file(path)], 1, 0, 0.5, 0.05, api_name="/sample")
            msg = str(e.value)
            assert name in msg and ("not a readable image" in msg or "pixels" in msg), msg
            assert "Traceback" not in msg
    assert client.predict(api_name="/embedding")[0]["type"] == "plotly"


def test_user_mistakes_come_back_as_one_line_messages(client):
    with pytest.raises(AppError, match="dragons is not in the list of choices"):
        client.predict("class", "dragons", None, 2, 0, 0.25, 0.01, api_name="/sample")
    with pytest.raises(AppError, match="upload one or more conditioning images"):
        client.predict("uploaded images", None, None, 2, 0, 0.25, 0.01, api_name="/sample")
    with pytest.raises(AppError, match="less than minimum value 0.01"):
        client.predict("class", "brick", None, 2, 0, 0.0, 0.01, api_name="/sample")
    with pytest.raises(AppError, match="two or more different target classes"):
        client.predict(["brick"], 0, "mid", 0.05, api_name="/trajectories")


def test_five_concurrent_sample_calls_all_finish_each_with_its_own_result(app_server):
    classes = app_server.fg.classes
    jobs = []
    clients = [local_client(app_server.url) for _ in range(5)]
    for k, c in enumerate(clients):
        jobs.append(c.submit("class", classes[k % len(classes)], None, 16, 100 + k, 0.25, 0.01, api_name="/sample"))
    results = [j.result(timeout=900) for j in jobs]          # a guard against a hang, not a speed bar
    for k, out in enumerate(results):
        got = np.load(by_name(out[4])["npy"])
        want = engine_samples(app_server.fg, ClassTarget(classes[k % len(classes)]), 16, 100 + k)
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_interpolate_blend_and_switch(client, app_server):
    a, b = app_server.fg.classes[:2]
    grid, fig, summary = client.predict(a, b, "blend", 0.25, 0.3, 4, 1, api_name="/interpolate")
    assert grid.endswith(".png") and fig["type"] == "plotly"
    assert "alpha = 0.25" in summary and "Mean probability" in summary
    bars = json.loads(fig["plot"])["data"][0]
    assert len(bars["x"]) == len(app_server.fg.classes)
    _, _, summary = client.predict(a, b, "switch", 0.5, 0.2, 2, 1, api_name="/interpolate")
    assert "sigma* = 0.2" in summary


def test_interpolate_strip_has_one_column_per_alpha(client, app_server):
    from engine.analysis import ALPHAS
    a, b = app_server.fg.classes[2:4]
    strip, fig, table = client.predict(a, b, 1, 0, api_name="/interpolate_strip")
    assert len(table) == len(ALPHAS) and all(set(v) == {a, b} for v in table.values())
    assert all(0 <= p <= 1 for v in table.values() for p in v.values())


def test_trajectories_share_their_start_and_mark_the_bifurcation(client, app_server):
    targets = app_server.fg.classes[:3]
    paths, dist, picture, summary = client.predict(targets, 4, "mid", 0.05, api_name="/trajectories")
    assert summary["targets"] == targets and summary["steps"] > 5
    assert len(summary["bifurcation_sigma"]) == 3                   # three pairs
    data = json.loads(dist["plot"])["data"]
    curves = [d for d in data if d.get("mode") == "lines"]
    assert len(curves) == 3
    names = [d.get("name", "") for d in json.loads(paths["plot"])["data"]]
    assert sum(n.startswith("path: ") for n in names) == 3


def test_denoise_test_image_and_upload(client, app_server, tmp_path):
    outputs, fig, summary = client.predict(3, None, 0.4, 0, api_name="/denoise")
    k = len(app_server.fg.classes)
    assert len(outputs) == 3 + k                                   # clean, noisy, mixture, one per class
    captions = [o["caption"] for o in outputs]
    assert captions[0].startswith("clean") and all(" dB" in c for c in captions[1:])
    bars = json.loads(fig["plot"])["data"][0]
    assert len(bars["y"]) == k                                     # one bar per conditioning class
    gains = summary["gain_over_mixture_db"]                        # the bars: PSNR over the mixture's
    assert all(abs(gains[c] - (summary["psnr_by_class"][c] - summary["psnr_mixture"])) < 2e-3 for c in gains)
    true = summary["true_class"]
    assert true == app_server.fg.classes[app_server.atlas.labels[3]]
    assert set(summary["psnr_by_class"]) == set(app_server.fg.classes)
    assert summary["psnr_mixture"] is not None and summary["psnr_noisy"] < max(summary["psnr_by_class"].values())
    up = bad_uploads(tmp_path)["palette.png"][0]
    _, _, summary = client.predict(0, handle_file(up), 0.4, 0, api_name="/denoise")
    assert summary["image"] == "palette.png" and summary["true_class"] is None


def test_embedding_places_an_upload_in_the_map(client, app_server, tmp_path):
    up = bad_uploads(tmp_path)["rgba.png"][0]
    fig, note = client.predict("mixture", "all", 0.2, "pca", handle_file(up), api_name="/embedding")
    data = json.loads(fig["plot"])["data"]
    assert any(d.get("name") == "your image" for d in data)
    assert "map: **PCA**" in note and "rgba.png" in note
    assert re.search(r"nearest centroid \w+, at [0-9.]+ times \w+'s? own spread", note)   # how far from the nearest class
    # the tiny server fits no UMAP (warm=False): the note says the PCA stands in for it
    fig, note = client.predict("feature_guided", "mid", 0.05, "umap", None, api_name="/embedding")
    assert "map: **PCA**" in note and "still being fitted in the background; PCA is shown meanwhile" in note
    assert "(PCA)" in json.loads(fig["plot"])["layout"]["title"]["text"]


def test_distances_and_pair_samples(client, app_server):
    h1, h2, scatter, summary = client.predict("mid", 0.05, api_name="/distances")
    k = len(app_server.fg.classes)
    assert summary["pairs"] == k * (k - 1) // 2
    assert -1 <= summary["pearson"] <= 1
    assert abs(sum(row["share_of_D"] for row in summary["by_sigma"]) - 1) < 0.01
    z = json.loads(h2["plot"])["data"][0]["z"]          # plotly sends arrays typed: {dtype, bdata, shape}
    assert (z["shape"].replace(" ", "") == f"{k},{k}") if isinstance(z, dict) else len(z) == k
    a, b = client.predict(app_server.fg.classes[0], app_server.fg.classes[1], 2, 0, api_name="/pair_samples")
    assert a.endswith(".png") and b.endswith(".png")


@pytest.fixture
def keys_asked(app_server, monkeypatch):
    """The picker entries the server's endpoints were asked for, in order."""
    registry = app_server.demo.registry
    asked, views = [], registry.views

    def spy(key=None):
        asked.append(key)
        return views(key)
    monkeypatch.setattr(registry, "views", spy)
    return asked


def test_every_endpoint_answers_from_the_model_named_by_checkpoint(client, app_server, keys_asked, tmp_path):
    """The second entry of the picker (the tiny model without a mixture) through every endpoint: each
    answer names that model or shows what only it lacks (a mixture model)."""
    from app_fixtures import SECOND
    classes = app_server.fg.classes
    a, b = classes[:2]
    fig, note = client.predict("feature_guided", "mid", 0.05, "pca", None, checkpoint=SECOND, api_name="/embedding")
    assert json.loads(fig["plot"])["layout"]["title"]["text"].startswith(SECOND + ":")
    final = client.predict("class", a, None, 2, 3, 0.25, 0.01, checkpoint=SECOND, api_name="/sample")
    assert f"model {SECOND}" in final[2]
    assert json.loads(open(by_name(final[4])["json"]).read())["model"] == SECOND
    with pytest.raises(AppError, match="no mixture model is loaded"):         # the first entry has one
        client.predict("mixture model (unconditional)", None, None, 2, 0, 0.25, 0.01, checkpoint=SECOND,
                       api_name="/sample")
    _, _, summary = client.predict(a, b, "blend", 0.3, 0.3, 2, 0, checkpoint=SECOND, api_name="/interpolate")
    assert summary.endswith(".") and f"model {SECOND}." in summary
    _, strip_fig, _ = client.predict(a, b, 1, 0, checkpoint=SECOND, api_name="/interpolate_strip")
    assert SECOND in json.loads(strip_fig["plot"])["layout"]["title"]["text"]
    *_, summary = client.predict(classes[:2], 0, "mid", 0.05, checkpoint=SECOND, api_name="/trajectories")
    assert summary["model"] == SECOND
    _, _, summary = client.predict(0, handle_file(bad_uploads(tmp_path)["rgba.png"][0]), 0.5, 0, checkpoint=SECOND,
                                   api_name="/denoise")
    assert summary["model"] == SECOND and summary["psnr_mixture"] is None
    grid_a, grid_b = client.predict(a, b, 2, 0, checkpoint=SECOND, api_name="/pair_samples")
    assert grid_a.endswith(".png") and grid_b.endswith(".png")
    # the distances need the second model's atlas and measures, made in the background once it is first
    # used: wait for them (a guard against a hang, not a speed bar)
    deadline = time.monotonic() + 900
    while True:
        try:
            *_, summary = client.predict("mid", 0.05, checkpoint=SECOND, api_name="/distances")
            break
        except AppError as e:
            if "Preparing the atlas" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(2)
    assert summary["model"] == SECOND
    assert set(keys_asked) == {SECOND}, keys_asked        # every call went to the second entry
    assert len(keys_asked) >= 9


# ----------------------------------------------------------------------------- methods and model sets

def same_picture(path, want: np.ndarray) -> None:
    """A picture the server sent is the one drawn from these samples (to a level of rounding: the
    server's and this process's threads may sum in another order)."""
    from PIL import Image
    got = np.asarray(Image.open(path).convert("L")).astype(int)
    assert got.shape == want.shape[:2] and np.abs(got - want.reshape(got.shape)).max() <= 1


def test_compare_methods_draws_the_same_class_and_seed_under_each_method(client, app_server):
    """Each method's grid is the engine's samples of that method for the class and seed; the
    numbers are the engine's network evaluations (classifier-free guidance: two a step)."""
    from app import imaging
    name = app_server.fg.classes[1]
    methods = ["feature guidance", "conditional network (w = 0)", "CFG w = 2"]
    gallery, status, table = client.predict("class", name, methods, 3, 4, 0.5, 0.05, api_name="/compare_methods")
    assert [item["caption"].split(":")[0] for item in gallery] == methods
    assert "done" in status and "3 methods" in status and "seed 4" in status
    assert all("network evaluations per sample" in item["caption"] for item in gallery)
    for (ckpt, cfg), item, method in zip([(app_server.fg, 0.0), (app_server.conditional, 0.0),
                                          (app_server.conditional, 2.0)], gallery, methods):
        x, (last,) = run(ckpt, ClassTarget(name), n=3, seed=4, settings=SamplerSettings(beta=0.5, h0=0.05, cfg=cfg))
        same_picture(item["image"], imaging.grid(x, ncol=2, scale=3))
        assert table[method]["nfe_per_sample"] == last.nfe and table[method]["cfg"] == cfg
    assert table["CFG w = 2"]["nfe_per_sample"] > table["conditional network (w = 0)"]["nfe_per_sample"]


def test_comparing_methods_refuses_clearly_and_the_server_keeps_serving(client, app_server):
    from app_fixtures import SECOND
    name = app_server.fg.classes[0]
    with pytest.raises(AppError, match="needs a class-conditional model, and the model set .* has none"):
        client.predict("class", name, ["feature guidance"], 2, 0, 0.5, 0.05, checkpoint=SECOND,
                       api_name="/compare_methods")
    with pytest.raises(AppError, match="cannot be conditioned on uploaded images"):
        client.predict("uploaded images", name, ["feature guidance"], 2, 0, 0.5, 0.05, api_name="/compare_methods")
    with pytest.raises(AppError, match="choose at least one method"):
        client.predict("class", name, [], 2, 0, 0.5, 0.05, api_name="/compare_methods")
    with pytest.raises(AppError, match="between 1 and 8"):
        client.predict("class", name, ["feature guidance"], 9, 0, 0.5, 0.05, api_name="/compare_methods")
    with pytest.raises(AppError, match="not in the list of choices"):
        client.predict("class", name, ["CFG w = 9"], 2, 0, 0.5, 0.05, api_name="/compare_methods")
    assert client.predict(api_name="/embedding")[0]["type"] == "plotly"


def test_interpolate_blends_class_embeddings_of_the_conditional_network(client, app_server):
    from app import imaging
    from app.common import GRID_PX
    from app_fixtures import SECOND
    a, b = app_server.fg.classes[:2]
    grid, _, summary = client.predict(a, b, "blend", 0.4, 0.3, 2, 3, "conditional", api_name="/interpolate")
    assert "class embeddings (conditional network), alpha = 0.4" in summary
    x, _ = run(app_server.conditional, Interpolation(a, b, 0.4), n=2, seed=3)
    same_picture(grid, imaging.grid(x, ncol=4, px=GRID_PX))
    _, _, summary = client.predict(a, b, "switch", 0.5, 0.2, 2, 3, "conditional", api_name="/interpolate")
    assert "class embeddings" in summary and "sigma* = 0.2" in summary
    _, fig, table = client.predict(a, b, 1, 0, "conditional", api_name="/interpolate_strip")
    assert "class embeddings" in json.loads(fig["plot"])["layout"]["title"]["text"] and len(table) >= 3
    with pytest.raises(AppError, match="needs a class-conditional model"):
        client.predict(a, b, "blend", 0.5, 0.3, 2, 0, "conditional", checkpoint=SECOND, api_name="/interpolate")


def test_the_ovals_set_reads_its_samples_against_the_held_out_class(client, app_server):
    """The ovals set: the pair either side of the held-out class, the samples' aspect ratio in the
    summary, and in the page the ground truth with the alpha shown and these samples on it (the
    reversed pair read at 1 - alpha, another pair not on it, a missing file said how to make)."""
    from app_fixtures import OVALS
    from engine.data import aspect_ratio
    from engine.ground_truth import PAIR, has_oval
    a, b = PAIR
    _, _, summary = client.predict(a, b, "blend", 0.25, 0.3, 4, 1, "conditional", checkpoint=OVALS,
                                   api_name="/interpolate")
    assert re.search(r"(Median aspect ratio [0-9.]+ \(real ratio 1: [0-9.]+\)|No oval in these samples)", summary)
    views = app_server.demo.registry.views(OVALS)
    x = run(views.ctx.conditional, Interpolation(a, b, 0.25), n=4, seed=1)[0].cpu().numpy()
    out = views.interpolate(a, b, "blend", 0.25, 0.3, 4, 1, "conditional", progress=None)
    live = [t for t in out.truth.data if t.name == "these samples"]
    keep = has_oval(x)                                # read as the ground truth is: the samples holding an oval
    assert len(live) == 1 and list(live[0].x) == [0.25] * int(keep.sum())
    np.testing.assert_allclose(live[0].y, aspect_ratio(x[keep]), rtol=1e-6)
    # a blank sample's noise would read as round: it is counted apart, never read as the answer
    blank = np.full((2, *x.shape[1:]), 0.3, np.float32)
    empty = views.truth(a, b, 0.5, "feature_guided", blank)
    assert empty.reading == "No oval in these samples." and "(2 blank)" in empty.figure.layout.title.text
    assert len([t for t in empty.figure.data if t.name == "these samples"][0].y) == 0
    assert out.truth_note == "" and {"feature guidance", "conditional network"} <= {t.name for t in out.truth.data}
    oval = np.zeros((1, *x.shape[1:]), np.float32)
    oval[..., 6:10, 3:13] = 1.0                        # a wide bright bar: width / height 2.5
    reversed_ = views.truth(b, a, 0.25, "feature_guided", oval)
    assert [t.x[0] for t in reversed_.figure.data if t.name == "these samples"] == [0.75]
    other = views.truth(a, "ratio 5", 0.5)
    assert other.figure is not None and "choose that pair" in other.note
    path = views.ctx.ground_truth_path
    try:
        views.ctx.ground_truth_path = path.with_name("missing.json")
        missing = views.truth(a, b, 0.5)                # said where the plot goes
        said = missing.figure.layout.annotations[0].text.replace("<br>", " ").replace("\u00a0", " ")
        assert "run python -m engine report" in said
    finally:
        views.ctx.ground_truth_path = path
    # a set without a held-out class has no ground truth
    assert app_server.demo.registry.views().truth(*app_server.fg.classes[:2], 0.5).figure is None
