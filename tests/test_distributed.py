"""Training on several processes (torchrun, gloo on CPU), streamed folders, and the GPU path.

Each torchrun launch costs a few seconds here (process start, rendezvous); the runs are tiny."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import dist_worker

ROOT = Path(__file__).resolve().parent.parent
TORCHRUN = Path(sys.executable).with_name("torchrun")
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TINY = ["--dataset", "ovals", "--widths", "8,16", "--size", "16", "--n-per-class", "16", "--batch", "16",
        "--pool", "4", "--quiet", "--device", "cpu"]
# Two processes compute the norms' statistics and the loss over the same whole batch as one
# process does; only the order of float additions differs (sums split over two processes).
# Measured over 6 steps: losses within 5.4e-8 relative, weights within 6e-8.
LOSS_RTOL = 1e-4

pytestmark = pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed")


def torchrun(*args, nproc: int = 2, wait: bool = True, timeout: int = 300):
    cmd = [str(TORCHRUN), "--standalone", "--nproc_per_node", str(nproc), *map(str, args)]
    if not wait:
        return subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


def test_two_processes_stay_in_step_and_follow_one_process(tmp_path):
    steps = 6
    r = torchrun(ROOT / "tests" / "dist_worker.py", tmp_path / "two", steps)
    assert r.returncode == 0, r.stderr[-3000:]
    ranks = [torch.load(tmp_path / "two" / f"rank{i}.pt") for i in range(2)]
    for name, w in ranks[0]["weights"].items():            # gradients and norm statistics in step
        assert torch.equal(w, ranks[1]["weights"][name]), name
    assert ranks[0]["losses"] == ranks[1]["losses"]        # the whole batch's loss, on each process

    torch.set_num_threads(1)
    one = dist_worker.run(tmp_path / "one", steps)          # one process, the same global batches
    assert len(one["losses"]) == steps
    np.testing.assert_allclose(ranks[0]["losses"], one["losses"], rtol=LOSS_RTOL)
    for name, w in one["weights"].items():
        torch.testing.assert_close(ranks[0]["weights"][name], w, rtol=1e-3, atol=1e-5)
    # rank 0 wrote the run; its checkpoint is the one-process format
    from engine.checkpoint import load_checkpoint
    ckpt = load_checkpoint(tmp_path / "two", device="cpu")
    assert ckpt.step == steps and ckpt.centroids is not None


def _two_machines(out: Path) -> tuple[list[int], list[tuple[str, str]]]:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    jobs = [subprocess.Popen([str(TORCHRUN), "--nnodes", "2", "--node-rank", str(r), "--nproc_per_node", "1",
                              "--rdzv-endpoint", f"127.0.0.1:{port}", "-m", "engine", "train", *TINY,
                              "--steps", "3", "--out", str(out)],
                             cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for r in range(2)]
    outs = [j.communicate(timeout=300) for j in jobs]
    return [j.returncode for j in jobs], outs


def test_two_machines_meet_at_a_rendezvous_endpoint(tmp_path):
    """--nnodes 2 --node-rank R --rdzv-endpoint HOST:PORT, both "machines" on 127.0.0.1."""
    codes, outs = _two_machines(tmp_path / "run")
    if codes != [0, 0] and any("terminate called without an active exception" in o[1] for o in outs):
        # torchrun's own agents can race at exit (the store's host leaving while the other agent
        # waits at the exit barrier) after the run has finished: once more, from scratch
        codes, outs = _two_machines(tmp_path / "again")
        tmp_path = tmp_path / "again"
    else:
        tmp_path = tmp_path / "run"
    assert codes == [0, 0], outs[0][1][-2000:] + outs[1][1][-2000:]
    assert "2 processes" in outs[0][0] and outs[1][0].strip() == ""    # the second machine's rank 1 is silent
    from engine.checkpoint import load_checkpoint
    assert load_checkpoint(tmp_path, device="cpu").step == 3


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_resume_under_torchrun_after_a_process_is_killed(tmp_path):
    from engine.checkpoint import load_checkpoint, read_file
    from engine.config import SamplerSettings
    from engine.sampler import ClassTarget, run
    out = tmp_path / "run"
    job = torchrun("-m", "engine", "train", *TINY, "--steps", "5000", "--checkpoint-every", "2", "--out", out,
                   wait=False)
    deadline = time.time() + 240
    while not (out / "train_state.pt").exists() and time.time() < deadline and job.poll() is None:
        time.sleep(0.2)
    assert (out / "train_state.pt").exists(), job.stderr.read() if job.poll() is not None else "no checkpoint"
    workers = _children(job.pid)
    assert len(workers) == 2
    os.kill(max(workers), signal.SIGKILL)                  # one process dies mid-run
    assert job.wait(timeout=120) != 0                      # torchrun stops the other one
    stopped = read_file(out / "train_state.pt")["step"]
    assert 2 <= stopped < 5000

    r = torchrun("-m", "engine", "train", "--resume", "--steps", stopped + 4, "--out", out, "--quiet")
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"resuming at step {stopped}" in r.stdout and r.stdout.count("resuming at step") == 1  # rank 0 speaks
    ckpt = load_checkpoint(out, device="cpu")
    assert ckpt.step == stopped + 4
    target = None if ckpt.kind == "mixture" else ClassTarget(ckpt.classes[0])
    x, _ = run(ckpt, target, n=2, settings=SamplerSettings(max_steps=5))
    assert x.shape == (2, 1, 16, 16) and torch.isfinite(x).all()


@pytest.mark.parametrize("case", ["batch", "empty folder"])
def test_bad_input_stops_every_process_with_one_line(tmp_path, case):
    if case == "batch":                                     # 3 pools of 4 do not split in two
        args = [*TINY, "--batch", "12", "--steps", "3"]
        words = ["batch 12", "2 processes", "multiple of 8"]
    else:
        (tmp_path / "empty").mkdir()
        args = [*TINY, "--dataset", tmp_path / "empty", "--steps", "3"]
        words = ["empty", "0 readable image"]
    r = torchrun("-m", "engine", "train", *args, "--out", tmp_path / "run", timeout=120)
    assert r.returncode != 0
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, r.stderr                        # said once, not once per process
    assert all(w in lines[0] for w in words), lines[0]
    assert "exitcode  : 2" in r.stderr                      # both processes exit non-zero (torchrun's report)
    assert "engine/" not in r.stderr                        # no process's own traceback


def _write_folder(root: Path, classes: int, per_class: int, side: int) -> None:
    rng = np.random.default_rng(0)
    for c in range(classes):
        d = root / f"class{c}"
        d.mkdir(parents=True)
        base = rng.uniform(0, 255, 3)
        for i in range(per_class):
            img = np.clip(base + rng.normal(0, 40, (side, side, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(d / f"{i:05d}.png", compress_level=1)


STREAM_CHECK = """
import json, resource, sys
sys.path.insert(0, {root!r})
def rss(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
from engine.config import ModelConfig, TrainConfig
from engine.train import train
import engine.data
def refuse(*a, **k):
    raise AssertionError("the folder was loaded whole")
engine.data.folder = refuse
before = rss("VmRSS:")
train(TrainConfig(dataset={folder!r}, stream=True, workers=0, steps=3, batch=8, pool=4, checkpoint_every=3,
                  device="cpu", model=ModelConfig(channels=3, size=16, widths=(8, 16))),
      {out!r}, log=lambda *a: None, progress=False)
print(json.dumps({{"growth": rss("VmHWM:") - before}}))
"""


def _peak_growth(folder: Path, out: Path) -> int:
    """Peak memory of a streamed training run on folder, above the process's size before it."""
    import json
    code = STREAM_CHECK.format(root=str(ROOT), folder=str(folder), out=str(out))
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])["growth"]


