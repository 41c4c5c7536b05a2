"""JupyterLab in a real browser: chapters 02 and 04 run from the Run menu, and their explorers
redraw when a slider is dragged.

nbval runs the notebooks' code, but no browser ever renders their widgets or sends a slider's
move back to the kernel. This test starts JupyterLab (`CVAE_PROFILE=smoke`) and drives Debian's
Chromium with Playwright: open the notebook, run it from the Run menu (02: Run All Cells; 04:
the cells the scrubber needs, see EXPLORERS), wait for the kernel, drag a slider, and check on
the page that the image changed and that no traceback or widget error appeared. Screenshots,
the browser console and the server log of a failed run are kept in build/browser/.

It runs with `pytest --browser` (`make test-browser`, which CI runs after `make test`); without
that option it is skipped, and with it a missing Chromium or Playwright is an error, not a skip.
"""
from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTEFACTS = ROOT / "build" / "browser"
CHROMIUM = os.environ.get("CVAE_CHROMIUM", "/usr/bin/chromium")
# As root in a container, with no GPU and no internet: no sandbox, and no background requests
# (the closed network refuses them, many at a time).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RUN_S = 600              # per notebook, from the Run menu to an idle kernel
REDRAW_S = 60            # from releasing the slider to the new image

# JupyterLab settings for the test server: never autosave (the kernel's outputs must not reach
# the committed notebooks), every cell in the DOM (no virtual scrolling), no news or update checks.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": '{"autosave": false}',
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": '{"windowingMode": "none"}',
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        '{"fetchNews": "false", "checkForUpdates": false}',
}
WIDGET_ERRORS = ["Error displaying widget", "Failed to load model class", "Error rendering output",
                 "A Jupyter widget could not be displayed"]


@dataclass(frozen=True)
class Explorer:
    notebook: str            # under notebooks/
    call: str                # text of the code cell that shows the explorer
    slider: str              # the description of the slider to drag
    skip: str | None = None  # text of the first code cell the explorer does not need: then only
    #                          the cells above it run, and the explorer's cell (and those below)


# 02 runs whole (12 s in the smoke profile on an idle 2-core CPU). Of 04's 60 s, sections 9-12
# (DDPM sampling, 1,000 steps with and without clipping, DDIM and guidance sweeps, the class
# grids) are most of the time and the scrubber needs none of them; nbval runs them in `make test`.
EXPLORERS = [Explorer("02_vae.ipynb", "latent_explorer(lambda", "PC 1"),
             Explorer("04_ddpm.ipynb", "timestep_scrubber(diffusion", "t", skip="no_clip = Diffusion(")]


# ----------------------------------------------------------------------------- fixtures

@dataclass
class Lab:
    url: str        # http://127.0.0.1:<port>
    token: str
    log: Path       # the server's (and its kernels') stdout and stderr


