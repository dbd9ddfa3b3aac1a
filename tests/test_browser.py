"""End to end in headless Debian Chromium (Python Playwright): open the page, use every view,
check the plots rendered, and that the page asked nothing of any host but 127.0.0.1.

Screenshots (1280x800) go to test-artifacts/ (git-ignored). Skipped, with the reason, when
/usr/bin/chromium is absent (`make test` installs it with apt-get; never `playwright install`).
"""
from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from engine.data import TEXTURES
from app_fixtures import app_server, bad_uploads, tiny_atlas, tiny_classifier  # noqa: F401  (fixtures)

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL = {"127.0.0.1"}

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="/usr/bin/chromium not found: install Debian's chromium "
                                       "(apt-get install chromium; `make test` does it) to run browser tests")


@pytest.fixture(scope="module")
def browser_page(app_server):
    from playwright.sync_api import sync_playwright
    ARTIFACTS.mkdir(exist_ok=True)
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.on("request", lambda r: requests.append(r.url))
        page = context.new_page()
        page.set_default_timeout(90_000)
        t0 = time.perf_counter()
        page.goto(app_server.url)
        page.wait_for_selector("#emb-map .js-plotly-plot .scatterlayer .point")
        page.load_seconds = time.perf_counter() - t0
        page.requests = requests
        yield page
        browser.close()


def shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
    page.wait_for_timeout(300)


def plot_rendered(page, selector: str, inner: str = ".point") -> int:
    page.wait_for_selector(f"{selector} .js-plotly-plot {inner}")
    return page.locator(f"{selector} .js-plotly-plot {inner}").count()


def queue_joins(page) -> int:
    return sum("/queue/join" in u for u in page.requests)


def test_embeddings_view_renders_and_a_click_shows_the_image(browser_page):
    page = browser_page
    assert page.load_seconds < 30
    assert plot_rendered(page, "#emb-map") >= 8 * len(TEXTURES)   # every held-out point drawn (8 per class)
    shot(page, "01_embeddings")
    point = page.locator("#emb-map .scatterlayer .trace").nth(2).locator(".point").first
    box = point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("#emb-gallery img")
    assert re.search(r"class \*?\*?\w+", page.locator("#emb-gallery").inner_text() + page.content())
    page.get_by_label("PCA").check()
    page.wait_for_function("() => document.querySelector('#emb-note').innerText.includes('PCA')")
    shot(page, "02_embeddings_clicked")


def test_sample_streams_and_offers_downloads(browser_page):
    page = browser_page
    tab(page, "Sample")
    page.click("#sample-run")
    page.wait_for_selector("#sample-y img")                    # a live frame arrives before the end
    page.wait_for_selector("#sample-status .done", timeout=120_000)
    page.wait_for_selector("#sample-grid img")
    page.wait_for_selector("#sample-real img")                 # real crops of the class, to compare
    assert "independent classifier" in page.locator("#sample-status").inner_text()
    names = page.locator("#sample-files").inner_text()
    for ext in (".png", ".gif", ".npy", ".json"):
        assert ext in names
    shot(page, "03_sample")


def test_upload_conditioning_images_and_refuse_a_bad_one(browser_page, tmp_path):
    page = browser_page
    tab(page, "Sample")
    files = bad_uploads(tmp_path)
    page.get_by_label("uploaded images").check()
    page.locator("#sample-upload input[type=file]").set_input_files([files["rgba.png"][0], files["palette.png"][0]])
    page.wait_for_selector("#sample-preview img")
    page.click("#sample-run")
    page.wait_for_function("() => { const s = document.querySelector('#sample-status');"
                           " return s && s.innerText.includes('done') && s.innerText.includes('2 uploaded'); }",
                           timeout=120_000)
    shot(page, "04_sample_uploaded")
    page.locator("#sample-upload input[type=file]").set_input_files([files["not_an_image.png"][0]])
    page.wait_for_function("() => document.querySelector('#sample-upload-msg').innerText"
                           ".includes('not_an_image.png: not a readable image')")
    shot(page, "05_bad_upload_refused")
    page.click("#sample-run")                                   # sampling with it: refused in a toast
    page.get_by_text("not a readable image").nth(1).wait_for()
    page.locator(".toast-close").first.click()
    page.get_by_label("class", exact=True).check()


