import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine.checkpoint import MODEL_FILE, STATE_FILE, load_checkpoint, read_file, save_atomic
from engine.centroids import CentroidTable
from engine.errors import EngineError
from engine.train import train

from conftest import tiny_config

ROOT = Path(__file__).resolve().parent.parent


def test_round_trip_rebuilds_the_same_model(tiny_fg_dir, tmp_path):
    a = load_checkpoint(tiny_fg_dir, device="cpu")
    state = read_file(tiny_fg_dir)
    state.pop("path")
    save_atomic(state, tmp_path / "copy.pt")
    b = load_checkpoint(tmp_path / "copy.pt", device="cpu")
    y = torch.rand(3, *a.shape)
    target = a.centroid(0, torch.full((3,), 0.2))
    assert torch.equal(a.denoise(y, target), b.denoise(y, target))
    assert a.train_config == b.train_config and a.classes == b.classes
    assert torch.equal(a.centroids.table, b.centroids.table)


def test_atomic_writes_of_one_file_never_mix_and_a_failed_one_leaves_the_old_file(tmp_path):
    """Two writes of the same cache at once (here one nested inside the other, as two processes may
    interleave) each rename a whole file of their own; a write that fails leaves the file before it
    and nothing beside it."""
    from engine.paths import write_atomic
    path = tmp_path / "cache.bin"
    write_atomic(path, lambda f: f.write(b"old" * 1000))

    def outer(f):
        f.write(b"A" * 5000)
        write_atomic(path, lambda g: g.write(b"B" * 7000))       # finishes first
        f.write(b"A" * 5000)

    write_atomic(path, outer)
    assert path.read_bytes() == b"A" * 10000                     # the last to finish, whole

    def broken(f):
        f.write(b"half")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, broken)
    assert path.read_bytes() == b"A" * 10000
    assert [p.name for p in tmp_path.iterdir()] == ["cache.bin"]


def test_centroid_table_interpolates_in_log_sigma():
    table = CentroidTable(torch.tensor([0.1, 1.0]), torch.tensor([[[0.0], [2.0]]]), torch.zeros(1, 2), ["a"])
    s = torch.tensor([0.1, 10 ** -0.5, 1.0, 5.0, 0.01])
    assert torch.allclose(table.at("a", s)[:, 0], torch.tensor([0.0, 1.0, 2.0, 2.0, 0.0]), atol=1e-6)


def _nearest_centroids(ckpt, images, labels, sigma: float, seed: int):
    """Squared distances (N, K) of phi(x + sigma z) to every class centroid at sigma, and the classes'
    mean phi's squared distances (K, K) to them."""
    import numpy as np
    from engine.atlas import noisy_phi
    phi = noisy_phi(ckpt, images, sigma, seed)
    table = torch.stack([ckpt.centroid(c, sigma) for c in range(len(ckpt.classes))]).cpu().numpy()
    d2 = ((phi[:, None] - table[None]) ** 2).sum(-1)
    means = np.stack([phi[labels == c].mean(0) for c in range(len(ckpt.classes))])
    return d2, ((means[:, None] - table[None]) ** 2).sum(-1)


def test_centroids_concentrate_phi_of_their_class(tiny_fg):
    """The tiny model (40 steps), at sigma 0.1, with noise other than the table's. Its training crops: each
    class's mean phi lies nearer its own centroid than any other (the nearest other one is 41 times as
    far, in squared distance). Held-out crops: 48% of the images lie nearer their own class's centroid
    than any other (chance: 1 in 8); that every image does needs a trained model (at 40 steps the
    handwriting crops mostly lie nearer other centroids)."""
    import numpy as np
    from engine.atlas import held_out
    from engine.data import load_dataset
    cfg = tiny_fg.train_config
    train_set = load_dataset(cfg.dataset, "train", cfg.model.size, cfg.model.channels, cfg.n_per_class,
                             cfg.crops_seed)
    _, means = _nearest_centroids(tiny_fg, train_set.images, train_set.labels, 0.1, seed=1)
    k = len(tiny_fg.classes)
    own = np.diag(means)
    nearest_other = np.where(np.eye(k, dtype=bool), np.inf, means).min(1)
    assert np.all(own < nearest_other), (own, nearest_other)
    images, labels, _ = held_out(tiny_fg, 16)
    d2, _ = _nearest_centroids(tiny_fg, images, labels, 0.1, seed=1)
    nearer_own = d2.argmin(1) == labels
    assert nearer_own.mean() >= 3 / k, nearer_own.mean()            # measured 0.48; chance 1 / k


def _run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, **kw)


