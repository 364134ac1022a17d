"""The web app in a real headless Chromium (Playwright, the system's browser: never a download).

The app runs as ``python -m lpnet.app`` in a process of its own; the page is driven as a person would: drop
a real rainy photo, wait for the result, download it, and compare the bytes with ``lpnet.derain``'s output;
drop a damaged file and read the message. Every request the page makes must stay on 127.0.0.1 (no fonts,
scripts or analytics from the internet). The screenshot is checked by its pixels; with
``LPNET_APP_FIGURE=docs/app.png`` (``make figures``) it is also saved there for the README.

Skips with the reason when Playwright, Chromium or Gradio is missing, unless ``LPNET_REQUIRE_BROWSER=1``
(``.ci/run``), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import PROJECT_ROOT, run_cli, shared_dir_or_skip
from PIL import Image

RAINY = "rain100l-val/rain/rain-001.png"
CLEAN = "rain100l-val/norain/norain-001.png"
VIEWPORT = {"width": 1280, "height": 900}
START_TIMEOUT_S = 90
DERAIN_TIMEOUT_MS = 60_000


def _missing_browser() -> str | None:
    """Why the browser test cannot run here, or None."""
    try:
        import gradio  # noqa: F401
    except ImportError:
        return "gradio is not installed (pip install 'lpnet[app]')"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; the dev extra has it)"
    if _chromium() is None:
        return "chromium is not installed (apt-get install chromium); no browser is downloaded"
    return None


def _chromium() -> str | None:
    return os.environ.get("LPNET_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser_ready() -> None:
    reason = _missing_browser()
    if reason is not None:
        if os.environ.get("LPNET_REQUIRE_BROWSER") == "1":
            pytest.fail(f"LPNET_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App:
    """``python -m lpnet.app`` on a free port: its URL, its temporary folder and its output so far."""

    def __init__(self) -> None:
        port = _free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lpnet.app", f"port={port}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=PROJECT_ROOT,
        )
        self.lines: list[str] = []
        self.url = self.folder = None
        deadline = time.monotonic() + START_TIMEOUT_S
        while self.url is None and time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if found := re.search(r"temporary folder (\S+)", line):
                self.folder = Path(found[1])
            if found := re.search(r"(http://127\.0\.0\.1:\d+)", line):
                self.url = found[1]
        if self.url is None:
            self.stop()
            pytest.fail("the app did not start:\n" + "".join(self.lines))

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            out, _ = self.process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        self.lines.append(out or "")
        return self.process.returncode


@pytest.fixture(scope="module")
def app(browser_ready):
    app = App()
    yield app
    status = app.stop()
    assert status == 0, "".join(app.lines)
    assert app.folder is not None and not app.folder.exists(), f"{app.folder} left behind"


@pytest.fixture(scope="module")
def page(app):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=_chromium(), headless=True)
        context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        page = context.new_page()
        page.requests = []
        page.on("request", lambda request: page.requests.append(request.url))
        page.app_url = app.url
        yield page
        browser.close()


def _wait_for_uploads(page, box: str, count: int, timeout_s: float = 30) -> None:
    """Until the upload box lists ``count`` files (each with its size and download arrow: uploaded)."""
    deadline = time.monotonic() + timeout_s
    while page.locator(box).inner_text().count("⇣") < count:
        assert time.monotonic() < deadline, f"{box} never listed {count} uploads"
        time.sleep(0.1)


def _derain(page, *files: Path, cleans: tuple[Path, ...] = ()) -> str:
    """Drop ``files`` (and ``cleans``) on the page, press Derain and return the summary once the run is
    over."""
    page.goto(page.app_url)  # a fresh page: no summary of an earlier run to mistake for this one
    page.wait_for_selector("#derain")
    page.locator("#photos input[type=file]").set_input_files([str(f) for f in files])
    # the upload is done when the file list shows each name
    if cleans:
        page.locator("#cleans input[type=file]").set_input_files([str(f) for f in cleans])
    for box, names in (("#photos", files), ("#cleans", cleans)):
        _wait_for_uploads(page, box, len(names))
    page.click("#derain")
    summary = page.locator("#status").get_by_text(re.compile(r"\d+ derained, \d+ failed"))
    summary.wait_for(timeout=DERAIN_TIMEOUT_MS)
    return page.locator("#status").inner_text()


def _screenshot_checked(page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)
    with Image.open(path) as img:
        pixels = np.asarray(img.convert("RGB"), dtype=np.float32)
    assert pixels.shape[1] == VIEWPORT["width"] and pixels.shape[0] >= VIEWPORT["height"] // 2
    assert pixels.std() > 20, "the screenshot is nearly one colour"
    # the derained photo is on the page: many distinct colours, not only the interface's flat ones
    assert len(np.unique(pixels.reshape(-1, 3).astype(np.uint8), axis=0)) > 5000


def test_a_photo_derained_in_the_browser_is_lpnet_derains_file(app, page, tmp_path):
    rainy = shared_dir_or_skip("real-rain", RAINY) / RAINY
    import lpnet.derain
    from lpnet.app import score

    assert run_cli(lpnet.derain.main, f"input={rainy}", f"output={tmp_path / 'cli'}", "progress=false") == 0
    expected = (tmp_path / "cli" / "rain-001.png").read_bytes()

    clean = rainy.parents[2] / CLEAN
    summary = _derain(page, rainy, cleans=(clean,))
    assert "1 derained, 0 failed" in summary
    scores = score(tmp_path / "cli" / "rain-001.png", clean, rainy)
    caption = page.locator(".lpnet-caption").first.inner_text()
    assert f"Y-PSNR/SSIM {scores['psnr_y']:.2f} dB / {scores['ssim_y']:.4f}" in caption, caption
    download = page.locator(".lpnet-download").first
    assert "rain-001.png" in download.inner_text()
    with page.expect_download() as event:
        download.click()
    assert Path(event.value.path()).read_bytes() == expected

    with page.expect_download() as event:
        page.click("#archive")
    assert event.value.suggested_filename == "lpnet-derained.zip"
    with zipfile.ZipFile(event.value.path()) as archive:
        assert archive.namelist() == ["rain-001.png"] and archive.read("rain-001.png") == expected

    # the slider's two images decoded (a screenshot taken earlier shows them half loaded)
    page.wait_for_function(
        "() => { const imgs = [...document.querySelectorAll('img')].filter(i => i.src.includes('rain-001'));"
        " return imgs.length >= 2 && imgs.every(i => i.complete && i.naturalWidth > 0); }"
    )
    shot = tmp_path / "app.png"
    _screenshot_checked(page, shot)
    if figure := os.environ.get("LPNET_APP_FIGURE"):
        shutil.copyfile(shot, PROJECT_ROOT / figure)

    outside = [url for url in page.requests if not url.startswith((app.url, "data:", "blob:"))]
    assert not outside, f"the page fetched from outside 127.0.0.1: {outside}"


def test_a_damaged_file_is_one_message_and_the_app_goes_on(app, page, tmp_path):
    damaged = tmp_path / "damaged.png"
    damaged.write_bytes(b"\x89PNG\r\n\x1a\n this is not the rest of a PNG")
    summary = _derain(page, damaged)
    assert "0 derained, 1 failed" in summary
    assert "damaged.png: not a readable image" in summary
    assert str(tmp_path) not in summary  # the user's name, not the server's paths
    assert "Traceback" not in page.content()
    # still serving: the page answers the next request
    page.goto(app.url)
    page.wait_for_selector("#derain")
