"""The app's pieces without a server: model checks, the background atlas, uploads, the run record,
the command line of app.py, and the views when no mixture model is loaded."""
from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from app_fixtures import bad_uploads

from app import imaging, runs
from app.common import CLASS, MIXTURE_MODE
from app.views import Views
from app.views.sample import FrameRecorder, real_grid
from app.context import FG, MIXTURE, AtlasHolder, ClassifierHolder, Context
from app.page import launch_kwargs
from engine.cli import build_parser
from engine.errors import EngineError
from engine.sampler import SamplerSettings

ROOT = Path(__file__).resolve().parent.parent


def test_context_wants_a_feature_guided_model_and_a_matching_mixture(tiny_fg, tiny_mixture):
    with pytest.raises(EngineError, match="mixture model; the app needs a feature-guided"):
        Context(tiny_mixture)
    with pytest.raises(EngineError, match="--mixture must be a mixture model"):
        Context(tiny_fg, tiny_fg)


def test_atlas_of_a_custom_checkpoint_is_built_in_the_background_and_saved(tiny_fg, tiny_mixture, tmp_path):
    holder = AtlasHolder({FG: tiny_fg, MIXTURE: tiny_mixture}, None, save_to=tmp_path / "atlas", per_class=3,
                         warm=False)
    assert holder.get() is None and "Preparing the atlas of this model" in holder.status()
    holder.start()
    holder.join(timeout=900)                           # a guard against a hang, not a speed bar
    assert holder.phase == "ready", holder.status()
    assert holder.built_done == holder.built_total == 2 * len(holder.get().sigmas)   # the progress the page shows
    assert holder.get().models == [FG, MIXTURE] and len(holder.get().labels) == 3 * len(tiny_fg.classes)
    assert (tmp_path / "atlas" / "atlas.json").is_file()


def test_uploads_of_every_awkward_kind_are_read_or_refused_by_name(tmp_path):
    for name, (path, ok) in bad_uploads(tmp_path).items():
        if ok:
            x, how = imaging.read_upload(path, 1, 16)
            assert "pixels" in how
            assert x.shape == (1, 16, 16) and x.dtype == np.float32 and 0 <= x.min() <= x.max() <= 1, name
        else:
            with pytest.raises(EngineError) as e:
                imaging.read_upload(path, 1, 16)
            assert name in str(e.value) and str(tmp_path) not in str(e.value)


def test_views_say_so_when_no_mixture_model_is_loaded(tiny_fg, tiny_atlas):
    views = Views(Context(tiny_fg, None, AtlasHolder({FG: tiny_fg}, tiny_atlas, warm=False)))
    with pytest.raises(gr.Error, match="no mixture model is loaded"):
        list(views.sample(MIXTURE_MODE, None, None, 2, 0))
    summary = views.denoise(0, None, 0.5, 0).summary
    assert summary["psnr_mixture"] is None and len(summary["psnr_by_class"]) == len(tiny_fg.classes)
    with pytest.raises(gr.Error, match="no 'nonexistent' model in this atlas; it has feature_guided, mixture "
                                       r"\(start the app with --mixture DIR\)"):
        views.embedding("nonexistent", "mid", 0.05, "pca")


def test_sample_view_streams_few_frames_and_ends_with_downloads(tiny_fg, tiny_atlas):
    views = Views(Context(tiny_fg, None, AtlasHolder({FG: tiny_fg}, tiny_atlas, warm=False)))
    outs = list(views.sample(CLASS, tiny_fg.classes[0], None, 2, 5))
    assert outs[0].grid is None and "step 0" in outs[0].status          # the initial noise comes first
    final = outs[-1]
    assert "done" in final.status and len(final.files) == 4
    assert final.grid.dtype == np.uint8 and final.grid.shape[0] >= 100  # upscaled for the page
    assert outs[0].real.dtype == np.uint8                               # real crops come with the first frame
    assert "classifier" in final.status                                 # its status, while none is ready


