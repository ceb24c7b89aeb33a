"""The dashboard served by `groklab dashboard` and driven in headless Chromium (Playwright).

Chromium comes from Debian (`bash scripts/install-browser.sh`, run by `make test`); the test is
skipped, saying so, where it is not installed.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from groklab.runs import Run

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (bash scripts/install-browser.sh)")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(proc: subprocess.Popen, url: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"groklab dashboard exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    pytest.fail(f"groklab dashboard did not answer within {timeout} s:\n{log.read_text()}")


def wait_idle(page) -> None:
    """Until Streamlit has finished the current script run (its running indicator is gone)."""
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')?.innerText?.includes('Running')",
        timeout=30_000,
    )


def screenshot(page, path: Path) -> None:
    """The whole page: the app scrolls inside its own container, so the viewport is made tall first."""
    size = page.viewport_size
    page.set_viewport_size({"width": size["width"], "height": 3000})
    page.wait_for_timeout(500)
    page.screenshot(path=str(path))
    page.set_viewport_size(size)


def test_dashboard_in_chromium(dash_runs, test_output_dir, tmp_path):
    runs = tmp_path / "runs"
    for name in ("grokked", "torn", "bad_config"):
        shutil.copytree(dash_runs / name, runs / name)
    live = Run(runs / "live")  # a run "being trained": this test holds its lock and appends metrics
    shutil.copytree(dash_runs / "early", live.path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "dashboard.log"
    summary = Run(runs / "grokked").analysis.summary
    grokking_step = summary.events.grokking_step
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "groklab", "dashboard", "--runs-dir", str(runs), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_healthy(proc, url, log)
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1500, "height": 1100})
                page.goto(url, wait_until="domcontentloaded")
                page.get_by_test_id("stDataFrame").wait_for(timeout=30_000)  # the runs table
                page.locator(".js-plotly-plot").first.wait_for(timeout=30_000)  # and its chart: a user reads the table
                wait_idle(page)
                page.get_by_test_id("stSidebar").get_by_text("Run", exact=True).click()
                page.get_by_test_id("stSelectbox").filter(has_text="Run").first.click()
                t0 = time.perf_counter()
                page.get_by_role("option", name="grokked", exact=True).click()
                grok = page.get_by_test_id("stMetric").filter(has_text="Grokking step")
                sync_api.expect(grok).to_contain_text(str(grokking_step), timeout=30_000)
                plots = page.locator(".js-plotly-plot")
                plots.filter(has_text="Training curves").locator(".main-svg").first.wait_for(timeout=30_000)
                first_render_s = time.perf_counter() - t0  # key numbers and curves drawn
                plots.filter(has_text="Progress measures").wait_for(timeout=30_000)
                wait_idle(page)
                complete_s = time.perf_counter() - t0
                metrics = {
                    t.split("\n")[0]: t.split("\n")[-1] for t in page.get_by_test_id("stMetric").all_inner_texts()
                }
                assert metrics["Grokking step"] == str(grokking_step)
                assert metrics["Key frequencies"] == ", ".join(map(str, summary.key_frequencies))
                assert page.get_by_test_id("stException").count() == 0
                screenshot(page, test_output_dir / "dashboard_run_page.png")

                t0 = time.perf_counter()
                page.get_by_role("tab", name="At a checkpoint").click()
                plots.filter(has_text="Embedding spectrum at step 1500").locator(".main-svg").first.wait_for(
                    timeout=30_000
                )
                plots.filter(has_text="Tokens in each key frequency").wait_for(timeout=30_000)
                wait_idle(page)
                checkpoint_s = time.perf_counter() - t0
                assert plots.filter(has_text="Neuron clusters at step 1500").count() == 1
                assert page.get_by_test_id("stException").count() == 0
                screenshot(page, test_output_dir / "dashboard_run_checkpoint.png")

                page.get_by_role("tab", name="Ablations").click()
                plots.filter(has_text="Head ablation").wait_for(timeout=30_000)
                wait_idle(page)
                assert plots.filter(has_text="Frequency ablation").count() == 1
                assert page.get_by_test_id("stException").count() == 0

                timing = test_output_dir / "dashboard_run_page_render.json"
                record = json.loads(timing.read_text()) if timing.exists() else {}
                record |= {
                    "browser_first_render_s": first_render_s,
                    "browser_training_tab_complete_s": complete_s,
                    "browser_checkpoint_tab_s": checkpoint_s,
                }
                timing.write_text(json.dumps(record))

                page.get_by_role("tab", name="Training").click()
                with live.lock():  # refreshes by itself while the run trains
                    live.write_status("running", 100)
                    page.get_by_test_id("stSelectbox").filter(has_text="Run").first.click()
                    page.get_by_role("option", name="live", exact=True).click()
                    page.get_by_text("Refresh while training").wait_for(timeout=30_000)
                    acc = page.get_by_test_id("stMetric").filter(has_text="Final test accuracy")
                    sync_api.expect(acc).not_to_contain_text("0.9700", timeout=30_000)
                    live.append_metrics(
                        {"step": 120, "train_loss": 0.01, "train_acc": 1.0, "test_loss": 0.02, "test_acc": 0.97}
                    )
                    sync_api.expect(acc).to_contain_text("0.9700", timeout=15_000)
                assert page.get_by_test_id("stException").count() == 0
            finally:
                browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # The render time is recorded above for the benchmark note; tests do not assert timings.
