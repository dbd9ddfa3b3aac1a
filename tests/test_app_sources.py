"""The model picker's entries (app/sources.py) on a temporary runs/ folder: which runs are offered,
which mixture model each is paired with (by the dataset, classes and shape its checkpoint records,
never by the folder's name), and what a broken or crafted file gets (left out, its code never run)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from app import sources
from app.sources import Found, describe, find_runs, mixture_for
from engine.checkpoint import DEFAULT_CHECKPOINT, DEFAULT_MIXTURE, safe_load

ROOT = Path(__file__).resolve().parent.parent


class Payload:
    """Unpickling this calls os.system(command): what a hostile model.pt would do."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def copy_run(src: Path, dest: Path, **changes) -> Path:
    """A copy of a run whose model.pt records other facts (`dataset`, `classes`, `step`, `size`)."""
    dest.mkdir(parents=True)
    state = safe_load(Path(src) / "model.pt")
    if "dataset" in changes:
        state["train_config"]["dataset"] = changes["dataset"]
    if "classes" in changes:
        state["classes"] = changes["classes"]
    if "step" in changes:
        state["step"] = changes["step"]
    if "size" in changes:
        state["train_config"]["model"]["size"] = changes["size"]
    torch.save(state, dest / "model.pt")
    return dest / "model.pt"


@pytest.fixture(autouse=True)
def no_shipped_extras(monkeypatch, tmp_path):
    """The shipped conditional model and ovals set as absent, whether or not assets/ holds them
    (a test that wants them puts its own there)."""
    monkeypatch.setattr(sources, "DEFAULT_CONDITIONAL", tmp_path / "no_conditional")
    monkeypatch.setattr(sources, "OVALS_SET", tmp_path / "no_ovals")


@pytest.fixture
def runs(tiny_fg_dir, tiny_mixture_dir, tiny_conditional_dir, tmp_path):
    """runs/ with: a feature-guided run named like the shipped pair's folder, and a stage of another;
    a mixture run named as its partner's name would suggest but trained on other data; two mixture
    runs on the same data (the longer trained is the partner); a conditional run on the same data and
    one on other data; a truncated file; a crafted file."""
    root = tmp_path / "runs"
    fg = copy_run(tiny_fg_dir, root / "feature_guided")
    stage = copy_run(tiny_fg_dir, root / "grown" / "stages" / "s1")
    named_like = copy_run(tiny_mixture_dir, root / "mixture", dataset="ovals", classes=["round", "long"])
    short = copy_run(tiny_mixture_dir, root / "baseline_short", step=10)
    long = copy_run(tiny_mixture_dir, root / "baseline_long", step=500)
    conditional = copy_run(tiny_conditional_dir, root / "conditional")
    copy_run(tiny_conditional_dir, root / "conditional_other", dataset="textures-v3", step=900)
    (root / "broken").mkdir()
    (root / "broken" / "model.pt").write_bytes((tiny_fg_dir / "model.pt").read_bytes()[:200])
    marker = tmp_path / "code_ran"
    state = torch.load(tiny_fg_dir / "model.pt", weights_only=False)
    state["info"]["note"] = Payload(f"touch {marker}")
    (root / "crafted").mkdir()
    torch.save(state, root / "crafted" / "model.pt")
    return dict(root=root, fg=fg, stage=stage, named_like=named_like, short=short, long=long, marker=marker,
                conditional=conditional)


def test_find_runs_offers_the_feature_guided_runs_and_nothing_it_cannot_read_safely(runs):
    found = find_runs(runs["root"])
    assert found == sorted([runs["fg"], runs["stage"]])
    assert not runs["marker"].exists()                    # the crafted file was refused before it ran


def test_a_run_is_paired_with_a_mixture_trained_on_its_data_not_by_its_folders_name(runs):
    candidates = sources.scan(runs["root"])
    fg = describe(runs["fg"])
    assert fg.kind == "feature_guided" and fg.dataset == "textures"
    # runs/mixture would be the partner by name; it records other data, so the partner is the longest
    # trained mixture on the same dataset, classes and image size
    assert mixture_for(fg, candidates) == runs["long"]
    other = Found(fg.path, fg.kind, "ovals", fg.classes, fg.shape, fg.steps, True)
    assert mixture_for(other, candidates) is None          # same classes, another dataset: no partner
    assert describe(runs["named_like"]).classes == ("round", "long")


