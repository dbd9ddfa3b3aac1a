"""Trust: a shared model file cannot run code, the shipped files never change under a user, the
comments hold no figures that a new model makes stale, and the repository stays light."""
import ast
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "GRADIO_ANALYTICS_ENABLED": "False"}


class Payload:
    """Unpickling this calls `call(*args)`: what a hostile model.pt would do."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


def crafted_run(real_run: Path, folder: Path, marker: Path, call=os.system) -> Path:
    """A copy of a real run whose model.pt, once unpickled, creates `marker`."""
    shutil.copytree(real_run, folder)
    state = torch.load(folder / "model.pt", weights_only=False)
    args = (f"touch {marker}",) if call is os.system else (str(marker), "w")
    state["info"]["note"] = Payload(call, *args)
    torch.save(state, folder / "model.pt")
    return folder


def one_error_line(r: subprocess.CompletedProcess) -> str:
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    return errors[0]


def test_the_crafted_file_is_live_under_a_plain_load(tiny_fg_dir, tmp_path):
    """The check below means something: the same file runs its payload when loaded the old way."""
    marker = tmp_path / "ran"
    run = crafted_run(tiny_fg_dir, tmp_path / "run", marker)
    torch.load(run / "model.pt", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("call", [os.system, open], ids=["os.system", "open"])
def test_sample_refuses_a_model_file_that_would_run_code(tiny_fg_dir, tmp_path, call):
    marker = tmp_path / "ran"
    run = crafted_run(tiny_fg_dir, tmp_path / "run", marker, call)
    r = subprocess.run([sys.executable, "-m", "engine", "sample", "--checkpoint", str(run), "--class",
                        "brick", "--n", "1", "--out", str(tmp_path / "s.png")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300, env=ENV)
    line = one_error_line(r)
    assert "refused" in line and ("system" in line or "open" in line), line
    assert not marker.exists() and not (tmp_path / "s.png").exists()


def test_evaluate_refuses_a_model_file_that_would_run_code(tiny_fg_dir, tmp_path):
    marker = tmp_path / "ran"
    run = crafted_run(tiny_fg_dir, tmp_path / "run", marker)
    r = subprocess.run([sys.executable, "-m", "engine", "evaluate", "--checkpoint", str(run), "--no-timing",
                        "--per-class", "1"], cwd=ROOT, capture_output=True, text=True, timeout=300, env=ENV)
    assert "refused" in one_error_line(r)
    assert not marker.exists()


def _app_script():
    import importlib.util
    spec = importlib.util.spec_from_file_location("app_script", ROOT / "app.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_the_apps_discovery_of_runs_never_runs_a_crafted_file(tiny_fg_dir, tmp_path):
    marker = tmp_path / "ran"
    runs = tmp_path / "runs"
    shutil.copytree(tiny_fg_dir, runs / "honest")
    crafted_run(tiny_fg_dir, runs / "crafted", marker)
    found = _app_script().find_runs(runs)
    assert found == [runs / "honest" / "model.pt"]     # the honest run is still offered
    assert not marker.exists()


def test_the_app_refuses_a_crafted_checkpoint_with_one_line(tiny_fg_dir, tmp_path):
    marker = tmp_path / "ran"
    run = crafted_run(tiny_fg_dir, tmp_path / "run", marker)
    r = subprocess.run([sys.executable, str(ROOT / "app.py"), "--checkpoint", str(run), "--no-runs",
                        "--no-umap", "--port", "1"], cwd=ROOT, capture_output=True, text=True, timeout=300, env=ENV)
    assert "refused" in one_error_line(r)
    assert not marker.exists()


def test_every_load_of_a_file_goes_through_safe_load():
    """One place decides what a file may hold: engine.checkpoint.safe_load."""
    sources = [*(ROOT / "engine").rglob("*.py"), *(ROOT / "app").rglob("*.py"), ROOT / "app.py",
               *(ROOT / "experiments").glob("*.py"), *(ROOT / "scripts").glob("*.py")]
    loads = {p.relative_to(ROOT).as_posix(): p.read_text().count("torch.load(") for p in sources}
    assert {p: n for p, n in loads.items() if n} == {"engine/checkpoint.py": 1}
    assert not [p for p in sources if "weights_only=False" in p.read_text() or "allow_pickle=True" in p.read_text()]


def test_every_file_the_project_ships_or_resumes_from_loads_without_running_code():
    from engine.checkpoint import FORMAT, safe_load
    files = sorted([*ROOT.glob("assets/*/*.pt"), *ROOT.glob("training/**/*.pt")])
    assert any(p.name == "model.pt" for p in files) and any(p.name.startswith("classifier_") for p in files)
    for path in files:
        state = safe_load(path)
        assert isinstance(state, dict) and (state.get("format") == FORMAT or "classes" in state), path


def test_a_file_that_asks_for_a_plain_function_is_refused_by_name(tmp_path):
    from engine.checkpoint import read_file
    from engine.errors import EngineError
    path = tmp_path / "model.pt"
    buf = io.BytesIO()
    torch.save({"format": "feature-guided-diffusion/1", "x": Payload(print, "ran")}, buf)
    path.write_bytes(buf.getvalue())
    with pytest.raises(EngineError, match=r"refused: .*`(builtins\.)?print`") as e:
        read_file(path)
    assert "\n" not in str(e.value)


def _assets_snapshot(folder: Path = ROOT / "assets") -> dict:
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def _git_status_assets() -> str:
    return subprocess.run(["git", "status", "--porcelain", "assets/"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


def test_the_apps_preparation_of_a_model_under_assets_writes_nothing_there(tiny_fg_dir, tiny_mixture_dir, tmp_path,
                                                                         monkeypatch):
    """The app on `--checkpoint assets/<model>` builds that model's atlas and measures (the shipped
    atlas sits elsewhere) and caches them outside assets/. A tiny pair stands in for the shipped one
    in an assets/ folder of its own (engine.paths.ASSETS), so the whole preparation runs in seconds;
    the project's own assets/ is checked untouched as well."""
    import engine.paths
    from app.preparation import wait_for_background
    assets = tmp_path / "assets"
    monkeypatch.setattr(engine.paths, "ASSETS", assets)
    monkeypatch.setattr(engine.paths, "CACHE", tmp_path / "cache")      # a fresh cache: the work is done
    for name, run in (("feature_guided", tiny_fg_dir), ("mixture", tiny_mixture_dir)):
        shutil.copytree(run, assets / name)
    before, status = _assets_snapshot(), _git_status_assets()
    ours = _assets_snapshot(assets)
    script = _app_script()
    args = script.parse_args(["--checkpoint", str(assets / "feature_guided"), "--mixture", str(assets / "mixture"),
                              "--no-umap", "--no-runs"])
    ctx = script.load(args).context()
    ctx.start_background()                                              # atlas, classifier, measures, compiles
    assert wait_for_background(timeout=900) == []
    assert ctx.atlas.get() is not None and ctx.atlas.error is None
    assert (tmp_path / "cache" / "assets" / "feature_guided" / "atlas" / "atlas.npz").is_file()
    assert _assets_snapshot(assets) == ours
    assert _assets_snapshot() == before
    assert _git_status_assets() == status


