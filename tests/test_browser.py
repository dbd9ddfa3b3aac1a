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
from app_fixtures import FIRST, SECOND, bad_uploads

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


def choose(page, elem_id: str, option: str) -> None:
    """Pick an option of a gradio dropdown."""
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=option, exact=True).click()
    page.wait_for_timeout(300)


def test_sample_streams_and_offers_downloads(browser_page):
    page = browser_page
    tab(page, "Sample")
    page.click("#sample-run")
    page.wait_for_selector("#sample-y img")                    # a live frame arrives before the end
    page.wait_for_selector("#sample-status .done", timeout=120_000)
    page.wait_for_selector("#sample-f img")
    page.wait_for_selector("#sample-real img")                 # real crops of the class, to compare
    status = page.locator("#sample-status").inner_text()
    assert "independent classifier" in status and "path of the first" in status
    names = page.locator("#sample-files").inner_text()
    for ext in (".png", ".gif", ".npy", ".json"):
        assert ext in names
    # the samples are drawn at 3x or more: at least 96 pixels per 32-pixel sample on screen
    width = page.locator("#sample-f img").bounding_box()["width"]
    assert width / 4 >= 96, width
    box = page.locator("#sample-f img").bounding_box()
    assert box["y"] + box["height"] <= 800 + 1, box                # in view at 1280x800 without scrolling
    shot(page, "03_sample")


def test_a_stopped_run_says_stopped(browser_page):
    page = browser_page
    tab(page, "Sample")
    n = page.locator("#sample-n input[type=number]")
    n.fill("64")
    n.press("Enter")
    page.click("#sample-run")
    page.wait_for_function("() => document.querySelector('#sample-status').innerText.includes('still denoising')")
    page.click("#sample-stop")
    page.wait_for_function("() => document.querySelector('#sample-status').innerText.includes('stopped')")
    page.wait_for_timeout(1500)                                  # no later frame overwrites it
    assert "stopped" in page.locator("#sample-status").inner_text()
    n.fill("16")
    n.press("Enter")


def test_upload_conditioning_images_and_refuse_a_bad_one(browser_page, tmp_path):
    page = browser_page
    tab(page, "Sample")
    files = bad_uploads(tmp_path)
    choose(page, "sample-condition", "uploaded images")
    page.locator("#sample-upload input[type=file]").set_input_files([files["rgba.png"][0], files["palette.png"][0]])
    page.wait_for_selector("#sample-real img")                 # the uploads as the model sees them
    page.click("#sample-run")
    page.wait_for_function("() => { const s = document.querySelector('#sample-status');"
                           " return s && s.innerText.includes('done') && s.innerText.includes('2 uploaded'); }",
                           timeout=120_000)
    page.wait_for_selector("#sample-f img")
    box = page.locator("#sample-f img").bounding_box()
    assert box["y"] + box["height"] <= 800 + 1, box    # the whole grid in view, below the upload message
    shot(page, "04_sample_uploaded")
    # a second upload replaces the first; both bad files are named, in plain words
    page.locator("#sample-upload input[type=file]").set_input_files([files["not_an_image.png"][0],
                                                                     files["corrupt.png"][0]])
    page.wait_for_function("() => { const m = document.querySelector('#sample-upload-msg').innerText;"
                           " return m.includes('not_an_image.png: not a readable image') && m.includes('corrupt.png'); }")
    msg = page.locator("#sample-upload-msg").inner_text()
    assert "Error" not in msg.replace("Refused", "")
    assert "rgba.png" not in page.locator("#sample-upload").inner_text()
    shot(page, "05_bad_upload_refused")
    page.click("#sample-run")                   # sampling with them: the view is cleared and says why
    page.wait_for_function("() => document.querySelector('#sample-status .error') !== null")
    assert "not a readable image" in page.locator("#sample-status").inner_text()
    assert "done" not in page.locator("#sample-status").inner_text()
    assert page.locator("#sample-f img").count() == 0 and page.locator("#sample-y img").count() == 0
    shot(page, "05b_sample_error_cleared")
    choose(page, "sample-condition", "class")


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
    first = page.locator("#traj-pic img").first.get_attribute("src")
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


def test_distances_open_at_once_and_a_scatter_click_samples_the_pair(browser_page):
    page = browser_page
    tab(page, "Distances")                                       # drawn on opening, without a click
    plot_rendered(page, "#dist-centroid", ".heatmaplayer")
    plot_rendered(page, "#dist-density", ".heatmaplayer")
    assert plot_rendered(page, "#dist-scatter") >= 3
    page.wait_for_function("() => document.querySelector('#dist-text').innerText.includes('correlation')")
    labels = page.locator("#dist-scatter .textpoint").count()
    assert labels >= 3                                           # every point names its pair
    point = page.locator("#dist-scatter .scatterlayer .point").first
    box = point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("#dist-b img", timeout=120_000)
    a = page.locator("#dist-a-class input").input_value()
    b = page.locator("#dist-b-class input").input_value()
    assert a != b and a in TEXTURES and b in TEXTURES
    shot(page, "08_distances")


def test_denoise_runs_when_a_test_image_is_clicked(browser_page):
    page = browser_page
    tab(page, "Denoise")
    page.wait_for_selector("#den-pick img")
    page.locator("#den-pick button").nth(3).click()              # no Denoise click: the pick runs it
    page.wait_for_selector("#den-out img")
    assert plot_rendered(page, "#den-fig", ".bars .point") >= 2
    assert "Gain over the mixture" in page.locator("#den-fig").inner_text()
    shot(page, "09_denoise")


def test_model_view_has_a_summary_and_no_machine_paths(browser_page, app_server):
    page = browser_page
    tab(page, "Model")
    page.wait_for_selector("#model-summary table")
    page.wait_for_selector("#model-loss .js-plotly-plot")
    words = page.locator("body").inner_text()
    assert "parameters" in words and "training" in words
    assert str(Path(__file__).resolve().parent.parent) not in page.content()
    assert str(Path(app_server.fg.path).parent) not in page.content()     # the tiny model's temporary folder
    shot(page, "10_model")


def test_the_model_picker_switches_every_view(browser_page):
    page = browser_page
    tab(page, "Embeddings")
    choose(page, "model-pick", SECOND)
    page.wait_for_function("(name) => { const t = document.querySelector('#emb-map .gtitle');"
                           " return t && t.textContent.includes(name); }", arg=SECOND, timeout=120_000)
    tab(page, "Denoise")
    page.wait_for_selector("#den-pick img", timeout=120_000)
    page.locator("#den-pick button").nth(1).click()
    page.wait_for_selector("#den-out img")
    assert SECOND in page.locator("#den-fig").inner_text()
    shot(page, "11_model_switched")
    choose(page, "model-pick", FIRST)
    page.wait_for_function("(name) => { const t = document.querySelector('#emb-map .gtitle');"
                           " return t && t.textContent.startsWith(name + ':'); }", arg=FIRST, timeout=60_000)


def test_the_page_requested_nothing_beyond_127_0_0_1(browser_page):
    hosts = {urlparse(u).hostname for u in browser_page.requests if urlparse(u).scheme in ("http", "https", "ws", "wss")}
    schemes = {urlparse(u).scheme for u in browser_page.requests}
    assert hosts <= LOCAL, f"requests to {hosts - LOCAL}"
    assert schemes <= {"http", "ws", "data", "blob"}, schemes
    assert len(browser_page.requests) > 10