def test_the_pickers_entries_on_a_runs_folder(runs):
    script_args = _app_script().parse_args(["--no-umap"])
    entries = sources.sources(script_args, runs["root"])
    assert entries[0].checkpoint is None and entries[0].label == "shipped (assets/feature_guided)"
    assert Path(entries[0].mixture) == DEFAULT_MIXTURE
    runs_offered = {Path(e.checkpoint): e for e in entries[1:]}
    assert set(runs_offered) == {runs["fg"], runs["stage"]}
    for path, entry in runs_offered.items():
        assert entry.mixture == runs["long"]                      # every run gets its partners
        assert entry.conditional == runs["conditional"]           # on its data, however long the other trained
        assert entry.atlas == path.parent / "atlas" and entry.save_to == path.parent / "atlas"
    assert [e.label for e in sources.sources(_app_script().parse_args(["--no-runs"]), runs["root"])] == \
        ["shipped (assets/feature_guided)"]


def test_a_checkpoint_given_on_the_command_line_is_paired_by_its_data_too(runs):
    args = _app_script().parse_args(["--checkpoint", str(runs["fg"].parent), "--no-umap"])
    entries = sources.sources(args, runs["root"])
    assert Path(entries[0].checkpoint) == runs["fg"].parent and entries[0].mixture == runs["long"]
    assert [Path(e.checkpoint) for e in entries[1:]] == [runs["stage"]]     # the given run is not offered twice
    given = _app_script().parse_args(["--checkpoint", str(runs["fg"].parent), "--mixture", str(runs["short"].parent)])
    assert Path(sources.sources(given, runs["root"])[0].mixture) == runs["short"].parent


def test_the_shipped_pair_records_the_same_data():
    fg, mixture = describe(DEFAULT_CHECKPOINT), describe(DEFAULT_MIXTURE)
    assert fg.kind == "feature_guided" and mixture.kind == "mixture" and fg.same_data(mixture)
    assert mixture_for(fg, [mixture]) == mixture.path


def _app_script():
    import importlib.util
    spec = importlib.util.spec_from_file_location("app_script", ROOT / "app.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_the_shipped_model_gets_the_shipped_conditional_network_when_it_is_there_and_matches(
        monkeypatch, tmp_path, tiny_conditional_dir):
    shipped = describe(DEFAULT_CHECKPOINT)
    folder = tmp_path / "conditional"
    copy_run(tiny_conditional_dir, folder, dataset=shipped.dataset, classes=list(shipped.classes),
             size=shipped.shape[1])
    monkeypatch.setattr(sources, "DEFAULT_CONDITIONAL", folder)
    args = _app_script().parse_args(["--no-runs"])
    assert Path(sources.sources(args)[0].conditional) == folder / "model.pt"
    (folder / "model.pt").unlink()                              # another image size: not its partner
    copy_run(tiny_conditional_dir, tmp_path / "other")
    (tmp_path / "other" / "model.pt").rename(folder / "model.pt")
    assert sources.sources(args)[0].conditional is None
    (folder / "model.pt").unlink()                              # not there (yet): none
    assert sources.sources(args)[0].conditional is None
    given = _app_script().parse_args(["--no-runs", "--conditional", str(tiny_conditional_dir)])
    assert sources.sources(given)[0].conditional == str(tiny_conditional_dir)


def test_the_ovals_set_is_offered_when_its_models_are_there(monkeypatch, tmp_path, tiny_ovals):
    from engine.paths import atlas_home
    args = _app_script().parse_args(["--no-runs"])
    assert [e.label for e in sources.sources(args)] == ["shipped (assets/feature_guided)"]     # not there
    monkeypatch.setattr(sources, "OVALS_SET", tiny_ovals)
    entries = sources.sources(args)
    assert [e.label for e in entries] == ["shipped (assets/feature_guided)", sources.OVALS_LABEL]
    ovals = entries[1]
    assert Path(ovals.checkpoint) == tiny_ovals / "feature_guided" and ovals.mixture is None
    assert ovals.conditional == tiny_ovals / "conditional" / "model.pt"
    assert ovals.ground_truth == tiny_ovals / "ground_truth.json"
    home = atlas_home(tiny_ovals / "feature_guided")
    assert ovals.atlas == home and ovals.save_to == home         # made in the background, kept there
    shipped_atlas = tmp_path / "ovals_set"                        # a shipped atlas is served, never written
    for part in ("feature_guided", "conditional"):
        copy_run(tiny_ovals / part, shipped_atlas / part)
    (shipped_atlas / "atlas").mkdir()
    (shipped_atlas / "atlas" / "atlas.json").write_text("{}")
    monkeypatch.setattr(sources, "OVALS_SET", shipped_atlas)
    ovals = sources.sources(args)[1]
    assert ovals.atlas == shipped_atlas / "atlas" and ovals.save_to == atlas_home(shipped_atlas / "feature_guided")
    assert ovals.conditional == shipped_atlas / "conditional" / "model.pt"
    named = _app_script().parse_args(["--no-runs", "--checkpoint", str(tiny_ovals / "feature_guided")])
    assert len(sources.sources(named)) == 1                      # the shipped sets only when no model is named