def test_sample_view_shows_real_crops_and_the_classifiers_reading_of_the_samples(tiny_fg, tiny_atlas,
                                                                                   tiny_classifier):
    import json
    ctx = Context(tiny_fg, None, AtlasHolder({FG: tiny_fg}, tiny_atlas, warm=False),
                  ClassifierHolder(tiny_fg, tiny_classifier))
    views = Views(ctx)
    name = tiny_fg.classes[1]
    outs = list(views.sample(CLASS, name, None, 3, 4))
    real = tiny_atlas.images[tiny_atlas.labels == 1]
    np.testing.assert_array_equal(outs[0].real, real_grid(real))       # the class's held-out crops
    final = outs[-1]
    files = {Path(f).suffix: f for f in final.files}
    samples = np.load(files[".npy"])
    predicted = [tiny_fg.classes[k] for k in tiny_classifier.predict(samples)]
    record = json.loads(Path(files[".json"]).read_text())
    assert record["classifier_reading"] == {c: predicted.count(c) for c in set(predicted)}
    assert f"<b>{predicted.count(name)} of 3</b> as {name}" in final.status


def test_unconditional_samples_are_compared_with_crops_of_every_class(tiny_fg, tiny_mixture, tiny_atlas,
                                                                      tiny_classifier):
    ctx = Context(tiny_fg, tiny_mixture, AtlasHolder({FG: tiny_fg}, tiny_atlas, warm=False),
                  ClassifierHolder(tiny_fg, tiny_classifier))
    outs = list(Views(ctx).sample(MIXTURE_MODE, None, None, 2, 0))
    idx = np.concatenate([np.nonzero(tiny_atlas.labels == c)[0][:1] for c in range(len(tiny_fg.classes))])
    np.testing.assert_array_equal(outs[0].real, real_grid(tiny_atlas.images[idx]))   # one of every class
    assert "reads them as" in outs[-1].status


def test_frame_recorder_keeps_evenly_spaced_steps_with_the_last():
    rec = FrameRecorder(most=10)
    for t in range(137):
        rec.add(t, None, None, 1.0, last=t == 136)
    ts = [k[0] for k in rec.kept]
    assert len(ts) <= 11 and ts[0] == 0 and ts[-1] == 136
    gaps = np.diff(ts[:-1])
    assert len(set(gaps.tolist())) == 1


@pytest.mark.parametrize("target", [{"mode": "class", "class": "brick"},
                                    {"mode": "interpolate", "a": "brick", "b": "grass", "alpha": 0.3},
                                    {"mode": "switch", "a": "brick", "b": "grass", "sigma_star": 0.2},
                                    {"mode": "unconditional"}])
def test_recorded_command_is_valid_for_the_engine_command_line(target):
    cmd = runs.sample_command("/x/model.pt", target, 4, 9, SamplerSettings(beta=0.5, guidance=0.35, eps_scale=1.05))
    args = build_parser().parse_args(shlex.split(cmd)[3:])
    assert args.n == 4 and args.seed == 9 and args.beta == 0.5 and args.checkpoint == "/x/model.pt"
    assert args.guidance == 0.35 and args.eps_scale == 1.05
    assert (args.alpha == 0.3) if target["mode"] == "interpolate" else True
    assert (args.sigma_star == 0.2) if target["mode"] == "switch" else True


def test_launch_is_local_and_never_shared():
    kw = launch_kwargs()
    assert kw["server_name"] == "127.0.0.1" and kw["server_port"] == 7860 and kw["share"] is False
    a = _app_script().parse_args([])
    assert a.host == "127.0.0.1" and a.port == 7860


@pytest.mark.parametrize("args", [["--concurrency", "0"], ["--threads", "-1"], ["--port", "99999"],
                                  ["--queue", "x"]])
def test_app_script_refuses_settings_it_cannot_serve_with(args, capsys):
    with pytest.raises(SystemExit) as e:
        _app_script().parse_args(args)
    assert e.value.code == 2 and args[0] in capsys.readouterr().err