def _wait_until_up(lab: Lab, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{lab.log.read_text()[-3000:]}")
        try:
            req = urllib.request.Request(f"{lab.url}/api/status", headers={"Authorization": f"token {lab.token}"})
            with urllib.request.urlopen(req, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer within {timeout:.0f} s:\n{lab.log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def lab(tmp_path_factory, free_port) -> Iterator[Lab]:
    """JupyterLab on a free local port with a random token, serving the repository root; the
    kernels run the smoke profile. Stopped, kernels included, at the end of the module."""
    tmp = tmp_path_factory.mktemp("lab")
    for name, text in LAB_SETTINGS.items():
        (tmp / "settings" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "settings" / name).write_text(text)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    lab = Lab(f"http://127.0.0.1:{free_port()}", secrets.token_hex(16), ARTEFACTS / "jupyter-server.log")
    env = {**os.environ, "CVAE_PROFILE": "smoke", "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
           "JUPYTER_PLATFORM_DIRS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("CVAE_STATIC_WIDGETS", None)                # the widgets themselves, not their fallback
    cmd = [str(Path(sys.executable).with_name("jupyter")), "lab", "--no-browser", "--ip", "127.0.0.1",
           "--port", lab.url.rsplit(":", 1)[1], f"--IdentityProvider.token={lab.token}", "--allow-root",
           f"--ServerApp.root_dir={ROOT}", f"--LabApp.user_settings_dir={tmp / 'settings'}",
           f"--LabApp.workspaces_dir={tmp / 'workspaces'}"]
    with lab.log.open("w") as log:
        # a session of its own, so the teardown stops the server and its kernels and nothing else
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        _wait_until_up(lab, proc)
        yield lab
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's, not Playwright's download) with a fresh profile."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (or set CVAE_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("no Playwright: `pip install -r requirements-test.txt` (make test-browser does)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser, request):
    """A new page (its own cookies); on failure its screenshot and console go to build/browser/."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    console: list[str] = []
    pg.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    pg.on("pageerror", lambda e: console.append(f"pageerror: {e}"))
    pg.set_default_timeout(30_000)
    failed_before = request.session.testsfailed
    yield pg
    if request.session.testsfailed > failed_before:     # this test's call failed
        stem = ARTEFACTS / re.sub(r"[^\w.-]+", "_", request.node.name)
        try:
            pg.screenshot(path=f"{stem}.png", full_page=True)
        except Exception as e:   # a crashed page: keep the console anyway
            console.append(f"screenshot failed: {e}")
        Path(f"{stem}-console.log").write_text("\n".join(console))
    context.close()


# ----------------------------------------------------------------------------- the page

def _menu(page, menu: str, item: str) -> None:
    """Click a menu of the menu bar, then one of its items (exact labels)."""
    page.locator(".lm-MenuBar-item", has_text=re.compile(rf"^{re.escape(menu)}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(rf"^{re.escape(item)}$")).click()


def _code_cell(page, text: str):
    cell = page.locator(".jp-Notebook .jp-CodeCell", has_text=text)
    assert cell.count() == 1, f"not exactly one code cell contains {text!r}"
    return cell


def _run(page, explorer: Explorer) -> None:
    """Run the notebook from the Run menu, as a student would, once the kernel is up: all cells,
    or, where `explorer.skip` is set, all cells above that one, then the explorer's cell."""
    # the status bar says "Python 3 (ipykernel) | Idle" once the kernel answers (the execution
    # indicator says idle before there is a kernel, and cells run then are silently dropped)
    page.locator("#jp-main-statusbar", has_text=re.compile(r"\(ipykernel\) \| Idle")).wait_for(timeout=120_000)
    if explorer.skip is None:
        _menu(page, "Run", "Run All Cells")
    else:
        _code_cell(page, explorer.skip).locator(".jp-InputPrompt").click()     # select, not edit
        _menu(page, "Run", "Run All Above Selected Cell")
        _code_cell(page, explorer.call).locator(".jp-InputPrompt").click()
        _menu(page, "Run", "Run Selected Cell and All Below")
    page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt", has_text=re.compile(r"\*|\d")).first.wait_for(
        timeout=30_000)                                  # queued or run: the menu took


def _wait_for_kernel(page, timeout_s: float) -> None:
    """Until no cell is queued or running ([*]) and the kernel is idle. A cell that raises stops
    the run, so the wait ends there too; the caller checks which cells ran."""
    page.wait_for_function(
        r"""() => {
            const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
            const bar = document.querySelector('#jp-main-statusbar');
            const idle = bar && /\(ipykernel\) \| Idle/.test(bar.innerText);
            return idle && prompts.length > 0 && !prompts.some(p => p.textContent.includes('*'))
                   && prompts.some(p => /\d/.test(p.textContent));
        }""", timeout=timeout_s * 1000, polling=500)


def _assert_no_errors(page, explorer: Explorer, where: str) -> None:
    """No traceback or widget error in any output, and every cell meant to run has run."""
    cells = page.locator(".jp-Notebook .jp-CodeCell")
    prompts = cells.locator(".jp-InputPrompt").all_inner_texts()
    sources = cells.locator(".jp-InputArea-editor").all_inner_texts()
    first_skipped = next(i for i, src in enumerate(sources + [""]) if explorer.skip is None or explorer.skip in src)
    call = next(i for i, src in enumerate(sources) if explorer.call in src)
    meant = [i for i in range(len(sources)) if i < first_skipped or i >= call]
    unrun = [i for i in meant if not re.search(r"\d", prompts[i])]
    outputs = "\n".join(cells.locator(".jp-OutputArea").all_inner_texts())
    assert "Traceback (most recent call last)" not in outputs, f"{where}: a cell raised:\n{outputs[-3000:]}"
    assert not unrun, f"{where}: code cells {unrun} of {len(prompts)} did not run"
    shown = [e for e in WIDGET_ERRORS if e in outputs]
    assert not shown, f"{where}: widget errors on the page: {shown}"


def _drag(page, handle, dx: float) -> None:
    """Press the slider's handle, move it dx pixels to the right in a few steps, release."""
    handle.scroll_into_view_if_needed()
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y, steps=8)
    page.mouse.up()


# ----------------------------------------------------------------------------- the test

@pytest.mark.parametrize("explorer", EXPLORERS, ids=[e.notebook.split("_")[0] for e in EXPLORERS])
def test_explorer_redraws_in_jupyterlab(lab, page, explorer):
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    # a workspace of its own, so the page shows this notebook only (not the tabs of the test before)
    workspace = explorer.notebook.split(".")[0]
    page.goto(f"{lab.url}/lab/workspaces/{workspace}/tree/notebooks/{explorer.notebook}?reset&token={lab.token}")
    _run(page, explorer)
    t0 = time.monotonic()
    _wait_for_kernel(page, RUN_S)
    print(f"{explorer.notebook}: the cells ran in {time.monotonic() - t0:.0f} s in the browser")
    _assert_no_errors(page, explorer, explorer.notebook)

    cell = _code_cell(page, explorer.call)
    slider = cell.locator(".widget-slider", has=page.locator(".widget-label", has_text=re.compile(
        rf"^{re.escape(explorer.slider)}$")))
    slider.wait_for(timeout=30_000)                    # the widget view, not its static fallback
    image = cell.locator(".jp-OutputArea-output img").first
    image.wait_for()
    readout = slider.locator(".widget-readout")
    value, src, pixels = readout.inner_text(), image.get_attribute("src"), image.screenshot()

    _drag(page, slider.locator(".noUi-handle"), dx=40)
    assert readout.inner_text() != value, f"the slider {explorer.slider!r} did not move"
    try:
        page.wait_for_function("([img, src]) => img.getAttribute('src') !== src", arg=[image.element_handle(), src],
                               timeout=REDRAW_S * 1000, polling=200)
        replaced = True
    except PlaywrightTimeout:
        replaced = False
    assert replaced, (f"{explorer.notebook}: {explorer.slider} moved {value} -> {readout.inner_text()}, "
                      f"but the image was not replaced within {REDRAW_S} s")
    assert image.screenshot() != pixels, f"{explorer.notebook}: a new image, but the same pixels"
    _assert_no_errors(page, explorer, f"{explorer.notebook} after moving {explorer.slider!r}")


@pytest.fixture(autouse=True, scope="module")
def _keep_server_log_only_on_failure(request):
    """The server log stays in build/browser/ only if a test of this module failed."""
    failed_before = request.session.testsfailed
    yield
    if request.session.testsfailed == failed_before:
        shutil.rmtree(ARTEFACTS, ignore_errors=True)