def test_streamed_folder_larger_than_the_budget_trains_without_loading_it_whole(tmp_path):
    """3000 colour images of 64x64: 147 MB decoded as float32. Streamed, the run's peak memory is
    that of a run on half as many (the network, torch's kernels, the capped samples for the data
    mean and the centroids) plus less than a tenth of the whole folder: memory does not grow with
    the number of images (measured: 135.6 MiB above the start both times)."""
    classes, side = 5, 64
    whole = classes * 600 * 3 * side * side * 4
    budget = whole // 10
    _write_folder(tmp_path / "half", classes, 300, side)
    _write_folder(tmp_path / "folder", classes, 600, side)
    half = _peak_growth(tmp_path / "half", tmp_path / "half_run")
    large = _peak_growth(tmp_path / "folder", tmp_path / "run")
    print(f"peak growth: {half / 2**20:.1f} MiB (1500 images), {large / 2**20:.1f} MiB (3000 images)")
    assert large - half < budget, (large, half, budget)

    from engine.checkpoint import load_checkpoint
    from engine.config import SamplerSettings
    from engine.sampler import ClassTarget, run
    ckpt = load_checkpoint(tmp_path / "run", device="cpu")
    assert ckpt.shape == (3, 16, 16) and len(ckpt.classes) == classes
    x, _ = run(ckpt, ClassTarget("class0"), n=2, settings=SamplerSettings(max_steps=5))
    assert x.shape == (2, 3, 16, 16)


