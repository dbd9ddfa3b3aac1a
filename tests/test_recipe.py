"""Recipes (engine/recipe.py): one TOML file per model, every setting of its training."""
from dataclasses import asdict
from pathlib import Path

import pytest

from engine.checkpoint import read_file
from engine.cli import given_train_flags, main
from engine.errors import EngineError
from engine.recipe import load_recipe

RECIPES = Path(__file__).resolve().parents[1] / "recipes"

TINY = """
dataset = "ovals"
kind = "feature_guided"
batch = 8
pool = 4
n_per_class = 16
checkpoint_every = 2
device = "cpu"
seed = 1

[model]
size = 16
widths = [8, 16]

[[stages]]
name = "base"
steps = 4
lr = 2e-3

[[stages]]
name = "detail"
steps = 3
lr = 5e-4
sigma_data = 0.05

[cuda]
batch = 16
precision = "bf16"

[cuda.model]
widths = [16, 32]
"""


def test_every_shipped_recipe_loads_and_each_model_has_one():
    for name in ("feature_guided", "mixture"):
        long = load_recipe(RECIPES / f"{name}_long.toml")              # the shipped pair's recipes
        short = load_recipe(RECIPES / f"{name}_short.toml")            # a quarter of the steps, for screens
        assert long.config(stage=long.stages[-1]).kind == name == short.config().kind
        assert long.config().model == short.config().model
        xl = load_recipe(RECIPES / f"{name}_xl.toml")                  # the next model, in training
        assert xl.config(stage=xl.stages[-1]).kind == name and xl.config().model == long.config().model
    assert load_recipe(RECIPES / "feature_guided_long.toml").config().model.widths == \
        load_recipe(RECIPES / "mixture_long.toml").config().model.widths          # a fair baseline


def test_settings_merge_recipe_then_cuda_then_stage_then_command_line(tmp_path):
    (tmp_path / "r.toml").write_text(TINY)
    r = load_recipe(tmp_path / "r.toml")
    base, detail = r.stages
    assert r.config(stage=base).lr == 2e-3 and r.config(stage=detail).sigma_data == 0.05
    assert r.config(stage=base).model.widths == (8, 16) and r.config(stage=base).batch == 8
    on_gpu = r.config(stage=base, cuda=True)
    assert on_gpu.model.widths == (16, 32) and on_gpu.batch == 16 and on_gpu.precision == "bf16"
    assert on_gpu.model.size == 16                        # the [cuda.model] table overrides, not replaces
    given = given_train_flags(["train", "--recipe", "r.toml", "--out", "o", "--lr", "1e-3", "--widths", "4,8"])
    assert given == {"lr": 1e-3, "model": {"widths": (4, 8)}}
    mine = r.config(given, stage=detail)
    assert mine.lr == 1e-3 and mine.model.widths == (4, 8) and mine.sigma_data == 0.05


@pytest.mark.parametrize("text, said", [
    ("lr = 1e-3\nlearning_rate = 2", "unknown setting 'learning_rate'"),
    ("[model]\ndepth = 3", "unknown model setting(s) depth"),
    ("lr = -1", "lr must be above 0, got -1"),
    ("[[stages]]\nsteps = 3", "distinct name"),
    ("lr = [", "not valid TOML"),
])
def test_a_broken_recipe_is_refused_before_training(tmp_path, text, said):
    (tmp_path / "r.toml").write_text(text)
    with pytest.raises(EngineError, match=said.replace("(", r"\(").replace(")", r"\)")):
        load_recipe(tmp_path / "r.toml")


