"""The web page in a real browser: Debian's Chromium driven by Playwright, against
``upres serve`` running as a real process with the real engine (the fast compact
model) on tiny clips.

Screenshots of each state go to ``UPRES_SCREENSHOT_DIR`` when it is set (the
ones in docs/ are made with ``UPRES_SCREENSHOT_DIR=docs``), else to a temporary
folder.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from testkit.net import free_port

from tests.clips import make_clip, write_corrupt_packets, write_text_file
from tests.integration.serve_harness import Client, CreatedKey, Serve, create_key
from upres.domain.media import MediaLimits
from upres.inputs.probe import probe
from upres.models.registry import get_model

playwright_api = pytest.importorskip("playwright.sync_api")
Page = playwright_api.Page
expect = playwright_api.expect

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CREDITS = 5000.0
# A network other than the server's default (the compact one), priced 1.5 times.
CHOSEN_NETWORK = "realesrgan-x4plus-anime"
TASK_TIMEOUT_MS = 240_000


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("UPRES_SCREENSHOT_DIR")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Serve, CreatedKey]]:
    data_dir = tmp_path_factory.mktemp("serve")
    env = {
        **os.environ,
        "UPRES_MODEL": "realesr-animevideov3",
        "UPRES_NETWORK_PRICES": json.dumps({CHOSEN_NETWORK: 1.5}),
        # HEVC results, which Chromium cannot play: the compare view must use
        # the H.264 copy, and Download must still give the real result.
        "UPRES_ENCODE_CODEC": "h265",
        "UPRES_ENCODE_PRESET": "ultrafast",
        "UPRES_HEARTBEAT_S": "0.5",
        "UPRES_INITIAL_CREDITS": "0",
        "UPRES_RATE_LIMIT_PER_MINUTE": "100000",
    }
    server = Serve(data_dir, port=free_port(), env=env).start()
    try:
        yield server, create_key(data_dir, credits=CREDITS, env=env)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    return {
        "short": make_clip(folder / "short.mp4", width=96, height=64, frames=24, fps=12),
        # Long enough at 4x on a CPU to be caught running (and cancelled).
        "long": make_clip(folder / "long.mp4", width=160, height=120, frames=240, fps=24),
        "text": write_text_file(folder / "notes.mp4"),
        # Probes fine (its first frames decode), then fails in the engine.
        "corrupt": write_corrupt_packets(
            make_clip(folder / "good.mp4", frames=24),
            folder / "corrupt.mp4",
            packets=(3, 5, 7, 9, 11, 13),
        ),
    }


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: object, serve: tuple[Serve, CreatedKey]) -> Iterator[Page]:
    server, key = serve
    context = browser.new_context(  # type: ignore[attr-defined]
        base_url=server.base_url, viewport={"width": 1100, "height": 1000}, accept_downloads=True
    )
    page = context.new_page()
    page.goto("/")
    page.get_by_label("API key").fill(key.secret)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#credits")).to_contain_text("credits")
    yield page
    context.close()


def _row(page: Page, task_id: str) -> object:
    return page.locator("#task-table tbody tr", has_text=task_id)


def _submitted_task_id(page: Page) -> str:
    status = page.locator("#form-status")
    expect(status).to_contain_text("created", timeout=60_000)
    found = re.search(r"task-unified-\d+-[a-z0-9]{8}", status.inner_text())
    assert found is not None
    return found.group(0)


def test_signing_in_keeps_the_key_out_of_the_url(
    browser: object, serve: tuple[Serve, CreatedKey], shots: Path
) -> None:
    server, key = serve
    context = browser.new_context(base_url=server.base_url)  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto("/")
    page.screenshot(path=str(shots / "page_signin.png"))
    page.get_by_label("API key").fill("upres_not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#signin-status")).to_contain_text("refused")
    page.get_by_label("API key").fill(key.secret)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#credits")).to_contain_text("credits")
    expect(page.get_by_label("Factor")).to_have_value("2")

    assert key.secret not in page.url
    assert page.evaluate("sessionStorage.getItem('upres.apiKey')") == key.secret
    page.reload()  # the session keeps the key
    expect(page.get_by_role("button", name="Upscale")).to_be_visible()
    context.close()


def test_upload_estimate_upscale_compare_and_download(
    page: Page, serve: tuple[Serve, CreatedKey], clips: dict[str, Path], shots: Path
) -> None:
    server, key = serve
    page.get_by_label("Video file").set_input_files(str(clips["short"]))
    page.get_by_role("button", name="Estimate").click()
    # 2 s of video at 2x: 2 started seconds at 16 credits.
    expect(page.locator("#form-status")).to_contain_text("Estimate: 32 credits for 2 s")
    page.screenshot(path=str(shots / "page_estimate.png"))

    page.get_by_role("button", name="Upscale").click()
    task_id = _submitted_task_id(page)
    expect(_row(page, task_id)).to_be_visible()
    expect(page.locator("#view-progress")).to_have_attribute(
        "value", "100", timeout=TASK_TIMEOUT_MS
    )
    expect(page.locator("#view-status")).to_contain_text("Completed")

    compare = page.get_by_role("group", name="compare")
    expect(compare).to_be_visible()
    expect(page.locator("#playable-note")).to_be_visible()
    page.get_by_label("Split").fill("35")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#compare video')].every("
        "v => !v.paused && v.readyState >= 2 && v.currentTime > 0)",
        timeout=30_000,
    )
    page.screenshot(path=str(shots / "page_compare.png"), full_page=True)

    with page.expect_download() as download:
        page.get_by_role("link", name="Download").click()
    client = Client(server.base_url, key.secret)
    try:
        result_url = client.task(task_id)["results"][0]
    finally:
        client.close()
    downloaded = Path(download.value.path())
    assert downloaded.read_bytes() == httpx.get(result_url).content
    assert probe(downloaded, limits=MediaLimits()).codec == "hevc"


def test_cancel_a_running_task_refunds_it(page: Page, clips: dict[str, Path], shots: Path) -> None:
    credits = page.locator("#credits").inner_text()
    page.get_by_label("Video file").set_input_files(str(clips["long"]))
    page.get_by_label("Factor").select_option("4")
    page.get_by_role("button", name="Upscale").click()
    task_id = _submitted_task_id(page)
    row = _row(page, task_id)
    expect(row).to_contain_text("processing", timeout=TASK_TIMEOUT_MS)
    expect(page.locator("#view-status")).to_contain_text(" fps · about ", timeout=TASK_TIMEOUT_MS)
    preview = page.get_by_role("img", name="Latest upscaled frame")
    expect(preview).to_be_visible(timeout=30_000)
    # The frame at 4x is 640x480; its preview is at most 480 wide.
    assert preview.evaluate("image => [image.naturalWidth, image.naturalHeight]") == [480, 360]
    page.screenshot(path=str(shots / "page_running.png"), full_page=True)

    row.get_by_role("button", name="Cancel").click()
    expect(row).to_contain_text("cancelled")
    expect(page.locator("#view-error")).to_contain_text("refunded")
    expect(page.locator("#credits")).to_have_text(credits)
    page.screenshot(path=str(shots / "page_cancelled.png"))


def test_a_non_video_upload_shows_a_clear_error(
    page: Page, clips: dict[str, Path], shots: Path
) -> None:
    page.get_by_label("Video file").set_input_files(str(clips["text"]))
    page.get_by_role("button", name="Upscale").click()
    alert = page.get_by_role("alert").filter(has_text="Upload refused")
    expect(alert).to_contain_text("not a video")
    expect(alert).to_contain_text("video_probe_failed")
    page.screenshot(path=str(shots / "page_error.png"))


def test_a_failed_task_shows_its_error_and_the_refund(
    page: Page, clips: dict[str, Path], shots: Path
) -> None:
    credits = page.locator("#credits").inner_text()
    page.get_by_label("Video file").set_input_files(str(clips["corrupt"]))
    page.get_by_role("button", name="Upscale").click()
    task_id = _submitted_task_id(page)

    expect(_row(page, task_id)).to_contain_text("failed", timeout=TASK_TIMEOUT_MS)
    error = page.locator("#view-error")
    expect(error).to_contain_text("6 of 24")
    expect(error).to_contain_text("credits reserved were refunded")
    expect(page.locator("#credits")).to_have_text(credits)
    page.screenshot(path=str(shots / "page_failed.png"))


def test_a_chosen_network_is_priced_and_shown_on_its_row(
    page: Page, serve: tuple[Serve, CreatedKey], clips: dict[str, Path], shots: Path
) -> None:
    server, key = serve
    about = page.locator("#network-about")
    expect(about).to_have_text("The server's choice: realesr-animevideov3 at every factor")
    page.get_by_label("Network").select_option(CHOSEN_NETWORK)
    expect(about).to_have_text(get_model(CHOSEN_NETWORK).description)
    expect(page.get_by_label("Denoise")).to_be_hidden()  # this network has no levels
    credits = page.locator("#credits").inner_text()
    page.get_by_label("Video file").set_input_files(str(clips["long"]))
    page.get_by_role("button", name="Estimate").click()
    # 10 s of video at 2x: 10 started seconds at 16 credits, times the network's 1.5.
    status = page.locator("#form-status")
    expect(status).to_contain_text("Estimate: 240 credits for 10 s of video at 2")
    expect(status).to_contain_text(f" with {CHOSEN_NETWORK}, about ")
    page.screenshot(path=str(shots / "page_network.png"))

    page.get_by_role("button", name="Upscale").click()
    task_id = _submitted_task_id(page)
    expect(status).to_contain_text("240 credits reserved")
    row = _row(page, task_id)
    expect(row).to_contain_text(CHOSEN_NETWORK)
    client = Client(server.base_url, key.secret)
    try:
        assert client.task(task_id)["task_info"]["network"] == CHOSEN_NETWORK
    finally:
        client.close()
    # Its run (a slow network on this long clip) is not waited for: the chunked
    # tests run a chosen network and charge its price (tests/unit/test_chunked_tasks.py).
    row.get_by_role("button", name="Cancel").click()
    expect(row).to_contain_text("cancelled")
    expect(page.locator("#credits")).to_have_text(credits)


def test_a_chosen_frame_rate_is_priced_shown_on_its_row_and_compared_in_step(
    page: Page, serve: tuple[Serve, CreatedKey], clips: dict[str, Path], shots: Path
) -> None:
    server, key = serve
    page.get_by_label("Video file").set_input_files(str(clips["short"]))
    page.get_by_label("Frame rate").select_option("48")
    page.get_by_role("button", name="Estimate").click()
    # 2 s of video at 2x (32 credits) and 2 s of output interpolated at 4 credits.
    status = page.locator("#form-status")
    expect(status).to_contain_text("Estimate: 40 credits for 2 s of video at 2")
    expect(status).to_contain_text(" at 48 fps, about ")

    # Slow motion 2x: 4 s of output interpolated.
    page.get_by_label("Frame rate").select_option("slowmo-2")
    page.get_by_role("button", name="Upscale").click()
    task_id = _submitted_task_id(page)
    expect(status).to_contain_text("48 credits reserved")
    row = _row(page, task_id)
    times = "\N{MULTIPLICATION SIGN}"
    expect(row).to_contain_text(f"2{times} · 2{times} slow motion")
    client = Client(server.base_url, key.secret)
    try:
        assert client.task(task_id)["task_info"]["slowmo"] == 2
    finally:
        client.close()
    expect(page.locator("#view-progress")).to_have_attribute(
        "value", "100", timeout=TASK_TIMEOUT_MS
    )

    # The result lasts twice its source: the source plays at half speed, in step by time.
    page.wait_for_function(
        "() => { const r = document.querySelector('#compare-result');"
        " const s = document.querySelector('#compare-source');"
        " return !r.paused && !s.paused && r.currentTime > 0.5 && s.playbackRate === 0.5"
        " && Math.abs(r.currentTime / 2 - s.currentTime) < 0.3; }",
        timeout=30_000,
    )
    durations = page.evaluate(
        "() => [...document.querySelectorAll('#compare video')].map(v => v.duration)"
    )
    assert durations[0] == pytest.approx(2 * durations[1], abs=0.2)
    page.screenshot(path=str(shots / "page_frame_rate.png"), full_page=True)
