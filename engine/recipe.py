"""Recipes: every setting of a model's training in one TOML file (read with the standard library).

    python -m engine train --recipe recipes/feature_guided_v3.toml --out runs/feature_guided

A recipe's top-level keys are TrainConfig fields (dataset, kind, steps, batch, lr, ...); its
`[model]` table holds ModelConfig fields (channels, size, widths, ...). Optional parts:

  [cuda]          overrides applied when the run trains on a CUDA device (wider network in
  [cuda.model]    [cuda.model], larger batch, precision = "bf16"): one file serves a laptop
                  and a GPU, and the checkpoint says which settings ran.
  [[stages]]      a run in several stages, each a table of overrides with a `name`; stage k
                  starts from the weights of stage k - 1 (a fine-tune) in OUT/stages/NAME, and
                  the last stage's model.pt becomes OUT/model.pt. Without stages, one run in OUT.
                  With --resume, finished stages are skipped, and so is every stage before a
                  finished one: a stage added to a finished run trains alone.
                  A stage given its own `seed` (fresh batches and noise) also draws fresh crops,
                  unless `data_seed` names the crops of the stage it continues.

Flags given on the command line override the recipe (in every stage). The checkpoint records the
recipe as run: its text, its path, the overrides and the stage (info["recipe"]).
"""
from __future__ import annotations

import os
import shutil
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from .config import ModelConfig, TrainConfig
from .errors import EngineError
from .paths import write_atomic

TRAIN_KEYS = {f.name for f in fields(TrainConfig)} - {"model"}
MODEL_KEYS = {f.name for f in fields(ModelConfig)}
SECTIONS = {"model", "cuda", "stages", "description"}


@dataclass
class Recipe:
    path: str
    text: str
    settings: dict                                  # TrainConfig fields, "model" a dict of ModelConfig's
    cuda: dict = field(default_factory=dict)        # the same shape, applied on CUDA
    stages: list[dict] = field(default_factory=list)
    description: str = ""

    def config(self, overrides: dict | None = None, stage: dict | None = None, cuda: bool = False) -> TrainConfig:
        """The TrainConfig of one stage: recipe < [cuda] (on CUDA) < stage < command-line overrides."""
        merged = _merge(self.settings, self.cuda if cuda else {})
        merged = _merge(merged, {k: v for k, v in (stage or {}).items() if k != "name"})
        merged = _merge(merged, overrides or {})
        model = ModelConfig(**merged.pop("model", {}))
        return TrainConfig(**merged, model=model)

    def record(self, overrides: dict, stage: str | None, cuda: bool) -> dict:
        """What a checkpoint keeps of the recipe that made it."""
        return {"path": self.path, "text": self.text, "overrides": overrides, "stage": stage, "cuda": cuda}


def _merge(base: dict, over: dict) -> dict:
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for k, v in over.items():
        if k == "model":
            out["model"] = {**out.get("model", {}), **v}
        else:
            out[k] = v
    return out


def _check_keys(table: dict, where: str, allowed: set[str]) -> None:
    for k, v in table.items():
        if k == "model":
            if not isinstance(v, dict):
                raise EngineError(f"{where}: 'model' must be a table ([model])")
            unknown = set(v) - MODEL_KEYS
            if unknown:
                raise EngineError(f"{where}: unknown model setting(s) {', '.join(sorted(unknown))}; "
                                  f"known: {', '.join(sorted(MODEL_KEYS))}")
        elif k not in allowed:
            raise EngineError(f"{where}: unknown setting '{k}'; known: {', '.join(sorted(allowed))}")


def load_recipe(path: str | Path) -> Recipe:
    p = Path(path)
    if not p.is_file():
        raise EngineError(f"--recipe {p}: no such file; the shipped recipes are in recipes/")
    text = p.read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise EngineError(f"--recipe {p}: not valid TOML ({e})") from None
    cuda = data.pop("cuda", {})
    stages = data.pop("stages", [])
    description = data.pop("description", "")
    _check_keys(data, str(p), TRAIN_KEYS)
    if not isinstance(cuda, dict):
        raise EngineError(f"{p}: 'cuda' must be a table ([cuda])")
    _check_keys(cuda, f"{p} [cuda]", TRAIN_KEYS)
    if not isinstance(stages, list) or not all(isinstance(s, dict) for s in stages):
        raise EngineError(f"{p}: stages must be an array of tables ([[stages]])")
    names = [s.get("name") for s in stages]
    if stages and (None in names or len(set(names)) != len(names)):
        raise EngineError(f"{p}: every [[stages]] table needs a distinct name")
    for s in stages:
        _check_keys(s, f"{p} stage '{s['name']}'", TRAIN_KEYS | {"name"})
    recipe = Recipe(str(p), text, data, cuda, stages, description)
    # a mistake in any stage is found before hours of training, not when that stage starts
    for s in stages or [None]:
        recipe.config(stage=s)
        if cuda:
            recipe.config(stage=s, cuda=True)
    return recipe


