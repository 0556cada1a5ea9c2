"""The page (``tfstyle app``), driven in a real browser: headless Chromium (Debian's package)
through Selenium with the system's chromedriver (no browser download)."""

import io
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import numpy as np
import PIL.Image
import pytest
from helpers import free_port, png_bytes, smooth_image

pytestmark = pytest.mark.slow
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def _skip_or_fail(reason: str):
    if os.environ.get("CI"):  # CI installs the browser (.ci/run): its absence is a failure
        pytest.fail(reason)
    pytest.skip(reason)


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
    url = f"http://127.0.0.1:{port}"
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
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


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

    # A second run, of 6 steps, completes; its PNG downloads and decodes at the output's size.
    _set_number(browser, "option-iterations", 6)
    _click(browser, "paint")
    _wait(lambda: _status(browser)[1].startswith("done"))
    links = _wait(lambda: browser.find_elements(By.CSS_SELECTOR, "#downloads a[href]"))
    href = next(a.get_attribute("href") for a in links if "tfstyle.png" in a.get_attribute("href"))
    with urllib.request.urlopen(href, timeout=30) as response:
        downloaded = PIL.Image.open(io.BytesIO(response.read()))
        downloaded.load()
    assert downloaded.size == (48, 36)
    shown = np.asarray(downloaded).astype(int)
    assert shown.std() > 1  # an image, not a blank
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
