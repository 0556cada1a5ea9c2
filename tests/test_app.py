"""The page (``tfstyle app``), driven in a real browser: headless Chromium (Debian's package)
through Selenium with the system's chromedriver (no browser download)."""

import io
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import PIL.Image
import pytest
from helpers import bomb_png, free_port, png_bytes, smooth_image

pytestmark = [
    pytest.mark.slow,
    # Selenium's client leaves its HTTP connections to the driver for the garbage collector,
    # which may close them during a later test (CI, 2026-12-07): a socket of theirs, not ours.
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module", autouse=True)
def _collect_seleniums_sockets():
    """At the module's end (this fixture is torn down last), the garbage Selenium's client left
    is collected with its ResourceWarnings ignored, as in this module's tests: collected later,
    in another file's test, a socket of theirs failed that test (a 3-worker run, 2026-12-07)."""
    yield
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def _skip_or_fail(reason: str):
    if os.environ.get("CI"):  # CI installs the browser (.ci/run): its absence is a failure
        pytest.fail(reason)
    pytest.skip(reason)


class Page(str):
    """The page's URL, and the process serving it (``pid``)."""

    pid: int


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    """The page of ``tfstyle app`` (random weights, 48 px, 400 steps by default), started as a
    user starts it; its URL."""
    pytest.importorskip("gradio", reason='the page needs the "app" extra')
    port = free_port()
    log = tmp_path_factory.mktemp("app") / "app.log"
    argv = [sys.executable, "-m", "tfstyle", "app", "--port", str(port), "--weights", "none",
            "--size", "48", "--iterations", "400", "--seed", "0"]  # fmt: skip
    with open(log, "w") as out:
        proc = subprocess.Popen(argv, stderr=out, stdout=out)
    url = Page(f"http://127.0.0.1:{port}")
    url.pid = proc.pid
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            urllib.request.urlopen(url, timeout=2).close()
            break
        except OSError:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    assert "Traceback" not in log.read_text(), log.read_text()


@pytest.fixture(scope="module")
def browser():
    driver = _browser()
    yield driver
    driver.quit()


def _browser():
    """Headless Chromium at a phone's width."""
    if not (CHROMIUM and DRIVER):
        _skip_or_fail("no chromium/chromedriver (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason='needs the "test" extra')
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=420,1800",
    ):  # fmt: skip  (a phone's width)
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(DRIVER), options=options)


def _wait(what, timeout=90.0, every=0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = what()
        if value:
            return value
        assert time.monotonic() < deadline, f"waited {timeout} s for {what.__doc__ or what}"
        time.sleep(every)


def _status(driver) -> tuple:
    """The progress bar's value, its line and the run's state."""
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, "#status .tfstyle-status")
    if not found:
        return 0.0, "", ""
    box = found[0]
    bar = box.find_element(By.TAG_NAME, "progress")
    return float(bar.get_attribute("value")), box.text, box.get_attribute("data-state")


def _result_src(driver) -> str:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.CSS_SELECTOR, "#result img")
    return found[0].get_attribute("src") if found else ""


def _toasts(driver) -> str:
    from selenium.webdriver.common.by import By

    return " ".join(t.text for t in driver.find_elements(By.CSS_SELECTOR, ".toast-body"))


def _upload(driver, elem_id: str, *paths) -> None:
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type=file]")
    field.send_keys("\n".join(str(p) for p in paths))


def _set_number(driver, elem_id: str, value) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    field = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input[type=number]")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(str(value), Keys.TAB)


def _click(driver, elem_id: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, elem_id).click()