def test_bf16_trains_on_a_cpu_and_says_so(tmp_path):
    from engine.checkpoint import read_file
    from engine.config import ModelConfig, TrainConfig
    from engine.train import train
    cfg = TrainConfig(dataset="ovals", steps=2, batch=8, n_per_class=8, device="cpu", precision="bf16",
                      model=ModelConfig(widths=(8, 16), size=16))
    said = []
    info = read_file(train(cfg, tmp_path / "run", log=said.append, progress=False))["info"]
    assert info["precision"] == "bf16" and info["asked"] == "bf16" and not info["compiled"]
    assert any(line.startswith("precision bf16 (") and line.endswith("; eager") for line in said)


# bfloat16 keeps 8 significant bits (relative rounding 2^-9 = 0.2% per operation). Compared: the
# network's residual f(y) - y (the predicted noise: what the sampler steps along), RMS error over
# RMS. The same comparison under CPU autocast, shipped model, batch 16: 0.78% (0.45% of the
# denoised image) - measured here, where training refuses bf16. CUDA's bf16 kernels accumulate in
# float32 as well; 3% leaves a margin for them (not yet measured on CUDA: the test prints the error
# it finds, `pytest -m gpu -s` on a machine with a GPU).
BF16_RTOL = 0.03


@pytest.mark.gpu
def test_bf16_denoiser_within_tolerance_of_fp32(tiny_fg):
    from engine.checkpoint import Checkpoint, read_file
    ckpt = Checkpoint(read_file(tiny_fg.path), "cuda")
    y = torch.rand(64, *ckpt.shape, generator=torch.Generator().manual_seed(0)).cuda()
    target = ckpt.centroid(0, torch.full((64,), 0.5))
    exact = ckpt.denoise(y, target) - y
    ckpt.use_precision("bf16")
    fast = ckpt.denoise(y, target) - y
    assert fast.dtype == torch.float32
    err = float((fast - exact).pow(2).mean().sqrt() / exact.pow(2).mean().sqrt())
    print(f"bf16 vs fp32 on {torch.cuda.get_device_name()}: relative RMS error of the residual {err:.4%}")
    assert 0 < err < BF16_RTOL, err                      # 0: autocast never ran in bf16


def test_paper_recipe_is_a_valid_13m_colour_80px_network():
    from engine import recipe
    from engine.network import UNet
    r = recipe.load_recipe(ROOT / "recipes" / "paper.toml")
    cfg, on_cuda = r.config(), r.config(cuda=True)
    assert (cfg.model.channels, cfg.model.size, cfg.batch, cfg.steps, cfg.stream) == (3, 80, 512, 464000, True)
    assert 12e6 < sum(p.numel() for p in UNet(cfg.model).parameters()) < 14e6
    assert (on_cuda.precision, on_cuda.compile) == ("bf16", "on") and cfg.precision == "auto"
    assert cfg.batch % (cfg.pool * 8) == 0                 # splits over 8 GPUs in whole pools


