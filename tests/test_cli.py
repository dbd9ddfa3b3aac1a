"""Every subcommand on a tiny config, and one-line errors for bad input.

The commands run in this process (engine.cli.main, as `python -m engine` calls it), which spares
each case the start of a Python that imports torch; one error case and the help run as a real
process, to show the command line's own exit code and output.
"""
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from engine.checkpoint import load_checkpoint, read_file
from engine.cli import main
from engine.grid import make_grid

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def cli(capsys, *args):
    """The command line in this process: its exit code and what it printed."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:                     # argparse's own checks and --help
        code = e.code
    out, err = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out, stderr=err)


def ok(capsys, *args):
    r = cli(capsys, *args)
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


def test_the_command_line_process_says_a_mistake_in_one_line_with_exit_code_2(tmp_path, tiny_fg_dir):
    r = subprocess.run([sys.executable, "-m", "engine", "sample", "--checkpoint", str(tiny_fg_dir), "--class", "nope",
                        "--out", str(tmp_path / "x.png")], cwd=ROOT, capture_output=True, text=True, timeout=600,
                       env=ENV)
    one_line_error(r, "unknown class 'nope'")
    assert r.stdout == "" and not (tmp_path / "x.png").exists()


def test_train_sample_evaluate_on_a_tiny_config(tmp_path, tiny_mixture_dir, capsys):
    run = tmp_path / "run"
    r = ok(capsys, "train", "--dataset", "ovals", "--steps", "20", "--batch", "8", "--widths", "8,16", "--size", "16",
           "--n-per-class", "16", "--checkpoint-every", "10", "--pool", "4", "--out", run, "--quiet")
    assert '"dataset": "ovals"' in r.stdout and '"pool": 4' in r.stdout   # the config is printed at start
    trained = load_checkpoint(run, device="cpu")
    assert (trained.step, trained.kind, trained.config.widths, trained.config.size) == (20, "feature_guided", (8, 16), 16)
    assert trained.train_config.pool == 4 and trained.train_config.dataset == "ovals"
    assert read_file(run / "train_state.pt")["step"] == 20
    classes = ["ratio 0.2", "ratio 0.5", "ratio 1", "ratio 2", "ratio 5"]
    assert trained.classes == classes

    # the table training wrote is recomputed the same from the same images; from fewer it changes
    table = trained.centroids.table.clone()
    ok(capsys, "centroids", "--checkpoint", run, "--per-class", 16, "--device", "cpu")
    torch.testing.assert_close(load_checkpoint(run, device="cpu").centroids.table, table, rtol=1e-5, atol=1e-6)
    ok(capsys, "centroids", "--checkpoint", run, "--per-class", 8, "--device", "cpu")
    fewer = load_checkpoint(run, device="cpu")
    assert fewer.centroids.table.shape == table.shape and not torch.allclose(fewer.centroids.table, table)
    assert all(torch.equal(v, trained.model.state_dict()[k]) for k, v in fewer.model.state_dict().items())

    cls = "ratio 0.2"
    r = ok(capsys, "sample", "--checkpoint", run, "--class", cls, "--n", 3, "--max-steps", 10,
           "--out", tmp_path / "a.npy", "--trajectory", tmp_path / "t.npz")
    said = json.loads(r.stdout)
    assert (said["out"], said["n"], said["seed"]) == (str(tmp_path / "a.npy"), 3, 0)
    assert cls in json.dumps(said["target"]) and 0 < said["steps"] <= 10 and said["sampler"]["max_steps"] == 10
    x = np.load(tmp_path / "a.npy")
    assert x.shape == (3, 1, 16, 16) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert not np.allclose(x[0], x[1])                         # three samples, not one three times
    t = np.load(tmp_path / "t.npz")
    assert t["y"].shape[1:] == (3, 1, 16, 16) and t["phi"].ndim == 3 and t["final"][-1]
    ok(capsys, "sample", "--checkpoint", run, "--class", cls, "--n", 3, "--max-steps", 10, "--out", tmp_path / "b.npy")
    assert np.array_equal(x, np.load(tmp_path / "b.npy"))      # same seed, same samples
    ok(capsys, "sample", "--checkpoint", run, "--class", cls, "--n", 3, "--max-steps", 10, "--seed", 1,
       "--out", tmp_path / "seed1.npy")
    assert np.abs(np.load(tmp_path / "seed1.npy") - x).max() > 0.05  # another seed, other samples

    # a PNG is the grid of the very samples the .npy holds: 2 of 16x16 side by side, 2 px apart, 4x
    for name, target in [("interpolate", ["--interpolate", "ratio 0.2", "ratio 5", "--alpha", "1.3"]),
                         ("switch", ["--switch", "ratio 0.2", "ratio 5", "--sigma-star", "0.3"])]:
        for suffix in ("png", "npy"):
            r = ok(capsys, "sample", "--checkpoint", run, *target, "--n", 2, "--max-steps", 5,
                   "--out", tmp_path / f"{name}.{suffix}")
        with Image.open(tmp_path / f"{name}.png") as png:
            assert png.size == ((2 * 18 + 2) * 4, (18 + 2) * 4) and png.mode == "L"
            assert np.array_equal(np.asarray(png), make_grid(np.load(tmp_path / f"{name}.npy"), scale=4)), name
    assert not np.allclose(np.load(tmp_path / "interpolate.npy"), np.load(tmp_path / "switch.npy"))

    Image.new("RGBA", (40, 40), (200, 10, 10, 100)).save(tmp_path / "cond.png")
    ok(capsys, "sample", "--checkpoint", run, "--image", tmp_path / "cond.png", tmp_path / "cond.png", "--n", 2,
       "--max-steps", 5, "--out", tmp_path / "e.npy")
    e = np.load(tmp_path / "e.npy")
    assert e.shape == (2, 1, 16, 16) and np.isfinite(e).all()
    ok(capsys, "sample", "--checkpoint", tiny_mixture_dir, "--unconditional", "--n", 2, "--max-steps", 5,
       "--out", tmp_path / "f.npy")
    f = np.load(tmp_path / "f.npy")
    assert f.shape == (2, 1, 16, 16) and 0 <= f.min() and f.max() <= 1 and not np.allclose(f[0], f[1])

    r = ok(capsys, "evaluate", "--checkpoint", run, "--per-class", 3, "--no-timing", "--out", tmp_path / "e.json")
    report = json.loads((tmp_path / "e.json").read_text())
    assert json.loads(r.stdout) == report
    for key in ("classifier_test_accuracy", "class_accuracy", "diversity_ratio", "contrast_ratio",
                "memorisation_ratio", "memorisation_per_class", "kid", "kid_real", "spectrum_error_db",
                "max_spectrum_error_db", "psnr", "noise_seen",
                "generalisation_gap_db", "nfe_per_sample"):
        assert key in report
    assert set(report["class_accuracy"]) == set(classes)
    for name, read in report["class_readings"].items():     # every sample read as some class, once
        assert sum(read.values()) == 3 and read.get(name, 0) / 3 == report["class_accuracy"][name]
    assert 0 <= report["classifier_test_accuracy"] <= 1
    assert set(report["spectrum_error_db"]) == set(classes)
    assert report["max_spectrum_error_db"] == max(report["spectrum_error_db"].values()) >= 0


def test_benchmark_times_the_reference_arithmetic(tiny_fg_dir, capsys):
    bench = json.loads(ok(capsys, "benchmark", "--checkpoint", tiny_fg_dir, "--repeats", 1).stdout)
    fp32 = bench["fp32"]
    assert fp32["seconds_per_batch"] > 0 and fp32["batch"] == 16 and fp32["precision"] == "fp32"
    assert fp32["nfe_per_sample"] >= 1 and bench["device"] == fp32["device"] == "cpu"
    # the policy's pick is said, and measured again only where it differs from fp32 eager
    pick = bench["policy"]["precision"]
    assert pick in ("fp32", "bf16") and bench["policy"]["asked"] == "auto"
    again = [k for k in bench if k.startswith("bf16")]
    assert len(again) == (pick == "bf16") and ("warm_up_seconds" in bench) == (pick == "bf16"), list(bench)


def test_dataset_export(tmp_path, capsys):
    r = ok(capsys, "dataset", "--name", "textures", "--split", "test", "--n-per-class", 4, "--out", tmp_path / "d.npz")
    d = np.load(tmp_path / "d.npz")
    k = len(d["classes"])
    assert d["images"].shape == (4 * k, 1, 32, 32) and d["images"].dtype == np.float32
    assert 0 <= d["images"].min() and d["images"].max() <= 1 and d["images"].std() > 0.01
    assert np.array_equal(np.bincount(d["labels"], minlength=k), np.full(k, 4))        # 4 of every class
    assert json.loads(r.stdout) == {"out": str(tmp_path / "d.npz"), "images": [4 * k, 1, 32, 32],
                                    "classes": list(d["classes"])}
    from engine.data import load_dataset
    same = load_dataset("textures", "test", 32, 1, 4, 0)
    assert np.array_equal(d["images"], same.images) and list(d["classes"]) == same.classes


def test_bad_input_gives_one_line_errors(tmp_path, tiny_fg_dir, capsys):
    def check(*args_and_words):
        *args, words = args_and_words
        one_line_error(cli(capsys, *args), *([words] if isinstance(words, str) else words))

    check("sample", "--checkpoint", tiny_fg_dir, "--class", "nope", "--out", tmp_path / "x.png",
          "unknown class 'nope'")
    check("sample", "--checkpoint", tmp_path / "none.pt", "--class", "a", "--out", tmp_path / "x.png", "not found")
    (tmp_path / "cut.pt").write_bytes((Path(tiny_fg_dir) / "model.pt").read_bytes()[:1000])
    check("sample", "--checkpoint", tmp_path / "cut.pt", "--class", "a", "--out", tmp_path / "x.png", "truncated")
    (tmp_path / "text.png").write_text("not an image")
    check("sample", "--checkpoint", tiny_fg_dir, "--image", tmp_path / "text.png", "--out", tmp_path / "x.png",
          "not a readable image")
    Image.new("L", (1, 1)).save(tmp_path / "dot.png")
    check("sample", "--checkpoint", tiny_fg_dir, "--image", tmp_path / "dot.png", "--out", tmp_path / "x.png", "1x1")
    check("sample", "--checkpoint", tiny_fg_dir, "--class", "brick", "--out", tmp_path / "x.txt", ".png")
    check("sample", "--checkpoint", tiny_fg_dir, "--class", "brick", "--guidance", 9, "--out", tmp_path / "x.png",
          "guidance must be in [0, 4]")
    check("sample", "--checkpoint", tiny_fg_dir, "--class", "brick", "--eps-scale", 0.5, "--out", tmp_path / "x.png",
          "eps_scale must be in [1, 2]")
    check("dataset", "--name", tmp_path / "nothing-here", "--out", tmp_path / "d.npz", "unknown dataset")
    check("train", "--steps", 5, "--size", 30, "--out", tmp_path / "r", "divisible")
    check("train", "--steps", 5, "--batch", 6, "--pool", 4, "--out", tmp_path / "r", "multiple of pool")
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "r" / "model.pt").exists()


def error_line(capsys, *args) -> str:
    """Run the command line in this process; its one stderr line, once it is an error with exit code 2."""
    r = cli(capsys, *args)
    one_line_error(r)
    return r.stderr.strip()


def test_outputs_devices_sizes_and_numbers_are_checked_before_any_work(tmp_path, tiny_fg_dir, tiny_mixture_dir,
                                                                     capsys):
    fg = ["--checkpoint", tiny_fg_dir]
    (tmp_path / "file").write_text("")
    (tmp_path / "folder.png").mkdir()
    assert "a file stands where a folder is needed" in error_line(capsys, "sample", *fg, "--class", "brick",
                                                                  "--out", tmp_path / "file" / "x.png")
    if Path("/proc/self").is_dir():             # root may write anywhere, but not into /proc
        assert "cannot write there" in error_line(capsys, "sample", *fg, "--class", "brick", "--out", "/proc/x.png")
    assert "is a folder" in error_line(capsys, "sample", *fg, "--class", "brick", "--out", tmp_path / "folder.png")
    assert "--trajectory" in error_line(capsys, "sample", *fg, "--class", "brick", "--out", tmp_path / "x.png",
                                        "--trajectory", tmp_path / "file" / "t.npz")
    assert "is a file" in error_line(capsys, "train", "--dataset", "ovals", "--steps", 1, "--out", tmp_path / "file")
    assert "a file stands" in error_line(capsys, "evaluate", *fg, "--out", tmp_path / "file" / "e.json")
    assert "unknown device 'tpu'" in error_line(capsys, "sample", *fg, "--class", "brick", "--device", "tpu",
                                                "--out", tmp_path / "x.png")
    assert "in [1, 1024]" in error_line(capsys, "sample", *fg, "--class", "brick", "--n", 100000,
                                        "--out", tmp_path / "x.png")
    assert "GiB" in error_line(capsys, "dataset", "--name", "ovals", "--n-per-class", 10 ** 8,
                               "--out", tmp_path / "d.npz")
    # NaN and infinity pass `v <= 0` tests: each is refused by name
    assert "--lr" in error_line(capsys, "train", "--dataset", "ovals", "--steps", 1, "--lr", "nan",
                                "--out", tmp_path / "r")
    assert "sigma_data" in error_line(capsys, "train", "--dataset", "ovals", "--steps", 1, "--sigma-data", "nan",
                                      "--out", tmp_path / "r")
    assert "loss_sigma_min" in error_line(capsys, "train", "--dataset", "ovals", "--steps", 1,
                                          "--loss-sigma-min", 2, "--out", tmp_path / "r")
    assert "positive channel counts" in error_line(capsys, "train", "--dataset", "ovals", "--steps", 1,
                                                   "--widths", "0,16", "--out", tmp_path / "r")
    assert "alpha must be" in error_line(capsys, "sample", *fg, "--interpolate", "brick", "grass",
                                         "--alpha", "nan", "--out", tmp_path / "x.png")
    assert "--alpha goes with --interpolate" in error_line(capsys, "sample", *fg, "--class", "brick",
                                                           "--alpha", 0.5, "--out", tmp_path / "x.png")
    assert "sigma* must lie between" in error_line(capsys, "sample", *fg, "--switch", "brick", "grass",
                                                   "--sigma-star", 100, "--out", tmp_path / "x.png")
    assert "--sigma0" in error_line(capsys, "sample", *fg, "--class", "brick", "--sigma0", "inf",
                                    "--out", tmp_path / "x.png")
    assert "--seed" in error_line(capsys, "sample", *fg, "--class", "brick", "--seed", -1,
                                  "--out", tmp_path / "x.png")
    assert "finite numbers" in error_line(capsys, "atlas", *fg, "--sigmas", "nan", "--out", tmp_path / "a")
    assert "is a folder, not an image" in error_line(capsys, "sample", *fg, "--image", tmp_path / "folder.png",
                                                     "--out", tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "r" / "model.pt").exists()


def test_each_checkpoint_must_be_of_the_kind_its_option_names(tmp_path, tiny_fg_dir, tiny_mixture_dir, capsys):
    line = error_line(capsys, "evaluate", "--checkpoint", tiny_fg_dir, "--mixture", tiny_fg_dir, "--no-timing")
    assert "--mixture" in line and "a mixture model is needed" in line
    for command, kinds in (("evaluate", "feature_guided or conditional"), ("benchmark", "feature_guided")):
        line = error_line(capsys, command, "--checkpoint", tiny_mixture_dir)
        assert f"a {kinds} model is needed" in line and "--unconditional" not in line
    line = error_line(capsys, "atlas", "--checkpoint", tiny_mixture_dir, "--out", tmp_path / "atlas")
    assert "a feature_guided model is needed" in line
    # a mixture of other classes is no baseline: the comparison would be on crops it never saw
    from engine.train import train
    from conftest import tiny_config
    ovals = train(tiny_config("mixture", steps=1, dataset="ovals"), tmp_path / "ovals_mix", log=lambda *a: None,
                  progress=False)
    for command, *rest in (("evaluate", "--no-timing"), ("report", "--out", tmp_path / "report")):
        line = error_line(capsys, command, "--checkpoint", tiny_fg_dir, "--mixture", ovals, *rest)
        assert "--mixture" in line and "same classes" in line, command


def test_weights_made_for_another_network_are_refused_in_one_line(tmp_path, tiny_fg_dir, capsys):
    import torch
    state = torch.load(Path(tiny_fg_dir) / "model.pt", weights_only=False)
    state["train_config"]["model"]["widths"] = [w * 2 for w in state["train_config"]["model"]["widths"]]
    torch.save(state, tmp_path / "other.pt")
    for args in (("centroids", "--checkpoint", tmp_path / "other.pt"),
                 ("sample", "--checkpoint", tmp_path / "other.pt", "--class", "brick", "--out", tmp_path / "x.png")):
        assert "weights do not match the network config" in error_line(capsys, *args)


def test_flags_are_the_config_fields_with_their_limits(capsys):
    """Each setting's flag is built from its config field: the same default, and a value outside
    its limits is refused in the library's own words."""
    from dataclasses import fields
    from engine.cli import build_parser
    from engine.config import ModelConfig, SamplerSettings, TrainConfig
    from engine.errors import EngineError
    sub = next(a for a in build_parser()._actions if a.dest == "command").choices
    sample_defaults = {a.dest: a.default for a in sub["sample"]._actions}
    for f in fields(SamplerSettings):
        assert sample_defaults[f.name] == f.default
    train_dests = {a.dest for a in sub["train"]._actions}
    for cls in (TrainConfig, ModelConfig):
        assert {f.name for f in fields(cls) if f.metadata.get("help")} <= train_dests
    with pytest.raises(EngineError) as said:
        SamplerSettings(beta=0.0)
    assert str(said.value) in error_line(capsys, "sample", "--class", "a", "--beta", 0, "--out", "x.png")
    with pytest.raises(EngineError) as said:
        TrainConfig(ema=1.0)
    assert str(said.value) in error_line(capsys, "train", "--ema", 1, "--out", "r")