def test_upload_watch_stop_complete_download_and_bad_input(page, browser, tmp_path):
    from selenium.webdriver.common.by import By

    content, style, junk = tmp_path / "content.png", tmp_path / "style.png", tmp_path / "junk.png"
    content.write_bytes(png_bytes(smooth_image(0, 48, 64)))
    style.write_bytes(png_bytes(smooth_image(1, 64, 64)))
    junk.write_bytes(b"not an image at all")
    browser.get(page)
    _wait(lambda: browser.find_elements(By.ID, "paint"))

    # No style: a message on the page, nothing run.
    _upload(browser, "content", content)
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#content-view img"))
    _click(browser, "paint")
    assert "style: upload at least one style image" in _wait(lambda: _toasts(browser))

    # A run: the image changes and the bar moves as it paints; Stop keeps the image reached.
    _upload(browser, "styles", style)
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#styles-view img"))
    _click(browser, "paint")
    first = _wait(lambda: _result_src(browser))
    progress = _status(browser)[0]
    _wait(lambda: _result_src(browser) != first and _status(browser)[0] > progress)
    browser.save_screenshot(str(tmp_path / "painting.png"))
    _click(browser, "stop")
    _, text, state = _wait(lambda: _status(browser)[2] == "done" and _status(browser))
    assert text.startswith("stopped after step ") and text.endswith("48x36 px"), text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#gallery img")) >= 1

    # A second run, of 6 steps, with the style's region painted on the content's left part,
    # completes; its PNG downloads and decodes at the output's size, and the mask painted too.
    _set_number(browser, "option-iterations", 6)
    _paint_left_part(browser)
    _click(browser, "paint")
    _wait(lambda: _status(browser)[1].startswith("done"))
    links = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#downloads a[href]"))
    downloaded = _download(links, "tfstyle.png")
    assert downloaded.size == (48, 36)
    shown = np.asarray(downloaded).astype(int)
    assert shown.std() > 1  # an image, not a blank
    mask = np.asarray(_download(links, "mask-1.png"))
    assert mask.shape == (48, 64)  # the content's own size
    assert mask[:, :8].min() == 255 and mask[:, -8:].max() == 0
    assert "--mask mask-1.png" in browser.find_element(By.ID, "command").text
    browser.save_screenshot(str(tmp_path / "done.png"))
    if os.environ.get("TFSTYLE_SCREENSHOTS"):  # to look at by eye
        for name in ("painting.png", "done.png"):
            shutil.copy(tmp_path / name, os.path.join(os.environ["TFSTYLE_SCREENSHOTS"], name))

    # A new visit: the uploads are empty. The bundled images are offered (and readable).
    browser.get(page)
    _wait(lambda: browser.find_elements(By.ID, "paint"))
    _click(browser, "bundled")
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#content-view img"))
    _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#styles-view img"))
    assert not _toasts(browser)

    # A file that is not an image: one line on the page.
    browser.get(page)
    _wait(lambda: browser.find_elements(By.ID, "paint"))
    _upload(browser, "content", junk)
    _wait(lambda: "is not a readable image file" in _toasts(browser))
    assert "Traceback" not in browser.page_source


def _download(links, name: str) -> PIL.Image.Image:
    href = next(a.get_attribute("href") for a in links if a.get_attribute("href").endswith(name))
    with urllib.request.urlopen(href, timeout=30) as response:
        image = PIL.Image.open(io.BytesIO(response.read()))
        image.load()
    return image