def test_each_process_reads_its_share_of_every_streamed_batch():
    from engine.stream import StepSampler
    draw = lambda s: (torch.arange(8) + 100 * s, torch.arange(8) + 1000 * s)   # images, partners
    alone = list(StepSampler(draw, 2, 5, 0, 1))
    shares = [list(StepSampler(draw, 2, 5, r, 2)) for r in range(2)]
    assert len(alone) == 3 and all(len(s) == 3 for s in shares)
    for step, whole in enumerate(alone):
        halves = [shares[r][step] for r in range(2)]
        assert halves[0] == whole[0:4] + whole[8:12] and halves[1] == whole[4:8] + whole[12:16]


def test_texture_photos_are_cropped_on_the_fly_from_a_cache(tmp_path, monkeypatch):
    import engine.stream as stream
    from engine.data import tile_split
    monkeypatch.setattr(stream, "CACHE", tmp_path / "cache")
    rng = np.random.default_rng(0)
    photos = tmp_path / "photos"
    photos.mkdir()
    for k in range(2):
        Image.fromarray(rng.integers(0, 256, (100, 120, 3), dtype=np.uint8)).save(photos / f"photo{k}.png")
    s = stream.FolderStream(photos, "train", size=16, channels=3, n_per_class=10, seed=1)
    assert s.classes == ["photo0", "photo1"] and len(s) == 20 and len(list((tmp_path / "cache").iterdir())) == 2
    x = s[13]
    assert x.shape == (3, 16, 16) and x.dtype == np.uint8
    assert np.array_equal(x, stream.FolderStream(photos, "train", 16, 3, 10, seed=1)[13])   # deterministic
    photo = np.asarray(Image.open(photos / "photo1.png")).transpose(2, 0, 1)
    tiles = tile_split(photo.shape[1:], 24)["train"]
    # the crop lies inside one training tile of its photograph
    assert any(np.array_equal(x, photo[:, t + dy:t + dy + 16, l + dx:l + dx + 16])
               for t, l in tiles for dy in range(9) for dx in range(9))


def test_benchmark_train_reports_fp32_and_the_policy_side_by_side():
    import json
    # bf16 uncompiled: both passes quick on any CPU (emulated where it has no bfloat16 units)
    r = subprocess.run([sys.executable, "-m", "engine", "benchmark", "--train", "--steps", "2", "--batch", "8",
                        "--widths", "8,16", "--size", "16", "--device", "cpu", "--precision", "bf16",
                        "--compile", "off"],
                       cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    fp32, policy = out["fp32_eager"], out["policy"]
    assert (fp32["precision"], fp32["compile"], policy["precision"], policy["asked"]) == ("fp32", "off", "bf16", "bf16")
    for figures in (fp32, policy):
        assert figures["images_per_second"] > 0 and figures["timed_steps"] == 2 and figures["processes"] == 1
        assert math.isfinite(figures["fraction_of_matmul_rate"]) and figures["step_gflop"] > 0
    assert out["policy_over_fp32_eager"] == pytest.approx(policy["images_per_second"] / fp32["images_per_second"])


def test_a_staged_recipe_trains_under_torchrun_and_refuses_a_taken_folder(tmp_path):
    from test_recipe import TINY as RECIPE
    (tmp_path / "r.toml").write_text(RECIPE)
    args = ["-m", "engine", "train", "--recipe", tmp_path / "r.toml", "--out", tmp_path / "run", "--quiet"]
    r = torchrun(*args)
    assert r.returncode == 0, r.stderr
    from engine.checkpoint import read_file
    final = read_file(tmp_path / "run" / "model.pt")
    assert final["step"] == 3 and final["info"]["recipe"]["stage"] == "detail"
    again = torchrun(*args)
    assert again.returncode != 0 and again.stderr.count("error: ") == 1 and "already holds a run" in again.stderr
