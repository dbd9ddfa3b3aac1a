"""Benchmark the app against its bars (docs/app.md), on this machine, and print the figures (JSON).

    python scripts/bench_app.py [--checkpoint DIR] [--port 7870] [--threads N] [--out FILE]

1. page usable: seconds from starting `python app.py` until the page in headless Chromium
   shows the embedding map with its points (bar: 20 s); without /usr/bin/chromium, until
   /embedding answers through gradio_client. The server's own log line says when the
   models and page were ready.
2. first streamed frame of a 16-sample /sample call, and the whole batch (bars: 1 s, 10 s):
   median of --repeats calls, each with its own seed.
3. five /sample calls of 16 samples from five clients at once: every call's completion time,
   and whether each returned the engine's samples for its own class and seed (at the server's
   precision; its network is compiled, so to rounding: nearer its own than any other call's).
4. 8 interpolation samples through /interpolate, as a slider drag asks for them: the median call
   over alphas, after the server's background compile has finished (its log says when).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"the app exited with code {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not answer within {timeout} s")


def page_usable(url: str, t_start: float) -> dict:
    if not CHROMIUM.exists():
        from gradio_client import Client
        Client(url, verbose=False).predict(api_name="/embedding")
        return {"page_usable_s": time.perf_counter() - t_start, "page_check": "gradio_client /embedding"}
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        external = []
        page.on("request", lambda r: external.append(r.url) if not r.url.startswith(
            ("http://127.0.0.1", "data:", "blob:")) else None)
        page.goto(url)
        page.wait_for_selector("#emb-map .js-plotly-plot .scatterlayer .point", timeout=120_000)
        usable = time.perf_counter() - t_start
        browser.close()
    return {"page_usable_s": usable, "page_check": "chromium: embedding map drawn", "external_requests": external}


def one_sample(url: str, cls: str, seed: int) -> dict:
    from gradio_client import Client

    from engine.sampler import BETA, H0
    client = Client(url, verbose=False)
    t0 = time.perf_counter()
    # the sampler's defaults, as the app's sliders start and as the check below runs the engine
    job = client.submit("class", cls, None, 16, seed, BETA, H0, api_name="/sample")
    first = None
    for _ in job:
        if first is None:
            first = time.perf_counter() - t0
    out = job.result()
    total = time.perf_counter() - t0
    npy = [f for f in out[4] if f.endswith(".npy")][0]
    return {"first_frame_s": first, "total_s": total, "npy": npy, "class": cls, "seed": seed}


def wait_compiled(log_path: Path | None, models: int, timeout: float = 600) -> bool:
    """Until the server's log says its networks were compiled (app/context.py warm_up), or timeout."""
    if log_path is None:
        return False
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        text = log_path.read_text(errors="replace")
        if text.count("network compiled") >= models or "torch.compile failed" in text:
            return "network compiled" in text
        time.sleep(0.5)
    return False


def interpolation_calls(url: str, a: str, b: str, alphas) -> list[float]:
    from gradio_client import Client
    client = Client(url, verbose=False)
    out = []
    for alpha in alphas:
        t0 = time.perf_counter()
        client.predict(a, b, "blend", float(alpha), 0.3, 8, 0, api_name="/interpolate")
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--port", type=int, default=7870)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--precision", default="auto", help="the server's --precision (default auto)")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    url = f"http://127.0.0.1:{a.port}/"
    cmd = [sys.executable, str(ROOT / "app.py"), "--port", str(a.port), "--precision", a.precision, "--no-runs"]
    if a.checkpoint:
        cmd += ["--checkpoint", a.checkpoint]
    if a.threads:
        cmd += ["--threads", str(a.threads)]
    env = dict(os.environ, GRADIO_ANALYTICS_ENABLED="False")
    t_start = time.perf_counter()
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    log_path = ROOT / "test-artifacts" / "bench_app_server.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "python": platform.python_version(),
              "command": " ".join(cmd[1:])}
    try:
        wait_http(url, proc)
        result["server_answers_s"] = time.perf_counter() - t_start
        result.update(page_usable(url, t_start))

        from engine.checkpoint import load_checkpoint
        ckpt = load_checkpoint(a.checkpoint, "cpu")
        policy = ckpt.use_precision(a.precision)             # the engine's check at the server's precision
        result["precision"] = policy.name
        classes = ckpt.classes
        one_sample(url, classes[0], 999)                      # warm-up call, not counted
        runs = [one_sample(url, classes[k % len(classes)], k) for k in range(a.repeats)]
        result["sample16_first_frame_s"] = statistics.median(r["first_frame_s"] for r in runs)
        result["sample16_total_s"] = statistics.median(r["total_s"] for r in runs)
        result["sample16_runs"] = [{k: round(v, 3) for k, v in r.items() if k.endswith("_s")} for r in runs]

        done = [None] * 5
        t0 = time.perf_counter()

        def worker(k):
            done[k] = one_sample(url, classes[k % len(classes)], 500 + k)
            done[k]["finished_at_s"] = time.perf_counter() - t0

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        result["five_concurrent_wall_s"] = time.perf_counter() - t0
        result["five_concurrent_finished_at_s"] = [round(d["finished_at_s"], 2) for d in done]
        result["five_concurrent_first_frame_s"] = [round(d["first_frame_s"], 2) for d in done]

        import numpy as np

        from engine.sampler import ClassTarget, run
        got = [np.load(d["npy"]) for d in done]
        want = [run(ckpt, ClassTarget(d["class"]), n=16, seed=d["seed"])[0].cpu().numpy() for d in done]
        own = [float(np.abs(g - w).max()) for g, w in zip(got, want)]
        others = [min(float(np.abs(g - w).max()) for j, w in enumerate(want) if j != k) for k, g in enumerate(got)]
        # the server's network is compiled, the check's eager: they agree to rounding, not bit for bit, so
        # each call must be nearer its own class and seed than any other call's (and the differences shown)
        result["five_concurrent_correct"] = [o < other for o, other in zip(own, others)]
        result["five_concurrent_max_abs_diff"] = [round(o, 6) for o in own]

        result["compiled_before_interpolation"] = wait_compiled(log_path, 2)
        a_cls, b_cls = classes[:2]
        interpolation_calls(url, a_cls, b_cls, [0.5, 0.5])                 # warm-up calls, not counted
        calls = interpolation_calls(url, a_cls, b_cls, np.linspace(0, 1, 11))
        result["interpolate8_median_s"] = statistics.median(calls)
        result["interpolate8_calls_s"] = [round(c, 3) for c in calls]
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    result = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in result.items()}
    text = json.dumps(result, indent=1)
    print(text)
    if a.out:
        Path(a.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
