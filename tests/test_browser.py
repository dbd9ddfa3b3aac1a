"""End to end in headless Debian Chromium (Python Playwright): open the page, use every view,
check the plots rendered, and that the page asked nothing of any host but 127.0.0.1.

Screenshots (1280x800) go to test-artifacts/ (git-ignored). Skipped, with the reason, when
/usr/bin/chromium is absent (`make test` installs it with apt-get; never `playwright install`).
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlparse

import pytest
from engine.data import TEXTURES
from app_fixtures import FIRST, OVALS, SECOND, bad_uploads

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
        page.goto(app_server.url)
        page.wait_for_selector("#emb-map .js-plotly-plot .scatterlayer .point")
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


def test_embeddings_view_renders_and_a_click_shows_the_image(browser_page, app_server):
    page = browser_page
    assert plot_rendered(page, "#emb-map") >= 8 * len(TEXTURES)   # every held-out point drawn (8 per class)
    shot(page, "01_embeddings")
    point = page.locator("#emb-map .scatterlayer .trace").nth(2).locator(".point").first   # a dot of class 2
    box = point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("#emb-gallery img")
    name = app_server.fg.classes[2]
    page.wait_for_function("(name) => document.querySelector('#emb-caption').innerText.includes('class ' + name)",
                           arg=name)
    assert f"({name})" in page.locator("#emb-gallery").inner_text()        # the image's own caption
    page.get_by_label("PCA").check()
    page.wait_for_function("() => document.querySelector('#emb-note').innerText.includes('map: PCA')")
    shot(page, "02_embeddings_clicked")


def choose(page, elem_id: str, option: str) -> None:
    """Pick an option of a gradio dropdown."""
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=option, exact=True).click()
    page.wait_for_timeout(300)


def status(page) -> str:
    return page.locator("#sample-status").inner_text()


def test_sample_streams_and_offers_downloads(browser_page):
    page = browser_page
    tab(page, "Sample")
    page.click("#sample-run")
    page.wait_for_selector("#sample-y img")                    # a live frame arrives before the end
    page.wait_for_selector("#sample-status .done", timeout=120_000)
    page.wait_for_selector("#sample-f img")
    page.wait_for_selector("#sample-real img")                 # real crops of the class, to compare
    shot(page, "03_sample")
    words = status(page)
    assert "independent classifier" in words and "path of the first" in words
    names = page.locator("#sample-files").inner_text()
    for ext in (".png", ".gif", ".npy", ".json"):
        assert ext in names
    # the samples are drawn at 3x or more: at least 96 pixels per 32-pixel sample on screen
    width = page.locator("#sample-f img").bounding_box()["width"]
    assert width / 4 >= 96, width
    box = page.locator("#sample-f img").bounding_box()
    assert box["y"] + box["height"] <= 800 + 1, box                # in view at 1280x800 without scrolling


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
    assert "stopped" in status(page)
    n.fill("16")
    n.press("Enter")


def test_uploads_clear_the_last_run_and_a_refusal_is_said_once(browser_page, tmp_path):
    page = browser_page
    tab(page, "Sample")
    files = bad_uploads(tmp_path)
    choose(page, "sample-condition", "uploaded images")
    page.wait_for_function("() => document.querySelector('#sample-f img') === null")   # the class run is gone
    assert "done" not in status(page)
    page.locator("#sample-upload input[type=file]").set_input_files([files["rgba.png"][0], files["palette.png"][0]])
    page.wait_for_selector("#sample-real img")                 # the uploads as the model sees them
    assert "2 of them cut into crops of 16 pixels" in page.locator("#sample-upload-msg").inner_text()
    page.click("#sample-run")
    page.wait_for_function("() => { const s = document.querySelector('#sample-status .done');"
                           " return s && s.innerText.includes('2 uploaded'); }", timeout=120_000)
    page.wait_for_selector("#sample-f img")
    shot(page, "04_sample_uploaded")
    box = page.locator("#sample-f img").bounding_box()
    assert box["y"] + box["height"] <= 800 + 1, box    # the whole grid in view, below the upload message
    # a new valid upload: the samples of the old images and their "done" go at once
    page.locator("#sample-upload input[type=file]").set_input_files([files["sixteen_bit.png"][0]])
    page.wait_for_function("() => document.querySelector('#sample-upload-msg').innerText.includes('1 conditioning')")
    page.wait_for_function("() => document.querySelector('#sample-f img') === null")
    assert "done" not in status(page) and page.locator("#sample-y img").count() == 0
    # a refused upload: both bad files named, in plain words, once
    page.locator("#sample-upload input[type=file]").set_input_files([files["not_an_image.png"][0],
                                                                     files["corrupt.png"][0]])
    page.wait_for_function("() => { const m = document.querySelector('#sample-upload-msg').innerText;"
                           " return m.includes('not_an_image.png: not a readable image') && m.includes('corrupt.png'); }")
    assert "Error" not in page.locator("#sample-upload-msg").inner_text().replace("Refused", "")
    assert "sixteen_bit.png" not in page.locator("#sample-upload").inner_text()
    shot(page, "05_bad_upload_refused")
    page.click("#sample-run")                   # sampling with them: the view stays clear, the status says why
    page.wait_for_function("() => document.querySelector('#sample-status .error') !== null")
    words = status(page)
    assert "not run: remove the refused files named above" in words
    assert "not_an_image.png" not in words                       # the files are named once, above
    assert page.locator("#sample-f img").count() == 0 and page.locator("#sample-y img").count() == 0
    shot(page, "05b_sample_error_cleared")
    # the files cleared: the refusal and the error go with them
    page.locator("#sample-upload button[aria-label='Clear']").first.click()
    page.wait_for_function("() => !document.querySelector('#sample-upload-msg').innerText.includes('Refused')")
    assert "not run" not in status(page)
    choose(page, "sample-condition", "class")


def test_sample_compares_methods_on_the_same_class_and_seed(browser_page):
    """A model set with a conditional network: one captioned grid per method in place of the run's
    pictures, all in view; uploaded images are refused in plain words."""
    from app.common import METHODS
    page = browser_page
    tab(page, "Sample")
    choose(page, "sample-condition", "uploaded images")
    page.click("#sample-compare")
    page.wait_for_function("() => document.querySelector('#sample-status .error') !== null")
    assert "cannot be conditioned on uploaded images" in status(page)
    choose(page, "sample-condition", "class")
    page.click("#sample-compare")
    page.wait_for_function("() => { const s = document.querySelector('#sample-status .done');"
                           " return s && s.innerText.includes('5 methods'); }", timeout=120_000)
    page.wait_for_function("() => document.querySelectorAll('#sample-compared img').length === 5")
    captions = page.locator("#sample-compared .caption-label").all_inner_texts()
    assert [c.split(":")[0] for c in captions] == list(METHODS), captions
    assert all("network evaluations per sample" in c for c in captions)
    assert page.locator("#sample-f").is_hidden()                   # the run's pictures make room
    assert not page.evaluate(CLIPPED, "#sample-compared")
    for img in page.locator("#sample-compared img").all():
        box = img.bounding_box()
        assert box["y"] + box["height"] <= 800 + 1 and box["height"] >= 200, box
    shot(page, "13_sample_compared")
    page.click("#sample-run")                                       # a run brings its own pictures back
    page.wait_for_selector("#sample-status .done", timeout=120_000)
    page.wait_for_selector("#sample-f img")
    assert page.locator("#sample-compared").is_hidden()


SUMMARY_LOG = """
() => {
  // every summary line the Interpolate view shows, in order, with the grid picture it came with
  window.interpLog = [];
  const note = () => {
    const s = document.querySelector('#interp-summary').innerText;
    if (!/alpha = /.test(s)) return;             // a progress timer, not a summary
    const img = document.querySelector('#interp-grid img');
    const last = window.interpLog[window.interpLog.length - 1];
    if (s && (!last || last.summary !== s)) window.interpLog.push({summary: s, src: img ? img.src : null});
  };
  new MutationObserver(note).observe(document.querySelector('#interp-summary'),
                                     {childList: true, subtree: true, characterData: true});
}
"""


def alpha_of(summary: str) -> float:
    return float(re.search(r"alpha = (-?[0-9.]+)", summary).group(1))


def test_interpolation_redraws_while_the_slider_is_dragged(browser_page):
    page = browser_page
    tab(page, "Interpolate")
    page.locator("#interp-seed").get_by_text("the same for every alpha").wait_for()
    slider = page.locator("#interp-alpha input[type=range]")
    box = slider.bounding_box()
    page.evaluate(SUMMARY_LOG)
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.5, y)
    page.mouse.down()
    for f in (0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9):       # a slow drag: the samples follow it
        page.mouse.move(box["x"] + box["width"] * f, y)
        page.wait_for_timeout(1500)
    during = page.evaluate("() => window.interpLog.length")
    final = float(slider.input_value())
    page.mouse.up()
    assert during >= 3, page.evaluate("() => window.interpLog")   # redrawn at least 3 times before release
    page.wait_for_function("(a) => { const l = window.interpLog; return l.length &&"
                           " l[l.length - 1].summary.includes('alpha = ' + a); }", arg=f"{final:g}", timeout=60_000)
    page.wait_for_timeout(2000)                   # nothing stale arrives after the newest picture
    log = page.evaluate("() => window.interpLog")
    assert alpha_of(log[-1]["summary"]) == pytest.approx(final)
    drawn = [alpha_of(e["summary"]) for e in log]
    assert drawn == sorted(drawn), drawn          # the drag only went right: no older position after a newer one
    assert plot_rendered(page, "#interp-probs", ".bars .point") >= 2
    shot(page, "06_interpolate")


def test_interpolation_strip_goes_when_the_pair_is_refused(browser_page, app_server):
    page = browser_page
    tab(page, "Interpolate")
    page.click("#interp-strip-run")
    page.wait_for_selector("#interp-strip img", timeout=120_000)
    a = page.locator("#interp-a input").input_value()
    choose(page, "interp-b", a)                                   # the same class twice
    page.wait_for_function("() => document.querySelector('#interp-warn').innerText.includes('both')")
    assert page.locator("#interp-strip img").count() == 0 and page.locator("#interp-grid img").count() == 0
    assert page.locator("#interp-strip-cols").inner_text().strip() == ""
    choose(page, "interp-b", next(c for c in app_server.fg.classes if c != a))
    page.wait_for_selector("#interp-grid img", timeout=60_000)
    page.wait_for_function("() => document.querySelector('#interp-warn').innerText.trim() === ''")
    page.get_by_label("switch class at sigma*").check()
    page.locator("#interp-seed").get_by_text("the same for every sigma*").wait_for()


def test_trajectories_and_the_step_scrubber(browser_page):
    page = browser_page
    tab(page, "Trajectories")
    page.click("#traj-run")
    page.wait_for_selector("#traj-pic img", timeout=120_000)
    assert plot_rendered(page, "#traj-dist", ".scatterlayer .trace") >= 1
    assert plot_rendered(page, "#traj-map") > 10
    assert "★: where a pair parts" in page.locator("#traj-dist").inner_text()
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
    page.evaluate("() => window.scrollTo(0, 0)")
    shot(page, "07_trajectories")


def test_distances_open_at_once_and_a_scatter_click_samples_the_pair(browser_page):
    page = browser_page
    tab(page, "Distances")                                       # drawn on opening, without a click
    plot_rendered(page, "#dist-centroid", ".heatmaplayer")
    plot_rendered(page, "#dist-density", ".heatmaplayer")
    assert plot_rendered(page, "#dist-scatter") >= 3
    page.wait_for_function("() => document.querySelector('#dist-text').innerText.includes('correlation')")
    verdict = page.locator("#dist-text").inner_text()
    assert page.locator("#dist-scatter .textpoint").count() >= 3   # points with room name their pair
    point = page.locator("#dist-scatter .scatterlayer .point").first
    box = point.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("#dist-b img", timeout=120_000)
    a = page.locator("#dist-a-class input").input_value()
    b = page.locator("#dist-b-class input").input_value()
    assert a != b and a in TEXTURES and b in TEXTURES
    assert page.locator("#dist-text").inner_text() == verdict      # the correlation line stays
    assert f"samples of {a}" in page.locator("#dist-a").inner_text()
    assert f"samples of {b}" in page.locator("#dist-b").inner_text()
    page.get_by_text("The numbers: where the density distance comes from").click()
    page.wait_for_selector("#dist-numbers table")
    assert "share of the density distance" in page.locator("#dist-numbers").inner_text()
    shot(page, "08_distances")


def gain_title(page) -> str:
    return page.locator("#den-fig .gtitle").first.text_content()


def test_denoise_follows_every_control(browser_page, tmp_path):
    page = browser_page
    tab(page, "Denoise")
    page.wait_for_selector("#den-pick img")
    page.locator("#den-pick button").nth(3).click()              # no Denoise click: the pick runs it
    page.wait_for_selector("#den-out img")
    assert plot_rendered(page, "#den-fig", ".bars .point") >= 2
    assert "Gain over the mixture at sigma = 0.5" in gain_title(page)
    shot(page, "09_denoise")
    # a new sigma redraws at once: the chart never says 0.5 while the slider says otherwise
    sigma = page.locator("#den-sigma input[type=number]")
    sigma.fill("1")
    sigma.press("Enter")
    page.wait_for_function("() => document.querySelector('#den-fig .gtitle').textContent.includes('sigma = 1 ')")
    # an upload runs at once; the test image's highlight goes
    files = bad_uploads(tmp_path)
    page.locator("#den-upload input[type=file]").set_input_files(files["palette.png"][0])
    page.wait_for_function("() => document.querySelector('#den-out').innerText.includes('clean (yours)')")
    assert page.locator("#den-pick .gallery-item.selected, #den-pick button.selected").count() == 0
    # a file that is not an image is refused at once, and the old outputs go
    page.locator("#den-upload button[aria-label='Clear']").first.click()
    page.wait_for_selector("#den-upload input[type=file]", state="attached")
    page.locator("#den-upload input[type=file]").set_input_files(files["not_an_image.png"][0])
    page.wait_for_function("() => document.querySelector('#den-error').innerText.includes('not a readable image')")
    assert page.locator("#den-out img").count() == 0
    page.locator("#den-upload button[aria-label='Clear']").first.click()   # back to the test image
    page.wait_for_function("() => document.querySelector('#den-out') && "
                           "document.querySelector('#den-out').innerText.includes('clean:')")


def test_model_view_has_a_summary_and_no_machine_paths(browser_page, app_server):
    page = browser_page
    tab(page, "Model")
    page.wait_for_selector("#model-summary table")
    page.wait_for_selector("#model-loss .js-plotly-plot")
    words = page.locator("body").inner_text()
    assert "parameters" in words and "training" in words and "1 CPU threads" not in words
    assert str(Path(__file__).resolve().parent.parent) not in page.content()
    assert str(Path(app_server.fg.path).parent) not in page.content()     # the tiny model's temporary folder
    shot(page, "10_model")


# Every view's results: pictures (gr.Image) and galleries, by tab, after the tests above ran them.
RESULTS = {"Embeddings": ["#emb-gallery"], "Sample": ["#sample-y", "#sample-f", "#sample-real"],
           "Interpolate": ["#interp-grid"], "Trajectories": ["#traj-pic"],
           "Distances": ["#dist-a", "#dist-b"], "Denoise": ["#den-pick", "#den-out"]}

CLIPPED = """
(sel) => {
  // every picture of the block: its box within the block's, and no thumbnail of a gallery cut by
  // the gallery's scrolling frame (a cut-off column or row)
  const block = document.querySelector(sel);
  if (!block) return ['missing ' + sel];
  const outer = block.getBoundingClientRect();
  const bad = [];
  for (const img of block.querySelectorAll('img')) {
    const r = img.getBoundingClientRect();
    if (r.width === 0) continue;
    if (r.left < outer.left - 1 || r.right > outer.right + 1 || r.top < outer.top - 1 || r.bottom > outer.bottom + 1)
      bad.push(sel + ' img outside its block: ' + JSON.stringify([r.left, r.top, r.right, r.bottom]) + ' in ' +
               JSON.stringify([outer.left, outer.top, outer.right, outer.bottom]));
    const frame = img.closest('.grid-wrap');
    if (frame) {
      const f = frame.getBoundingClientRect();
      if (r.right > f.right + 1 || r.left < f.left - 1)
        bad.push(sel + ' thumbnail cut by its gallery: ' + JSON.stringify([r.left, r.right, f.left, f.right]));
    }
    if (r.right > window.innerWidth + 1) bad.push(sel + ' img beyond the window');
  }
  return bad;
}
"""


def run_view(page, name: str) -> None:
    """Draw a view's results afresh (the tests before may have left it cleared)."""
    if name == "Embeddings":
        choose(page, "emb-class", list(TEXTURES)[1])
    else:
        button = {"Sample": "#sample-run", "Interpolate": "#interp-run", "Trajectories": "#traj-run",
                  "Distances": "#dist-pair-run", "Denoise": "#den-run"}[name]
        page.click(button)
    for sel in RESULTS[name]:
        page.wait_for_selector(f"{sel} img", timeout=120_000)
    page.wait_for_timeout(1000)