def test_caches_of_a_model_outside_assets_stay_beside_it(tmp_path):
    from engine.paths import ASSETS, CACHE, atlas_home, cache_home
    assert cache_home(tmp_path / "run") == (tmp_path / "run").resolve()
    assert atlas_home(ASSETS / "mixture") == CACHE / "assets" / "mixture" / "atlas"


def test_a_classifier_trained_for_a_model_under_assets_is_cached_outside(tiny_fg_dir, tmp_path, monkeypatch):
    import engine.classifier
    import engine.paths
    from engine.checkpoint import load_checkpoint
    from engine.classifier import load_classifier
    monkeypatch.setattr(engine.paths, "ASSETS", tmp_path / "assets")
    monkeypatch.setattr(engine.paths, "CACHE", tmp_path / "cache")
    # without a classifier an earlier test may have cached beside the tiny run (outside assets/)
    shutil.copytree(tiny_fg_dir, tmp_path / "assets" / "tiny", ignore=shutil.ignore_patterns("classifier_*"))
    before = sorted(p.name for p in (tmp_path / "assets" / "tiny").iterdir())
    ckpt = load_checkpoint(tmp_path / "assets" / "tiny")
    first = load_classifier(ckpt, progress=False)
    assert sorted(p.name for p in (tmp_path / "assets" / "tiny").iterdir()) == before
    cached = list((tmp_path / "cache" / "assets" / "tiny").glob("classifier_*.pt"))
    assert len(cached) == 1
    monkeypatch.setattr(engine.classifier, "train_classifier", lambda *a, **k: pytest.fail("retrained"))
    monkeypatch.setattr(engine.classifier, "_TRAINED", {})              # as a new process finds it
    again = load_classifier(ckpt, progress=False)                       # read back from the cache
    assert again.test_accuracy == first.test_accuracy and again.classes == first.classes


def test_models_of_one_dataset_in_two_folders_share_one_classifier_trained_once(tiny_fg_dir, tmp_path, monkeypatch):
    """As a report's feature-guided, mixture and conditional models do: trained once in a process,
    a copy cached beside each, and each caller given a network of its own."""
    import engine.classifier
    from engine.checkpoint import load_checkpoint
    from engine.classifier import load_classifier
    monkeypatch.setattr(engine.classifier, "_TRAINED", {})
    trained = []
    real = engine.classifier.train_classifier
    monkeypatch.setattr(engine.classifier, "train_classifier",          # a quick one: its count is what is checked
                        lambda key, progress=True: trained.append(1) or real(key, steps=5, batch=16, progress=False))
    ckpts = []
    for name in ("one", "two"):
        shutil.copytree(tiny_fg_dir, tmp_path / name, ignore=shutil.ignore_patterns("classifier_*"))
        ckpts.append(load_checkpoint(tmp_path / name))
    a, b = (load_classifier(c, progress=False) for c in ckpts)
    assert trained == [1]
    assert [len(list((tmp_path / n).glob("classifier_*.pt"))) for n in ("one", "two")] == [1, 1]
    assert a.net is not b.net and a.test_accuracy == b.test_accuracy
    for (k, v), w in zip(a.net.state_dict().items(), b.net.state_dict().values()):
        assert torch.equal(v, w), k
    next(a.net.parameters()).data.zero_()                              # one caller's change stays its own
    assert next(b.net.parameters()).abs().sum() > 0