def test_interpolation_samples_once_when_the_slider_is_released(browser_page):
    page = browser_page
    tab(page, "Interpolate")
    slider = page.locator("#interp-alpha input[type=range]")
    box = slider.bounding_box()
    before = queue_joins(page)
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.5, y)
    page.mouse.down()
    for f in (0.55, 0.6, 0.65, 0.7, 0.75, 0.8):                 # a drag of several steps
        page.mouse.move(box["x"] + box["width"] * f, y)
        page.wait_for_timeout(60)
    page.mouse.up()
    page.wait_for_selector("#interp-grid img")
    page.wait_for_function("() => document.querySelector('#interp-summary').innerText.includes('alpha')")
    assert queue_joins(page) - before == 1                       # one run for the whole drag
    assert plot_rendered(page, "#interp-probs", ".bars .point") >= 2
    shot(page, "06_interpolate")


def test_trajectories_and_the_step_scrubber(browser_page):
    page = browser_page
    tab(page, "Trajectories")
    page.click("#traj-run")
    page.wait_for_selector("#traj-pic img", timeout=120_000)
    assert plot_rendered(page, "#traj-dist", ".scatterlayer .trace") >= 1
    assert plot_rendered(page, "#traj-map") > 10
    page.wait_for_function("() => document.querySelector('#traj-step-note').innerText.includes('Step')")
    first = page.locator("#traj-pic img").get_attribute("src")
    slider = page.locator("#traj-step input[type=range]")
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.99, y)          # drag the handle from the end
    page.mouse.down()
    for f in (0.8, 0.6, 0.4, 0.3):
        page.mouse.move(box["x"] + box["width"] * f, y)
        page.wait_for_timeout(80)
    page.mouse.up()
    page.wait_for_function("(src) => { const i = document.querySelector('#traj-pic img');"
                           " return i && i.src !== src; }", arg=first)
    note = page.locator("#traj-step-note").inner_text()
    step, last = map(int, re.search(r"Step (\d+) of (\d+)", note).groups())
    assert 0 < step < last
    shot(page, "07_trajectories")


def test_distances_view(browser_page):
    page = browser_page
    tab(page, "Distances")
    page.click("#dist-run")
    plot_rendered(page, "#dist-centroid", ".heatmaplayer")
    plot_rendered(page, "#dist-density", ".heatmaplayer")
    assert plot_rendered(page, "#dist-scatter") >= 3
    page.click("#dist-pair-run")
    page.wait_for_selector("#dist-b img", timeout=120_000)
    shot(page, "08_distances")


def test_denoise_view(browser_page):
    page = browser_page
    tab(page, "Denoise")
    page.wait_for_selector("#den-pick img")
    page.locator("#den-pick button").nth(3).click()
    page.click("#den-run")
    page.wait_for_selector("#den-out img")
    assert plot_rendered(page, "#den-fig", ".bars .point") >= 2
    shot(page, "09_denoise")


def test_model_view(browser_page):
    page = browser_page
    tab(page, "Model")
    page.get_by_text("UNet with channel widths").wait_for()
    shot(page, "10_model")


def test_the_page_requested_nothing_beyond_127_0_0_1(browser_page):
    hosts = {urlparse(u).hostname for u in browser_page.requests if urlparse(u).scheme in ("http", "https", "ws", "wss")}
    schemes = {urlparse(u).scheme for u in browser_page.requests}
    assert hosts <= LOCAL, f"requests to {hosts - LOCAL}"
    assert schemes <= {"http", "ws", "data", "blob"}, schemes
    assert len(browser_page.requests) > 10