def test_no_result_picture_or_gallery_is_clipped_at_1280x800(browser_page):
    page = browser_page
    problems = []
    for name, selectors in RESULTS.items():
        tab(page, name)
        page.wait_for_timeout(500)
        run_view(page, name)
        for sel in selectors:
            page.wait_for_selector(f"{sel} img", timeout=120_000)
            problems += page.evaluate(CLIPPED, sel)
        shot(page, f"12_unclipped_{name.lower()}")
    assert not problems, "\n".join(problems)


def test_the_model_picker_switches_every_view(browser_page):
    page = browser_page
    tab(page, "Embeddings")
    choose(page, "model-pick", SECOND)
    page.wait_for_function("(name) => { const t = document.querySelector('#emb-map .gtitle');"
                           " return t && t.textContent.includes(name); }", arg=SECOND, timeout=120_000)
    tab(page, "Sample")                       # read where a user reads it: a hidden tab's content may not be drawn
    page.wait_for_function("(name) => { const s = document.querySelector('#sample-status');"
                           " return s && s.innerText.includes(name); }", arg=SECOND)
    assert "**" not in page.locator("#sample-status").inner_text()      # the switch is said in plain words
    page.click("#sample-run")
    page.wait_for_selector("#sample-status .done", timeout=120_000)
    assert f"model {SECOND}" in page.locator("#sample-status").inner_text()
    tab(page, "Interpolate")
    page.click("#interp-run")
    page.wait_for_function("(name) => document.querySelector('#interp-summary').innerText.includes('model ' + name)",
                           arg=SECOND, timeout=120_000)
    tab(page, "Trajectories")
    page.click("#traj-run")
    page.wait_for_function("(name) => { const t = document.querySelector('#traj-dist .gtitle');"
                           " return t && t.textContent.includes(name); }", arg=SECOND, timeout=300_000)
    tab(page, "Distances")                    # the second model's measures are made in the background
    page.wait_for_function("(name) => document.querySelector('#dist-text').innerText.includes(name)",
                           arg=SECOND, timeout=600_000)
    tab(page, "Denoise")
    page.wait_for_selector("#den-pick img", timeout=120_000)
    page.locator("#den-pick button").nth(1).click()
    page.wait_for_selector("#den-out img")
    assert SECOND in page.locator("#den-fig").inner_text()
    tab(page, "Model")
    page.wait_for_function("(name) => document.querySelector('#model-summary').innerText.includes(name)", arg=SECOND)
    shot(page, "11_model_switched")
    choose(page, "model-pick", FIRST)
    page.wait_for_function("(name) => { const t = document.querySelector('#emb-map .gtitle');"
                           " return t && t.textContent.startsWith(name + ':'); }", arg=FIRST, timeout=60_000)