def test_a_staged_recipe_trains_resumes_and_records_itself(tmp_path, capsys):
    (tmp_path / "r.toml").write_text(TINY)
    out = tmp_path / "run"
    args = ["train", "--recipe", str(tmp_path / "r.toml"), "--out", str(out), "--quiet"]
    assert main(args + ["--steps", "3"]) == 0          # the command line overrides every stage's steps
    final = read_file(out / "model.pt")
    assert final["step"] == 3 and final["train_config"]["sigma_data"] == 0.05     # the last stage
    rec = final["info"]["recipe"]
    assert rec["stage"] == "detail" and rec["overrides"] == {"steps": 3} and rec["text"] == TINY
    assert final["info"]["init"]["path"].endswith(str(Path("stages", "base", "model.pt")))
    # a second start without --resume is refused; --resume with finished stages has nothing left to do
    assert main(args + ["--steps", "3"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(args + ["--steps", "3", "--resume"]) == 0
    assert read_file(out / "model.pt")["step"] == 3


def test_an_interrupted_stage_resumes_from_its_checkpoint(tmp_path):
    (tmp_path / "r.toml").write_text(TINY)
    out = tmp_path / "run"
    args = ["train", "--recipe", str(tmp_path / "r.toml"), "--out", str(out), "--quiet"]
    assert main(args) == 0
    whole = read_file(out / "model.pt")
    # as if killed at the end of the second stage, before its model.pt was written
    (out / "stages" / "detail" / "model.pt").unlink()
    (out / "model.pt").unlink()
    state = read_file(out / "stages" / "detail" / "train_state.pt")
    assert state["step"] == 3
    assert main(args + ["--resume"]) == 0
    again = read_file(out / "model.pt")
    assert again["step"] == whole["step"] and again["info"]["recipe"]["stage"] == "detail"


def test_a_stage_added_to_a_finished_run_trains_alone(tmp_path, capsys):
    """A recipe that adds a stage to a finished run trains that stage only, from the last finished
    stage's model.pt, even where the earlier stages' folders are gone."""
    import shutil
    (tmp_path / "r.toml").write_text(TINY)
    out = tmp_path / "run"
    assert main(["train", "--recipe", str(tmp_path / "r.toml"), "--out", str(out), "--quiet"]) == 0
    detail = read_file(out / "stages" / "detail" / "model.pt")
    shutil.rmtree(out / "stages" / "base")
    longer = TINY.replace("[cuda]", '[[stages]]\nname = "more"\nsteps = 2\nlr = 1e-4\n\n[cuda]')
    (tmp_path / "r2.toml").write_text(longer)
    capsys.readouterr()
    assert main(["train", "--recipe", str(tmp_path / "r2.toml"), "--out", str(out), "--quiet", "--resume"]) == 0
    said = capsys.readouterr().out
    assert "stage 'base': done (stage 'detail' was trained from it)" in said and not (out / "stages" / "base").exists()
    final = read_file(out / "model.pt")
    assert final["step"] == 2 and final["info"]["recipe"]["stage"] == "more" and final["info"]["recipe"]["text"] == longer
    assert final["info"]["init"]["step"] == detail["step"] and final["info"]["init"]["init"]["step"] == 4


def test_a_stage_with_a_fresh_seed_keeps_its_crops_with_data_seed(tmp_path, monkeypatch):
    """A polishing stage's own seed draws new batches and noise; data_seed keeps the crops of the run
    it continues, and so the classifier `evaluate` keys to them."""
    import engine.train
    from engine.classifier import _key
    from engine.config import TrainConfig
    text = TINY.replace('name = "detail"', 'name = "detail"\nseed = 2\ndata_seed = 1')
    (tmp_path / "r.toml").write_text(text)
    recipe = load_recipe(tmp_path / "r.toml")
    base, detail = (recipe.config({}, stage) for stage in recipe.stages)
    assert (base.seed, base.crops_seed) == (1, 1) and (detail.seed, detail.crops_seed) == (2, 1)
    assert _key(detail) == _key(base)
    assert _key(recipe.config({"data_seed": 2}, recipe.stages[1])) != _key(base)
    stored = asdict(base)
    del stored["data_seed"]                          # a config stored before the field existed
    assert _key(TrainConfig(**stored)) == _key(base)

    seeds = []
    real = engine.train.load_dataset
    monkeypatch.setattr(engine.train, "load_dataset", lambda *a, **k: seeds.append(a[5]) or real(*a, **k))
    assert main(["train", "--recipe", str(tmp_path / "r.toml"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert seeds and set(seeds) == {1}               # both stages trained on seed 1's crops
    assert read_file(tmp_path / "run" / "model.pt")["train_config"]["seed"] == 2