def train_recipe(recipe: Recipe, out_dir: str | Path, overrides: dict | None = None, resume: bool = False,
                 progress: bool = True, log=print) -> Path:
    """Train every stage of a recipe into out_dir (resuming where each stopped); returns OUT/model.pt."""
    from . import distributed
    from .checkpoint import pick_device
    overrides = overrides or {}
    device = recipe.config(overrides).device
    cuda = pick_device(device).type == "cuda"
    # one process group for every stage under torchrun; rank 0 alone speaks and copies files
    with distributed.session(device) as world:
        out = Path(out_dir)
        taken = recipe.stages and not resume and (out / "stages").exists()
        # every process looks before any writes, and all stop if the folder is taken
        distributed.agree(world, EngineError(f"{out} already holds a run; use --resume to continue it or "
                                             "choose another --out") if taken else None)
        return _train_stages(recipe, Path(out_dir), overrides, resume, progress,
                             log if world.main else (lambda *a, **k: None), cuda, world.main)


def _train_stages(recipe: Recipe, out: Path, overrides: dict, resume: bool, progress: bool, log, cuda: bool,
                  main: bool) -> Path:
    from .checkpoint import MODEL_FILE, STATE_FILE
    from .train import train
    if not recipe.stages:
        cfg = recipe.config(overrides, cuda=cuda)
        return _stamp(train(cfg, out, resume=resume, progress=progress, log=log),
                      recipe.record(overrides, None, cuda))
    configs = [recipe.config(overrides, stage, cuda) for stage in recipe.stages]
    folders = [out / "stages" / stage["name"] for stage in recipe.stages]
    # a stage that a later, finished stage started from is done too, its folder kept or not: a
    # recipe that adds a stage to a finished run needs only the last finished stage's model.pt
    done = max((k for k, (f, c) in enumerate(zip(folders, configs)) if _finished(f / MODEL_FILE, c.steps)),
               default=-1)
    previous = None
    for k, (stage, folder, cfg) in enumerate(zip(recipe.stages, folders, configs)):
        name = stage["name"]
        if k < done and not (folder / MODEL_FILE).is_file():
            log(f"stage '{name}': done (stage '{recipe.stages[done]['name']}' was trained from it)")
        elif k <= done:
            log(f"stage '{name}': done ({folder / MODEL_FILE})")
        else:
            log(f"stage '{name}'" + (f", from {previous}" if previous else ""))
            going = (folder / STATE_FILE).is_file()
            _stamp(train(cfg, folder, resume=going, progress=progress, log=log,
                         init=previous if not going else None), recipe.record(overrides, name, cuda))
        previous = folder / MODEL_FILE
    if main:
        def copy(f):
            with open(previous, "rb") as src:
                shutil.copyfileobj(src, f)
        write_atomic(out / MODEL_FILE, copy)
    log(f"wrote {out / MODEL_FILE} (the last stage, '{recipe.stages[-1]['name']}')")
    return out / MODEL_FILE


def _stamp(model_file: Path, record: dict) -> Path:
    """Write the recipe as run into a finished model.pt (info["recipe"]): the file says how it was made."""
    from .checkpoint import read_file, save_atomic
    if int(os.environ.get("RANK", "0")) != 0:        # under torchrun, rank 0 alone writes files
        return Path(model_file)
    state = read_file(model_file)
    state.pop("path")
    state.setdefault("info", {})["recipe"] = record
    save_atomic(state, model_file)
    return Path(model_file)


def _finished(model_file: Path, steps: int) -> bool:
    """A stage's model.pt is final when it was written at the stage's last step."""
    if not model_file.is_file():
        return False
    from .checkpoint import read_file
    return read_file(model_file).get("step") == steps