def test_the_ovals_set_shows_its_ground_truth_in_interpolate(browser_page):
    """Picking the ovals set: Interpolate opens on the pair either side of the held-out class with the
    measured ground truth drawn; a run marks its alpha and puts its samples on it, for either method;
    another set hides it."""
    page = browser_page
    choose(page, "model-pick", OVALS)
    tab(page, "Interpolate")
    assert plot_rendered(page, "#interp-truth", ".scatterlayer .trace") >= 2     # drawn on the switch
    assert page.locator("#interp-a input").input_value() == "ratio 0.5"
    assert page.locator("#interp-b input").input_value() == "ratio 2"
    assert "ratio 1 (never trained)" in page.locator("#interp-truth").inner_text()
    page.get_by_label("blend (alpha)").check()                     # earlier tests left "switch" and alpha 1.3
    page.locator("#interp-seed").get_by_text("the same for every alpha").wait_for()
    alpha = page.locator("#interp-alpha input[type=number]")
    alpha.fill("0.5")
    alpha.press("Enter")
    page.locator("#interp-run").click()          # a run even where alpha already stood at 0.5 (no change event)
    page.wait_for_function("() => { const s = document.querySelector('#interp-summary').innerText;"
                           " return s.includes('alpha = 0.5') && /Median aspect ratio|No oval/.test(s); }",
                           timeout=120_000)
    page.wait_for_function("() => document.querySelector('#interp-truth').innerText.includes('these samples')")
    page.wait_for_timeout(1500)                                   # the newest redraw in place
    shot(page, "14_interpolate_ovals")
    page.get_by_label("class embeddings (conditional network)").check()
    page.wait_for_function("() => document.querySelector('#interp-summary').innerText.includes('class embeddings')",
                           timeout=120_000)
    assert "class embedding of A" in page.locator("#interp-alpha").inner_text()
    choose(page, "model-pick", FIRST)
    page.wait_for_function("(name) => { const t = document.querySelector('#emb-map .gtitle');"
                           " return t && t.textContent.startsWith(name + ':'); }", arg=FIRST, timeout=60_000)
    assert page.locator("#interp-truth").is_hidden()


def test_the_page_requested_nothing_beyond_127_0_0_1(browser_page):
    hosts = {urlparse(u).hostname for u in browser_page.requests if urlparse(u).scheme in ("http", "https", "ws", "wss")}
    schemes = {urlparse(u).scheme for u in browser_page.requests}
    assert hosts <= LOCAL, f"requests to {hosts - LOCAL}"
    assert schemes <= {"http", "ws", "data", "blob"}, schemes
    assert len(browser_page.requests) > 10
