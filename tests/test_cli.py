"""Every subcommand on a tiny config, and one-line errors for bad input."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def cli(*args):
    return subprocess.run([sys.executable, "-m", "engine", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env=ENV)


def ok(*args):
    r = cli(*args)
    assert r.returncode == 0, r.stderr[-2000:]
    return r


def one_line_error(r, *words):
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in r.stderr, r.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.mark.parametrize("command", ["train", "centroids", "sample", "dataset", "evaluate", "benchmark"])
def test_help(command, capsys):
    from engine.cli import build_parser
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([command, "--help"])
    assert e.value.code == 0
    assert "usage: python -m engine " + command in capsys.readouterr().out


def test_train_sample_evaluate_on_a_tiny_config(tmp_path, tiny_mixture_dir):
    run = tmp_path / "run"
    r = ok("train", "--dataset", "ovals", "--steps", "20", "--batch", "8", "--widths", "8,16", "--size", "16",
           "--n-per-class", "16", "--checkpoint-every", "10", "--pool", "4", "--out", run, "--quiet")
    assert '"dataset": "ovals"' in r.stdout and '"pool": 4' in r.stdout   # the config is printed at start
    assert (run / "model.pt").exists() and (run / "train_state.pt").exists()
    ok("centroids", "--checkpoint", run, "--per-class", "8")

    cls = "ratio 0.2"
    ok("sample", "--checkpoint", run, "--class", cls, "--n", 3, "--max-steps", 10, "--out", tmp_path / "a.npy",
       "--trajectory", tmp_path / "t.npz")
    x = np.load(tmp_path / "a.npy")
    assert x.shape == (3, 1, 16, 16) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    t = np.load(tmp_path / "t.npz")
    assert t["y"].shape[1:] == (3, 1, 16, 16) and t["phi"].ndim == 3 and t["final"][-1]
    ok("sample", "--checkpoint", run, "--class", cls, "--n", 3, "--max-steps", 10, "--out", tmp_path / "b.npy")
    assert np.array_equal(x, np.load(tmp_path / "b.npy"))      # same seed, same samples

    ok("sample", "--checkpoint", run, "--interpolate", "ratio 0.2", "ratio 5", "--alpha", "1.3", "--n", 2,
       "--max-steps", 5, "--out", tmp_path / "c.png")
    assert Image.open(tmp_path / "c.png").size[0] > 16
    ok("sample", "--checkpoint", run, "--switch", "ratio 0.2", "ratio 5", "--sigma-star", "0.3", "--n", 2,
       "--max-steps", 5, "--out", tmp_path / "d.png")
    Image.new("RGBA", (40, 40), (200, 10, 10, 100)).save(tmp_path / "cond.png")
    ok("sample", "--checkpoint", run, "--image", tmp_path / "cond.png", tmp_path / "cond.png", "--n", 2,
       "--max-steps", 5, "--out", tmp_path / "e.png")
    ok("sample", "--checkpoint", tiny_mixture_dir, "--unconditional", "--n", 2, "--max-steps", 5,
       "--out", tmp_path / "f.npy")

    r = ok("evaluate", "--checkpoint", run, "--per-class", 3, "--no-timing", "--out", tmp_path / "e.json")
    report = json.loads((tmp_path / "e.json").read_text())
    assert json.loads(r.stdout) == report
    for key in ("classifier_test_accuracy", "class_accuracy", "diversity_ratio", "contrast_ratio",
                "memorisation_ratio", "psnr", "noise_seen", "nfe_per_sample"):
        assert key in report
    assert set(report["class_accuracy"]) == {"ratio 0.2", "ratio 0.5", "ratio 1", "ratio 2", "ratio 5"}

    r = ok("benchmark", "--checkpoint", run, "--repeats", 1)
    bench = json.loads(r.stdout)
    assert bench["seconds_per_batch"] > 0 and bench["batch"] == 16


def test_dataset_export(tmp_path):
    ok("dataset", "--name", "textures", "--split", "test", "--n-per-class", 4, "--out", tmp_path / "d.npz")
    d = np.load(tmp_path / "d.npz")
    assert d["images"].shape == (4 * len(d["classes"]), 1, 32, 32) and d["images"].dtype == np.float32
    assert d["labels"].shape == (len(d["images"]),)


def test_bad_input_gives_one_line_errors(tmp_path, tiny_fg_dir):
    one_line_error(cli("sample", "--checkpoint", tiny_fg_dir, "--class", "nope", "--out", tmp_path / "x.png"),
                   "unknown class 'nope'")
    one_line_error(cli("sample", "--checkpoint", tmp_path / "none.pt", "--class", "a", "--out", tmp_path / "x.png"),
                   "not found")
    (tmp_path / "cut.pt").write_bytes((Path(tiny_fg_dir) / "model.pt").read_bytes()[:1000])
    one_line_error(cli("sample", "--checkpoint", tmp_path / "cut.pt", "--class", "a", "--out", tmp_path / "x.png"),
                   "truncated")
    (tmp_path / "text.png").write_text("not an image")
    one_line_error(cli("sample", "--checkpoint", tiny_fg_dir, "--image", tmp_path / "text.png",
                       "--out", tmp_path / "x.png"), "not a readable image")
    Image.new("L", (1, 1)).save(tmp_path / "dot.png")
    one_line_error(cli("sample", "--checkpoint", tiny_fg_dir, "--image", tmp_path / "dot.png",
                       "--out", tmp_path / "x.png"), "1x1")
    one_line_error(cli("sample", "--checkpoint", tiny_fg_dir, "--class", "brick", "--out", tmp_path / "x.txt"),
                   ".png")
    one_line_error(cli("sample", "--checkpoint", tiny_fg_dir, "--class", "brick", "--guidance", 9,
                       "--out", tmp_path / "x.png"), "guidance must be in [0, 4]")
    one_line_error(cli("dataset", "--name", tmp_path / "nothing-here", "--out", tmp_path / "d.npz"),
                   "unknown dataset")
    one_line_error(cli("train", "--steps", 5, "--size", 30, "--out", tmp_path / "r"), "divisible")
    one_line_error(cli("train", "--steps", 5, "--batch", 6, "--pool", 4, "--out", tmp_path / "r"), "multiple of pool")