def _paint_left_part(driver) -> None:
    """Open the regions, take the brush, and paint the content's left third."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    accordion = driver.find_element(By.XPATH, "//button[contains(., 'Regions')]")
    driver.execute_script("arguments[0].scrollIntoView()", accordion)
    accordion.click()
    editor = _wait(lambda: [e for e in driver.find_elements(By.ID, "drawing") if e.is_displayed()])
    editor = editor[0]
    driver.execute_script("arguments[0].scrollIntoView()", editor)
    # The editor's tools and canvas appear after the editor itself (later on a loaded machine).
    brush = _wait(lambda: editor.find_elements(By.CSS_SELECTOR, "button[aria-label=Brush]"))
    brush[0].click()
    time.sleep(0.5)  # the brush tool takes over the canvas
    canvas = _wait(
        lambda: [c for c in editor.find_elements(By.TAG_NAME, "canvas") if c.is_displayed()]
    )[-1]
    width, height = canvas.size["width"], canvas.size["height"]
    left = -width // 3  # offsets from the canvas's centre (the image's); the brush is wide
    strokes = ActionChains(driver, duration=10)  # ms a move (Selenium's default: 250)
    strokes.move_to_element_with_offset(canvas, left, -height // 4).click_and_hold()
    for y in (-height // 8, 0, height // 8, height // 4):  # headless drawing: about 0.4 s a move
        strokes.move_to_element_with_offset(canvas, left, y)
    strokes.release().perform()


def test_stop_reaches_the_running_run_after_a_second_paint():
    # Probe round 8: a second Paint replaced the session's stop event, and Stop no longer
    # reached the run going (minutes of a shared run slot at large sizes).
    from tfstyle import app

    runs = app.Runs()
    runs.arm("a")
    first = runs.take("a")  # Paint: it runs
    runs.arm("a")  # Paint again: queued behind it
    runs.arm("b")
    other = runs.take("b")  # another visitor's run
    runs.stop("a")
    assert first.is_set()
    queued = runs.take("a")
    assert queued is not first and queued.is_set()  # it will not start
    assert not other.is_set()  # one visitor's Stop is theirs alone
    runs.done("a", first)
    runs.done("a", queued)
    runs.arm("a")
    assert not runs.take("a").is_set()  # the next Paint starts afresh


def test_previews_are_new_files_never_rewritten(tmp_path):
    # CI 2026-12-07: the last preview and the result, equal images handed to Gradio as images,
    # made it rewrite its cached file while the browser fetched it (a broken response and a
    # traceback in the server's log). Each preview is a file of its own, written once.
    from tfstyle import app

    shown: list[str] = []
    same = PIL.Image.new("RGB", (8, 8), (10, 20, 30))
    paths = [app.preview_file(same, str(tmp_path), shown) for _ in range(4)]
    assert len(set(paths)) == 4
    assert [os.path.exists(p) for p in paths] == [False, False, True, True]
    with PIL.Image.open(paths[-1]) as image:
        assert image.getpixel((3, 3)) == (10, 20, 30)


def test_a_page_visitor_cannot_name_files_on_the_server_and_empty_fields_keep_its_flags():
    # Probe round 8: the weights were a text field (a visitor could name any file on the
    # server, or empty it and make the server download ImageNet's weights).
    from tfstyle import app, options

    engine = app.InProcess(weights=None)
    rows = engine.option_rows()
    assert "weights" not in {r.name for r in rows}
    assert not [r for r in rows if r.kind in ("weights", "mask", "masks", "callable")]
    size, layers = options.BY_NAME["size"], options.BY_NAME["style_layers"]
    values = app.values_from([size, layers], ["", " "], defaults={"size": 48, "style_layers":
                                                                   ["block1_conv1"]})  # fmt: skip
    assert values == {"size": 48, "style_layers": ["block1_conv1"]}


def test_painted_regions_become_one_mask_per_style_in_its_colour(tmp_path, monkeypatch):
    from tfstyle import app

    (_, red), (_, blue), (_, green) = app.REGION_COLOURS[:3]
    layer = np.zeros((30, 40, 4), np.uint8)  # the editor's layer over a 40x30 content
    layer[:, :20] = (*red, 255)  # style 1 on the left half
    layer[:10, 30:] = (*blue, round(255 * app.PAINT_OPACITY / 2))  # style 2, half, top right
    masks = app.drawn_masks({"background": None, "layers": [layer]}, 2, str(tmp_path))
    first, second = (_read(p) for p in masks)
    assert first.shape == (30, 40) and first[:, :20].min() == 255 and first[:, 20:].max() == 0
    assert abs(int(second[:10, 30:].mean()) - 128) <= 1 and second[10:].max() == 0
    assert second[:, :30].max() == 0
    # A second layer painted over the first takes the pixels it covers.
    over = np.zeros_like(layer)
    over[:, :10] = (*blue, 255)
    masks = app.drawn_masks({"layers": [layer, over]}, 2, str(tmp_path))
    first, second = (_read(p) for p in masks)
    assert first[:, :10].max() == 0 and second[:, :10].min() == 255
    # Nothing painted: no masks. A style left unpainted, or a colour beyond the styles: a line.
    assert app.drawn_masks({"layers": [np.zeros_like(layer)]}, 2, str(tmp_path)) is None
    only_red = layer.copy()
    only_red[:, 20:] = 0
    with pytest.raises(ValueError, match="nothing is painted in blue for style 2"):
        app.drawn_masks({"layers": [only_red]}, 2, str(tmp_path))
    layer[25:, 35:] = (*green, 255)
    with pytest.raises(ValueError, match="green paints style 3, but there are 2 style images"):
        app.drawn_masks({"layers": [layer]}, 2, str(tmp_path))
    # A large drawing is read at most DRAWN_PIXELS, with the content's aspect ratio.
    monkeypatch.setattr(app, "DRAWN_PIXELS", 300)
    (small,) = app.drawn_masks({"layers": [only_red]}, 1, str(tmp_path))
    assert _read(small).shape == (15, 20)


def _read(path) -> np.ndarray:
    with PIL.Image.open(path) as image:
        return np.asarray(image)


def test_a_bomb_a_huge_upload_and_a_memory_refusal_are_one_line_on_the_page(
    page, tmp_path, monkeypatch, content_array, style_array
):
    import gradio as gr

    from tfstyle import app, memory

    # A decompression bomb: refused from its header when it is uploaded (the preview).
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png())
    with pytest.raises(gr.Error) as refused:
        app.preview(str(bomb), "content")
    message = refused.value.message
    assert message.startswith("content: each side must be") and "got 100000x100000" in message
    assert "\n" not in message
    # An upload over MAX_UPLOAD_BYTES: refused by the page's server, which keeps serving.
    body = b'--b\r\nContent-Disposition: form-data; name="files"; filename="big.png"\r\n\r\n'
    body += b"\0" * (app.MAX_UPLOAD_BYTES + 1) + b"\r\n--b--\r\n"
    request = urllib.request.Request(
        f"{page}/gradio_api/upload",
        data=body,
        method="POST",
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    with pytest.raises(urllib.error.HTTPError) as too_big:
        urllib.request.urlopen(request, timeout=60)
    assert too_big.value.code == 413
    urllib.request.urlopen(page, timeout=10).close()
    # A run that would not fit in memory: the memory check's line, before any step.
    monkeypatch.setattr(memory, "available", lambda: 2.0**30)
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    content.write_bytes(png_bytes(content_array))
    style.write_bytes(png_bytes(style_array))
    engine = app.InProcess(weights=None)
    rows = [r for r in engine.option_rows() if r.name in ("size", "iterations")]
    run = app.paint(engine, rows, str(content), [str(style)], None, None, [4096, 5],
                    threading.Event(), str(tmp_path))  # fmt: skip
    with pytest.raises(ValueError, match="largest size that fits is about") as refused:
        next(run)
    assert "\n" not in str(refused.value)


def test_closing_the_page_stops_its_run(page, browser):
    """A visitor who closes the tab frees the run's slot within seconds (the page's unload),
    not at the run's next image (a twentieth of the run: minutes at large sizes). The page in a
    tab of its own in the module's browser (a second browser costs a Chromium start), closed as
    a visitor closes it; the browser stays open."""
    from selenium.webdriver.common.by import By

    def cpu() -> float:  # the page's process, seconds
        with open(f"/proc/{page.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def busy(seconds: float = 1.0) -> float:
        start = cpu()
        time.sleep(seconds)
        return (cpu() - start) / seconds

    driver = browser
    first = driver.current_window_handle
    driver.switch_to.new_window("tab")
    try:
        driver.get(page)
        _wait(lambda: driver.find_elements(By.ID, "paint"))
        _click(driver, "bundled")
        _wait(lambda: driver.find_elements(By.CSS_SELECTOR, "#styles-view img"))
        _set_number(driver, "option-iterations", 20000)  # an image every 1000 steps
        _click(driver, "paint")
        _wait(lambda: busy() > 0.4, timeout=60, every=0)  # it runs
    finally:
        driver.close()  # the tab
        driver.switch_to.window(first)
    _wait(lambda: busy() < 0.2, timeout=10, every=0)