# A measured figure in a docstring or comment goes stale with the next model; docs/model.md keeps
# them, dated. Settings (a sigma, a default) are not figures and pass.
FIGURES = [
    ("a PSNR in dB", re.compile(r"\d(?:\.\d+)?\s?dB\b")),
    ("two scores compared", re.compile(r"\b\d*\.\d+\s*(?:->|→|against|vs\.?|to|-|–)\s*\d*\.\d+\b")),
    ("a training length", re.compile(r"\b\d{3,}\s+(?:[\w-]+\s+){0,2}steps\b")),
    ("a score", re.compile(r"(?:accuracy|accuracies|read as|correlation|Spearman|Pearson)\D{0,30}\b0\.\d{2,}"
                           r"|\b0\.\d{2,}\D{0,20}(?:accuracy|correlation)")),
    ("a shipped model's figure", re.compile(r"\b\d?\.\d{3}\b[^.;:]{0,40}\bshipped\b"
                                            r"|\bshipped (?:model|pair|recipe)s?\b[^.;:]{0,40}\b\d?\.\d{3}\b")),
]


def prose(source: str):
    """(line, text) of every docstring (whitespace joined, so a figure may span lines) and comment."""
    import tokenize
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield node.body[0].lineno, " ".join(doc.split())
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string


def quoted_figures(source: str) -> list[str]:
    return [f"line {line}: {what}: ...{text[max(0, m.start() - 30):m.end() + 20]}..."
            for line, text in prose(source) for what, pattern in FIGURES for m in pattern.finditer(text)]


@pytest.mark.parametrize("stale", [
    '"""The first shipped model\nreturned 32.8 dB for a 40 dB input."""',
    '"""Samples gained\n(0.644 -> 0.669)."""',
    "# mid,dec2 beat it at every sigma after 10000 plain steps",
    "# Spearman ranged 0.857-0.929 over six sets of seeds on the shipped model",
    '"""A third time to 0.722 (the shipped pair)."""',
    "# the classifier's accuracy is 0.98 on held-out crops",
])
def test_the_figure_check_sees_the_figures_comments_used_to_quote(stale):
    assert quoted_figures(stale)


def test_settings_in_comments_are_not_taken_for_figures():
    assert not quoted_figures('"""Half the draws log-uniform on [0.005, sigma_max]; sigma_0 / 32;\n'
                              'at sigma 0.1 the weight is 1 + (0.05 / sigma)^2; 4 partners; 95% of images."""')


def test_no_module_of_engine_quotes_a_measured_figure_in_its_docstrings_or_comments():
    found = {path.relative_to(ROOT).as_posix(): quoted_figures(path.read_text())
             for path in sorted((ROOT / "engine").rglob("*.py"))}
    assert not {k: v for k, v in found.items() if v}, "figures belong in docs/model.md, dated"


# What may be large: the shipped models, their classifiers and atlas (assets/), and the resumable
# state of the runs in training (training/). Anything else over the limit makes every clone heavier.
LARGE_ALLOWED = (re.compile(r"assets/.+"), re.compile(r"training/.+/train_state\.pt"))
LIMIT = 5 * 2 ** 20


def oversized(sizes: dict[str, int]) -> list[str]:
    """The paths (relative to the repository) over LIMIT bytes that are not allowed to be large."""
    return sorted(p for p, n in sizes.items() if n > LIMIT and not any(a.fullmatch(p) for a in LARGE_ALLOWED))


def test_the_size_rule_refuses_a_large_file_outside_the_shipped_and_training_states():
    assert oversized({"data/crops.npz": LIMIT + 1, "assets/atlas/atlas.npz": 10 * LIMIT,
                      "training/fg/stages/base/train_state.pt": 2 * LIMIT, "training/fg/model.pt": 2 * LIMIT,
                      "docs/model.md": LIMIT}) == ["data/crops.npz", "training/fg/model.pt"]


def test_no_tracked_file_but_the_shipped_models_and_training_states_is_large():
    r = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if r.returncode != 0:
        pytest.skip("not a git checkout")
    paths = [p for p in r.stdout.decode().split("\0") if p]
    assert paths, "git lists no tracked file"
    sizes = {p: (ROOT / p).stat().st_size for p in paths if (ROOT / p).is_file()}
    assert not oversized(sizes), f"over {LIMIT // 2 ** 20} MB: keep it out of git (runs/ is ignored)"


def test_runs_stay_out_of_git():
    paths = ["runs/any/model.pt", "runs/any/train_state.pt", "runs/.cache/assets/x/atlas/atlas.npz"]
    r = subprocess.run(["git", "check-ignore", *paths], cwd=ROOT, capture_output=True, text=True, check=False)
    if r.returncode == 128:
        pytest.skip("not a git checkout")
    assert r.stdout.split() == paths