def test_resume_after_kill_9_matches_an_uninterrupted_run(tmp_path):
    # with a weight average, so its state (and count) must survive the kill too
    args = ["train", "--steps", "40", "--batch", "8", "--widths", "8,16", "--size", "16", "--n-per-class", "16",
            "--checkpoint-every", "10", "--device", "cpu", "--ema", "0.9", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight = _run_cli(*args, "--out", str(tmp_path / "a"), env=env)
    assert straight.returncode == 0, straight.stderr

    out = tmp_path / "b"
    proc = subprocess.Popen([sys.executable, "-m", "engine", *args, "--out", str(out)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / STATE_FILE).exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(out / STATE_FILE, weights_only=False)["step"]
    assert killed_at % 10 == 0 and killed_at < 40, "the kill should land mid-run"
    assert not (out / MODEL_FILE).exists()

    # as a user resumes: without repeating --steps (the run keeps its own 40)
    again = [a for a in args if a not in ("--steps", "40")]
    resumed = _run_cli(*again, "--out", str(out), "--resume", env=env)
    assert resumed.returncode == 0, resumed.stderr
    a, b = (torch.load(p / MODEL_FILE, weights_only=False) for p in (tmp_path / "a", out))
    assert a["step"] == b["step"] == 40
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    # model.pt holds the average, train_state.pt both it and the trained weights
    state = torch.load(out / STATE_FILE, weights_only=False)
    for k, v in b["model"].items():
        assert torch.equal(v, state["ema"]["module." + k]), k
    assert any(not torch.equal(v, state["model"][k]) for k, v in b["model"].items() if "weight" in k)


def test_resume_keeps_or_extends_the_runs_length(tmp_path):
    quiet = dict(log=lambda *a: None, progress=False)
    train(tiny_config(steps=2), tmp_path, **quiet)
    with pytest.raises(EngineError, match="already at step 2"):
        train(tiny_config(steps=1), tmp_path, resume=True, **quiet)
    assert read_file(train(tiny_config(steps=None), tmp_path, resume=True, **quiet))["step"] == 2
    assert read_file(train(tiny_config(steps=3), tmp_path, resume=True, **quiet))["step"] == 3
    with pytest.raises(EngineError, match="--steps"):
        train(tiny_config(steps=None), tmp_path / "new", **quiet)


def test_a_cool_down_branched_from_a_snapshot_is_a_run_of_that_length(tmp_path):
    """A constant-rate run writes snapshots with their resumable state; resuming a copy of one with
    --steps STEP + cooldown trains exactly what a run of that length would have (the schedule is a
    function of the step and the run's length), so one long run yields models of several lengths."""
    import shutil
    quiet = dict(log=lambda *a: None, progress=False)
    settings = dict(schedule="constant", cooldown=2, warmup=1, snapshot_every=2, checkpoint_every=3, ema=0.5)
    train(tiny_config(steps=8, **settings), tmp_path / "long", **quiet)
    snap = tmp_path / "long" / "snapshots" / "step_4"
    assert read_file(snap / STATE_FILE)["step"] == read_file(snap / MODEL_FILE)["step"] == 4
    (tmp_path / "branch").mkdir()
    shutil.copyfile(snap / STATE_FILE, tmp_path / "branch" / STATE_FILE)
    branched = read_file(train(tiny_config(steps=6, **settings), tmp_path / "branch", resume=True, **quiet))
    straight = read_file(train(tiny_config(steps=6, **settings), tmp_path / "straight", **quiet))
    assert branched["step"] == straight["step"] == 6
    for k in straight["model"]:
        assert torch.equal(branched["model"][k], straight["model"][k]), k
    # and the long run's own snapshot at 6 (no cool-down yet) is a different model
    at_6 = read_file(tmp_path / "long" / "snapshots" / "step_6" / MODEL_FILE)
    assert any(not torch.equal(at_6["model"][k], straight["model"][k]) for k in straight["model"])


def test_new_run_refuses_to_overwrite(tmp_path):
    cfg = tiny_config(steps=2)
    train(cfg, tmp_path, log=lambda *a: None, progress=False)
    with pytest.raises(EngineError, match="--resume"):
        train(cfg, tmp_path, log=lambda *a: None, progress=False)



def test_init_fine_tunes_from_another_checkpoint(tiny_fg_dir, tmp_path):
    # the network comes from the starting checkpoint (even if cfg asks for another), the
    # schedule and loss from this run; step 0 starts from the old weights, not a new init
    start = read_file(tiny_fg_dir)
    cfg = tiny_config(steps=3, sigma_data=0.05)
    cfg.model.widths = (4, 8)
    out = train(cfg, tmp_path / "ft", log=lambda *a: None, progress=False, init=tiny_fg_dir)
    state = read_file(out)
    assert list(state["train_config"]["model"]["widths"]) == list(start["train_config"]["model"]["widths"])
    assert state["train_config"]["sigma_data"] == 0.05 and state["step"] == 3
    assert state["info"]["init"]["step"] == start["step"]
    moved = [(state["model"][k] - v).abs().max() for k, v in start["model"].items() if "running" not in k]
    assert 0 < max(moved) < 0.01          # trained on (3 warm-up steps), from where it started
    with pytest.raises(EngineError, match="cannot be combined"):
        train(cfg, tmp_path / "ft", resume=True, log=lambda *a: None, progress=False, init=tiny_fg_dir)
    with pytest.raises(EngineError, match="mixture model"):
        train(tiny_config("mixture", steps=1), tmp_path / "m", log=lambda *a: None, progress=False,
              init=tiny_fg_dir)

def test_init_fine_tunes_onto_another_class_list(tiny_fg_dir, tmp_path):
    # a feature-guided model's network does not depend on the classes: it moves to textures-v4
    # (gravel replaced), and its centroids and class names are those of the new list
    out = train(tiny_config(steps=2, dataset="textures-v4"), tmp_path / "v4", log=lambda *a: None,
                progress=False, init=tiny_fg_dir)
    ft = load_checkpoint(out, device="cpu")
    assert "blobs" in ft.classes and "gravel" not in ft.classes and ft.train_config.dataset == "textures-v4"
    assert read_file(out)["info"]["init"]["train_config"]["dataset"] == "textures"
    # a conditional model's class embeddings are one per class: as many classes, or a clear error
    conditional = train(tiny_config("conditional", steps=1), tmp_path / "c", log=lambda *a: None, progress=False)
    train(tiny_config("conditional", steps=1, dataset="textures-v4"), tmp_path / "c4", log=lambda *a: None,
          progress=False, init=conditional)
    with pytest.raises(EngineError, match="class embeddings"):
        train(tiny_config("conditional", steps=1, dataset="ovals"), tmp_path / "co", log=lambda *a: None,
              progress=False, init=conditional)


def test_bad_checkpoints_give_clear_errors(tiny_fg_dir, tmp_path):
    with pytest.raises(EngineError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(EngineError, match="no model.pt"):
        load_checkpoint(tmp_path)
    data = (Path(tiny_fg_dir) / MODEL_FILE).read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(EngineError, match="truncated"):
        load_checkpoint(tmp_path / "truncated.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(EngineError):
        load_checkpoint(tmp_path / "text.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(EngineError, match="not a checkpoint of this tool"):
        load_checkpoint(tmp_path / "other.pt")
    state = read_file(tiny_fg_dir)
    state.pop("path")
    state["train_config"]["model"]["widths"] = [8, 32]
    save_atomic(state, tmp_path / "mismatch.pt")
    with pytest.raises(EngineError, match="do not match"):
        load_checkpoint(tmp_path / "mismatch.pt")


def test_stratified_sigmas_cover_each_stratum_once():
    import math
    from engine.loss import stratified_sigmas
    s = stratified_sigmas(8, 1.2, torch.Generator().manual_seed(0))
    assert s.shape == (8,) and bool(((s > 0) & (s <= 1.2)).all())
    # 4 uniform draws land one in each quarter of [0, 1.2]; 4 log-uniform in each quarter of log range
    lo, hi = math.log(0.005), math.log(1.2)
    uni = {int(v // 0.3) for v in s.tolist()}
    logq = {int((math.log(v) - lo) / ((hi - lo) / 4)) for v in s.tolist()}
    assert uni >= {0, 1, 2, 3} and logq >= {0, 1, 2, 3}


def test_loss_weights_meet_plain_mse_at_large_sigma():
    from engine.loss import loss_weights
    sigma = torch.tensor([0.01, 0.25, 10.0])
    w = loss_weights(sigma, 0.25)
    # noise-prediction weight (sigma_data / sigma)^2 at small sigma, 2 at sigma_data, ~1 far above
    assert torch.allclose(w, torch.tensor([1 + 625.0, 2.0, 1.000625]))
    assert torch.equal(loss_weights(sigma, 0.0), torch.ones(3))


def test_loss_weights_drop_the_noise_levels_below_the_floor():
    from engine.loss import loss_weights
    sigma = torch.tensor([0.01, 0.1, 0.25])
    assert torch.equal(loss_weights(sigma, 0.0, 0.1), torch.tensor([0.0, 1.0, 1.0]))
    assert torch.allclose(loss_weights(sigma, 0.25, 0.2), torch.tensor([0.0, 0.0, 2.0]))