def test_views_take_numbers_as_the_api_sends_them_and_refuse_the_rest(tiny_fg, tiny_atlas):
    views = Views(Context(tiny_fg, None, AtlasHolder({FG: tiny_fg}, tiny_atlas, warm=False)))
    sigma = tiny_atlas.sigmas[0]
    fig = views.embedding(FG, "mid", str(sigma), "pca").map         # view_api shows the choices as text
    assert f"sigma = {sigma:g}" in fig.layout.title.text
    for bad, words in ((lambda: views.embedding(FG, "mid", "abc", "pca"), "sigma must be a number"),
                       (lambda: views.denoise(0, None, float("nan"), 0), "sigma must be a finite number"),
                       (lambda: views.denoise(0, None, 0.5, 2 ** 70), "seed must be a whole number from 0"),
                       (lambda: list(views.sample(CLASS, tiny_fg.classes[0], None, 2.5, 0)), "whole number"),
                       (lambda: list(views.sample(CLASS, tiny_fg.classes[0], None, 2, 0, float("nan"))), "beta")):
        with pytest.raises(gr.Error, match=words):
            bad()


def _app_script():
    import importlib.util
    spec = importlib.util.spec_from_file_location("app_script", ROOT / "app.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_app_rebuilds_an_atlas_drawn_from_other_weights(tiny_fg_dir, tiny_mixture_dir, tiny_atlas, tmp_path):
    import shutil

    import torch
    run = tmp_path / "run"
    shutil.copytree(tiny_fg_dir, run)
    tiny_atlas.save(run / "atlas")
    script = _app_script()
    args = script.parse_args(["--checkpoint", str(run), "--mixture", str(tiny_mixture_dir), "--no-umap", "--no-runs"])
    assert script.load(args).context().atlas.get() is not None     # drawn from these models: served
    # the same run fine-tuned as long again (same step count), or its weights edited: rebuilt
    state = torch.load(run / "model.pt", weights_only=False)
    state["model"]["out.weight"] += 1e-3
    torch.save(state, run / "model.pt")
    holder = script.load(args).context().atlas
    assert holder.atlas is None and holder.phase == "waiting"


def test_app_script_refuses_bad_checkpoints_with_one_line(tiny_mixture_dir, tmp_path):
    for ckpt, words in [(tmp_path / "missing", "no model.pt"), (tiny_mixture_dir, "needs a feature-guided")]:
        (tmp_path / "missing").mkdir(exist_ok=True)
        r = subprocess.run([sys.executable, str(ROOT / "app.py"), "--checkpoint", str(ckpt), "--port", "1"],
                           capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert r.returncode == 2, r.stderr[-2000:]
        assert words in r.stderr and "Traceback" not in r.stderr


def test_interpolation_strip_ends_with_real_crops_of_both_classes(tiny_fg, tiny_atlas, tiny_classifier):
    def strip(atlas):
        ctx = Context(tiny_fg, None, AtlasHolder({FG: tiny_fg}, atlas, warm=False),
                      ClassifierHolder(tiny_fg, tiny_classifier))
        return Views(ctx).interpolate_strip(tiny_fg.classes[0], tiny_fg.classes[1], 1, 0)
    with_real, without = strip(tiny_atlas), strip(None)       # no atlas yet: the strip alone
    assert with_real.table == without.table
    assert with_real.strip.shape[0] == without.strip.shape[0] and with_real.strip.shape[1] > without.strip.shape[1]
    a, b = tiny_fg.classes[:2]
    assert with_real.columns.startswith(f"Columns, left to right: real {a} |") and "real " not in without.columns


def test_a_refused_upload_is_named_in_plain_words_with_every_bad_file(tiny_fg, tiny_atlas, tmp_path):
    views = Views(Context(tiny_fg, None, AtlasHolder({FG: tiny_fg}, tiny_atlas, warm=False)))
    files = bad_uploads(tmp_path)
    paths = [files["rgba.png"][0], files["not_an_image.png"][0], files["corrupt.png"][0]]
    with pytest.raises(EngineError) as e:
        views.read_uploads(paths)
    msg = str(e.value)
    assert "not_an_image.png" in msg and "corrupt.png" in msg and "2 of 3 files refused" in msg
    assert "Error" not in msg and str(tmp_path) not in msg            # no exception names, no temp paths
    preview = views.preview_uploads(paths)
    assert preview.picture is None and preview.refused
    assert preview.message.startswith("**Refused:**") and "not_an_image.png" in preview.message


def test_uploads_are_placed_against_the_class_centroids(tiny_fg, tiny_atlas, tmp_path):
    from engine.measures import Nearest
    views = Views(Context(tiny_fg, None, AtlasHolder({FG: tiny_fg}, tiny_atlas, warm=False)))
    near = views.placement(tiny_atlas.images[:2])
    assert 0 <= near.index < len(tiny_fg.classes) and near.ratio > 0
    assert "Far from every class" in views.placement_text(Nearest(0, 5.0, 2.0, 2.5))
    assert "within the class" in views.placement_text(Nearest(1, 1.0, 2.0, 0.5))
    preview = views.preview_uploads([bad_uploads(tmp_path)["rgba.png"][0]])
    assert preview.picture.dtype == np.uint8 and "times its spread" in preview.message
    assert "read as 4 crop(s)" in preview.message and "1 of them cut into crops of 16 pixels" in preview.message


def test_correlations_are_described_by_their_strength():
    from app.common import correlation_words
    assert correlation_words(0.45, 0.5).startswith("a moderate positive")
    assert correlation_words(0.8, 0.7).startswith("a strong positive")
    assert correlation_words(-0.1, 0.0).startswith("a weak negative")
    assert "no correlation" in correlation_words(float("nan"), float("nan"))


def test_the_registry_serves_each_model_its_own_views_and_the_page_clears_a_failed_view(
        tiny_fg, tiny_mixture, tiny_atlas, tiny_fg_dir, tmp_path, monkeypatch):
    from app.context import ModelSource, Registry
    from app.tabs.common import bind
    # which model serves which view is checked here; a picked model's preparation in the background
    # (tests/test_browser.py) would outlive this test and slow the ones after it
    monkeypatch.setattr(Context, "start_background", lambda self: None)
    first = Context(tiny_fg, tiny_mixture, AtlasHolder({FG: tiny_fg, MIXTURE: tiny_mixture}, tiny_atlas, warm=False),
                    label="first")
    reg = Registry([ModelSource(tiny_fg_dir, None, None, label="second")], loaded={"first": first}, warm_umap=False,
                   per_class=3)
    assert reg.choices() == ["first", "second"] and reg.default == "first"
    assert reg.views("second").ctx.mixture is None and reg.views("first").ctx is first
    assert reg.views("second") is reg.views("second")
    with pytest.raises(EngineError, match="unknown model 'third'"):
        reg.context("third")
    api = bind(reg, "denoise")
    outputs, fig, summary = api(0, None, 0.5, 0, "first")
    assert summary["model"] == "first" and summary["psnr_mixture"] is not None
    upload = bad_uploads(tmp_path)["rgba.png"][0]
    _, _, summary = api(0, upload, 0.5, 0, "second")
    assert summary["model"] == "second" and summary["psnr_mixture"] is None and summary["image"] == "rgba.png"
    with pytest.raises(gr.Error, match="sigma must be"):
        api(0, None, 9.0, 0, "first")
    page = bind(reg, "denoise", page=True, n_out=3, error_as=lambda m: "Error: " + m)
    cleared = page(0, None, 9.0, 0, "first")
    assert cleared[:3] == (None, None, None) and cleared[3].startswith("Error: sigma must be")
    assert page(0, None, 0.5, 0, "first")[3] == ""
    import inspect
    assert list(inspect.signature(api).parameters)[-1] == "checkpoint"


def test_a_model_set_takes_a_conditional_network_of_its_own_data_only(tiny_fg, tiny_mixture, tiny_atlas, tiny_fg_dir,
                                                                       tiny_mixture_dir, tiny_conditional_dir, tiny_ovals):
    """The registry pairs a set with the conditional model named when it is one of the same data (else
    serves the set without it), and the class controls accept every set's classes, the first set's first."""
    from app.context import ModelSource, Registry
    from engine.checkpoint import load_checkpoint
    first = Context(tiny_fg, tiny_mixture, AtlasHolder({FG: tiny_fg, MIXTURE: tiny_mixture}, tiny_atlas, warm=False),
                    label="first")
    reg = Registry([ModelSource(tiny_fg_dir, None, None, label="paired", conditional=tiny_conditional_dir),
                    ModelSource(tiny_fg_dir, None, None, label="a mixture named", conditional=tiny_mixture_dir),
                    ModelSource(tiny_fg_dir, None, None, label="other data", conditional=tiny_ovals / "conditional"),
                    ModelSource(tiny_ovals / "feature_guided", None, None, label="ovals")],
                   loaded={"first": first}, warm_umap=False, per_class=3)
    assert reg.all_classes() == tiny_fg.classes + ["ratio 0.2", "ratio 0.5", "ratio 2", "ratio 5"]
    assert reg.load(reg.sources["paired"]).conditional.kind == "conditional"
    assert reg.load(reg.sources["a mixture named"]).conditional is None
    assert reg.load(reg.sources["other data"]).conditional is None
    with pytest.raises(EngineError, match="trained on other data"):
        Context(tiny_fg, conditional=load_checkpoint(tiny_ovals / "conditional", device="cpu"))
    with pytest.raises(EngineError, match="must be a conditional model"):
        Context(tiny_fg, conditional=tiny_mixture)


def test_the_model_tab_shows_no_machine_paths(tiny_fg, tiny_mixture, tiny_atlas):
    from app import text
    from app.context import ROOT
    ctx = Context(tiny_fg, tiny_mixture, AtlasHolder({FG: tiny_fg}, tiny_atlas, warm=False))
    words = text.model_summary(ctx) + text.model_card(tiny_fg, tiny_mixture) + str(text.config_json(ctx))
    assert str(ROOT) not in words and "/tmp" not in words
    assert "parameters" in words and f"{tiny_fg.total_steps:,} steps" in words
    segments = text.lineage_segments(tiny_fg)
    assert len(segments) == len(tiny_fg.lineage) + 1
    assert [h[0] for h in segments[-1][1]] == [h[0] for h in tiny_fg.info.get("history", [])]   # no earlier runs


def test_the_loss_curve_spans_the_whole_lineage(tiny_fg_dir, tmp_path):
    """A run fine-tuned from another: the curve holds the earlier run's history, then its own, shifted."""
    import torch

    from app import figures, text
    from engine.checkpoint import load_checkpoint, read_file
    start = read_file(tiny_fg_dir)
    state = torch.load(tiny_fg_dir / "model.pt", weights_only=False)
    state["info"]["history"] = [(10, 0.5), (20, 0.4)]
    torch.save(state, tmp_path / "first.pt")
    state["step"] = 5
    state["info"] = {"history": [(2, 0.2), (4, 0.1)],
                     "init": {"path": str(tmp_path / "first.pt"), "step": start["step"], "wall_seconds": 1.0,
                              "train_config": start["train_config"], "init": None}}
    torch.save(state, tmp_path / "second.pt")
    ckpt = load_checkpoint(tmp_path / "second.pt", device="cpu")
    segments = text.lineage_segments(ckpt)
    assert [[p[0] for p in h] for _, h in segments] == [[10, 20], [start["step"] + 2, start["step"] + 4]]
    fig = figures.loss_figure(segments)
    assert len(fig.data) == 2 and list(fig.data[1].x) == [start["step"] + 2, start["step"] + 4]
    (tmp_path / "first.pt").unlink()                                # an earlier run no longer on disk: a gap
    gap = text.lineage_segments(ckpt)
    assert gap[0][1] == [] and "not recorded" in figures.loss_figure(gap).layout.title.text


def test_pair_scatter_names_only_points_with_room_for_their_label():
    """28 pairs in one plot: the named points' labels overlap neither each other nor another point, a
    lone extreme is named (beside it at the plot's edges), and every point still carries its pair for
    hover and click."""
    from app.figures import label_box, label_room, overlap, pair_scatter
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, 28), rng.uniform(0, 1, 28)
    x[0], y[0] = 0.5, 3.0                                   # far above the rest
    x[1], y[1] = -2.0, 0.5                                  # far left of the rest
    shown = label_room(x, y)
    u = (x - x.min()) / (x.max() - x.min())
    v = (y - y.min()) / (y.max() - y.min())
    assert shown[0] == "top center" and shown[1] == "middle right" and 2 <= len(shown) < 28
    boxes = {i: label_box(u[i], v[i], p) for i, p in shown.items()}
    for i in shown:
        assert not any(boxes[i][0] <= u[j] <= boxes[i][1] and boxes[i][2] <= v[j] <= boxes[i][3]
                       for j in range(28) if j != i), i
        for j in shown:
            if i < j:
                assert not overlap(boxes[i], boxes[j]), (i, j)
    pairs = [(f"a{k}", f"b{k}") for k in range(28)]
    fig = pair_scatter(10 ** x, 10 ** y, pairs, 0.9, 0.8, "mid", 0.05)
    trace = fig.data[0]
    assert [list(c) for c in trace.customdata] == [list(p) for p in pairs]
    assert sum(bool(t) for t in trace.text) == len(shown)
    assert [trace.textposition[i] for i in sorted(shown)] == [shown[i] for i in sorted(shown)]


def test_a_picker_entry_that_cannot_be_loaded_says_why_and_the_others_keep_serving(tiny_fg, tiny_atlas, tiny_fg_dir,
                                                                                   tmp_path):
    from app.context import ModelSource, Registry
    from app.tabs.common import bind
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.pt").write_bytes((tiny_fg_dir / "model.pt").read_bytes()[:300])
    first = Context(tiny_fg, None, AtlasHolder({FG: tiny_fg}, tiny_atlas, warm=False), label="first")
    reg = Registry([ModelSource(broken, None, None, label="broken")], loaded={"first": first}, warm_umap=False)
    page = bind(reg, "denoise", page=True, n_out=3, error_as=lambda m: "Error: " + m)
    cleared = page(0, None, 0.5, 0, "broken")
    assert cleared[:3] == (None, None, None)
    assert cleared[3].startswith("Error: ") and "unreadable or truncated checkpoint" in cleared[3]
    with pytest.raises(gr.Error, match="unreadable or truncated checkpoint"):
        bind(reg, "embedding")("feature_guided", "mid", 0.05, "pca", None, "broken")
    assert "broken" not in reg.loaded
    assert page(0, None, 0.5, 0, "first")[2]["model"] == "first"          # the first model still answers


def test_words_for_classes_and_the_model_card_read_as_plain_text():
    from app import text
    from app.common import possessive
    assert possessive("stars") == "stars'" and possessive("brick") == "brick's"
    written = ("# Model card\n\n- trained 10 steps in 2 min on x86_64, 1 CPU threads (torch 2)\n\n"
               "Sampler settings: {'sigma_0': 1.0, 'beta': 0.1}\n\n## Status: notes\n\nAgainst the pair it replaced")
    card = text.card_for_page(written)
    assert "## Status" not in card and "Against the" not in card           # the maintainers' notes are left out
    assert "{'sigma_0'" not in card and "| sigma_0 | 1.0 |\n| beta | 0.1 |" in card   # a table, not a dict
    assert "1 CPU threads" not in card and "1 CPU thread (torch 2)" in card
    assert card.startswith("# Model card")


def test_a_class_has_one_colour_in_the_apps_figures_and_the_reports(tiny_fg, tiny_atlas):
    from app import figures
    from engine import figures as report_figures
    from engine.palette import class_colour
    emb = tiny_atlas.embedding(FG, "mid", tiny_atlas.sigmas[0], "pca")
    classes = tiny_atlas.classes
    app_map = figures.map_figure(emb.coords, tiny_atlas.labels, classes, emb.centroids, "t", "pca")
    report_map = report_figures.embedding_figure(emb, classes, tiny_atlas.labels)
    app_colours = {t.name: t.marker.color for t in app_map.data if t.name in classes}
    report_colours = {t.name: t.marker.color for t in report_map.data if t.name in classes}
    assert app_colours == report_colours == {c: class_colour(i) for i, c in enumerate(classes)}
    a, b = classes[3], classes[0]
    strip = figures.strip_probabilities([0, 1], [1, 0], [0, 1], a, b, classes=classes)
    assert [t.line.color for t in strip.data] == [class_colour(3), class_colour(0)]
    bars = figures.probability_bars(np.full((2, len(classes)), 0.1), classes, [a, b], "t")
    assert bars.data[0].marker.color[3] == class_colour(3) and bars.data[0].marker.color[0] == class_colour(0)
