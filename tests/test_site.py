"""The course's website (tools/build_site.py, `make site`; docs/site.md).

First, fast tests of what the build refuses to publish (a half-run chapter, an error, a live
widget, a chapter changed since the run, a chapter the run left out) and of how it writes pages
(links, the run's stamp, the Colab and Binder buttons, the static views of the explorers).

Then the built site in Chromium, as a reader sees it: `make test-site` (after `make site`) runs
these with `pytest --browser`; without that option they are skipped, and with it a missing site,
Chromium or Playwright is an error. They open the landing page and one chapter from the built
files over a local HTTP server and check, from the page, that every figure is an image that
loaded, the math rendered, the Colab button opens that chapter, every page says which course run
it shows, and no page shows a traceback or a widget that needs a kernel. Screenshots of the two
pages and of a static view are kept in build/browser/ (of every run, to look at).
"""
from __future__ import annotations

import http.server
import json
import os
import sys
import threading
from functools import partial
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import build_site  # noqa: E402

# ----------------------------------------------------------------------------- what is refused


def _nb(cells: list[dict]) -> dict:
    return {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def _code(source: str, outputs=(), count: int | None = 1, at: str = "2026-12-07T10:00:00.000000Z") -> dict:
    meta = {"execution": {"shell.execute_reply": at}} if count is not None else {}
    return {"cell_type": "code", "source": source, "metadata": meta, "execution_count": count,
            "outputs": list(outputs)}


def _md(source: str) -> dict:
    return {"cell_type": "markdown", "source": source, "metadata": {}}


HEADER = ("# 01 · A chapter\n\n[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
          "(https://colab.research.google.com/github/x/y/blob/main/notebooks/01_a.ipynb)\n\n"
          "See [ex](../exercises/ex01_a.ipynb).")
PNG = {"output_type": "display_data", "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}, "metadata": {}}


@pytest.fixture
def run(tmp_path):
    """A course clone with one chapter and the output folder of a complete course run of it."""
    root, course = tmp_path / "clone", tmp_path / "build"
    (root / "notebooks").mkdir(parents=True)
    (course / "notebooks").mkdir(parents=True)
    source = _nb([_md(HEADER), _code("x = 1", count=None), _code("print(x)", count=None)])
    (root / "notebooks" / "01_a.ipynb").write_text(json.dumps(source))
    executed = _nb([_md(HEADER), _code("x = 1"), _code("print(x)", [{"output_type": "stream", "name": "stdout",
                                                                      "text": "1\n"}])])
    (course / "notebooks" / "01_a.ipynb").write_text(json.dumps(executed))
    record = {"profile": "smoke", "date": "2026-12-07", "machine": {"device": "cpu", "torch": "2.15.0"},
              "chapters": {"01": {"notebook": "01_a.ipynb", "seconds": 12.0}}}
    (course / "run-times.json").write_text(json.dumps(record))
    return root, course


def _edit_copy(course: Path, edit) -> None:
    path = course / "notebooks" / "01_a.ipynb"
    nb = json.loads(path.read_text())
    edit(nb)
    path.write_text(json.dumps(nb))


def test_a_complete_run_passes(run):
    root, course = run
    assert build_site.check_run(course, root)["profile"] == "smoke"


@pytest.mark.parametrize("edit, problem", [
    (lambda nb: nb["cells"][2].update(execution_count=None, outputs=[]), "did not run: the run stopped before it"),
    (lambda nb: nb["cells"][2]["outputs"].append({"output_type": "error", "ename": "KeyError", "evalue": "'x'",
                                                  "traceback": []}), "shows an error: KeyError"),
    (lambda nb: nb["cells"][2]["outputs"].append({"output_type": "stream", "name": "stderr",
                                                  "text": "Traceback (most recent call last):\n"}),
     "prints a traceback"),
    (lambda nb: nb["cells"][2]["outputs"].append({"output_type": "display_data", "metadata": {}, "data": {
        "application/vnd.jupyter.widget-view+json": {"model_id": "1"}, "text/plain": "HBox()"}}), "live widget"),
    (lambda nb: nb["cells"][1].update(source="x = 2"), "has changed since the course run of 2026-12-07"),
    (lambda nb: nb["cells"][2]["metadata"]["execution"].update({"shell.execute_reply": "2026-10-01T10:00:00Z"}),
     "executed on 2026-10-01, not in the course run"),
])
def test_a_chapter_that_cannot_be_published_fails_the_build(run, edit, problem):
    root, course = run
    _edit_copy(course, edit)
    with pytest.raises(build_site.SiteError, match=problem):
        build_site.check_run(course, root)


def test_a_chapter_the_run_left_out_or_a_missing_run_fails_the_build(run):
    root, course = run
    (root / "notebooks" / "02_b.ipynb").write_text(json.dumps(_nb([_md("# 02")])))
    with pytest.raises(build_site.SiteError, match="02_b.ipynb is not in the course run"):
        build_site.check_run(course, root)
    (course / "run-times.json").unlink()
    with pytest.raises(build_site.SiteError, match="run `make course` first"):
        build_site.check_run(course, root)


def test_figures_drawn_but_not_shown_fail_the_build(run):
    root, course = run
    (course / "figures").mkdir()
    (course / "figures" / "01_loss.png").write_bytes(b"")
    with pytest.raises(build_site.SiteError, match="saved 1 figures but shows none"):
        build_site.check_run(course, root)
    _edit_copy(course, lambda nb: nb["cells"][2]["outputs"].append(PNG))
    build_site.check_run(course, root)


# ----------------------------------------------------------------------------- how pages are written

def test_links_go_to_pages_images_are_copied_and_other_files_go_to_the_repository(tmp_path):
    root, src = tmp_path / "clone", tmp_path / "src"
    (root / "docs").mkdir(parents=True)
    (root / "cvae_lib").mkdir()
    for name in ("README.md", "docs/a.md", "docs/fig.png", "cvae_lib/x.py", "CONTRIBUTING.md"):
        (root / name).write_text("text")
    pages = build_site.Pages(src, root)
    pages.add("README.md", "index.md")
    pages.add("docs/a.md")
    text = ("[home](../README.md#how-to-start) [code](../cvae_lib/x.py) ![fig](fig.png) "
            "[web](https://example.org) [gone](missing.md) [![b](fig.png)](../CONTRIBUTING.md)\n"
            "```\n[in code](../cvae_lib/x.py)\n```\n")
    out = pages.markdown("docs/a.md", text)
    assert "[home](../index.md#how-to-start)" in out
    assert f"[code]({build_site.repo_url()}/blob/main/cvae_lib/x.py)" in out
    assert "![fig](fig.png)" in out and (src / "docs" / "fig.png").exists()
    assert "[web](https://example.org)" in out and "[gone](missing.md)" in out   # Sphinx reports that one
    assert "[![b](fig.png)](../CONTRIBUTING.md)" in out and "CONTRIBUTING.md" in pages.queue
    assert "[in code](../cvae_lib/x.py)" in out                                  # code blocks untouched


def test_a_chapter_page_has_the_run_stamp_buttons_and_marked_static_views(tmp_path):
    course = tmp_path / "build"
    home = str(Path.home())
    nb = _nb([_md(HEADER), _code("latent_explorer(decode, mu)", [{**PNG, "output_type": "execute_result"}]),
              _code("save_figure(fig, 'x')", [{"output_type": "execute_result", "metadata": {}, "execution_count": 1,
                                               "data": {"text/plain": f"'{course}/figures/01_x.png'"}}, PNG]),
              _code("print(runs)", [{"output_type": "stream", "name": "stdout", "text": f"runs in {home}/.cache\n"}])])
    record = {"profile": "cpu", "date": "2026-12-07", "machine": {"device": "cpu", "torch": "2.15.0"},
              "chapters": {"01": {"seconds": 200.0}}}
    page = build_site.chapter_page(build_site.Pages(tmp_path / "src"), "notebooks/01_a.ipynb", nb, record, course)
    header, stamp, explorer, note, saved, printed = page["cells"]
    colab = build_site.colab_url("notebooks/01_a.ipynb")
    assert f"]({colab})" in header["source"] and "mybinder.org/v2/gh/" in header["source"]
    assert "x/y/blob" not in header["source"]                       # the chapter's own link, from pyproject
    assert "`cpu` profile" in stamp["source"] and "about 3 min on cpu" in stamp["source"]
    assert "7 December 2026" in stamp["source"]                     # when the notebook itself ran
    assert "static view of this explorer" in note["source"] and colab in note["source"]
    assert saved["outputs"] == [PNG]                                # the saved figure's path is left out
    assert printed["outputs"][0]["text"] == "runs in ~/.cache\n"


# ----------------------------------------------------------------------------- the built site, in Chromium

SITE = Path(os.environ.get("CVAE_SITE_DIR", ROOT / "build" / "site"))
ARTEFACTS = ROOT / "build" / "browser"
CHROMIUM = os.environ.get("CVAE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CHAPTER = "notebooks/02_vae"      # figures, math and two explorers
LOAD_MS = 120_000                 # a page and its math, on a busy 2-core machine
NOT_CONTENT = ["Traceback (most recent call last)", "Error displaying widget", "Loading widget",
               "kernel required", "Kernel required", "A Jupyter widget could not be displayed"]


@pytest.fixture(scope="module")
def site():
    """The built site over HTTP on a free local port (as GitHub Pages serves it), and its record."""
    html = SITE / "html"
    if not (html / "index.html").exists():
        pytest.fail(f"no site in {html}: run `make site` first (after `make course`)")
    handler = partial(type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}),
                      directory=str(html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", json.loads((SITE / "src" / "_site.json").read_text())
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (or set CVAE_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("no Playwright: `pip install -r requirements-test.txt` (make test-site does)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _open(browser, url: str):
    """A page at `url` with every failed request to the site collected in page.failed."""
    pg = browser.new_context(viewport={"width": 1300, "height": 900}).new_page()
    pg.failed = []
    origin = url.split("/", 3)[:3]
    local = lambda u: u.split("/", 3)[:3] == origin  # noqa: E731
    pg.on("requestfailed", lambda r: local(r.url) and pg.failed.append(f"{r.url}: {r.failure}"))
    pg.on("response", lambda r: local(r.url) and r.status >= 400 and pg.failed.append(f"{r.url}: {r.status}"))
    pg.set_default_timeout(LOAD_MS)
    pg.goto(url, wait_until="load")
    return pg


def _images(pg, selector: str) -> list[dict]:
    return pg.eval_on_selector_all(selector, """els => els.map(e => ({src: e.getAttribute('src'),
        loaded: e.complete && e.naturalWidth > 0}))""")


def _shows_no_broken_content(pg) -> None:
    text = pg.inner_text("body")
    for bad in NOT_CONTENT:
        assert bad not in text, f"the page shows {bad!r}"
    assert pg.locator("script[type='application/vnd.jupyter.widget-view+json']").count() == 0
    assert not pg.failed, f"requests that failed: {pg.failed}"


@pytest.mark.browser
def test_the_landing_page_is_the_readme_with_its_figure_and_the_run(site, browser):
    url, record = site
    pg = _open(browser, f"{url}/index.html")
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTEFACTS / "site-landing.png"))
    title = (SITE / "src" / "index.md").read_text().splitlines()[0].removeprefix("# ")   # the README's
    assert pg.inner_text("main h1").strip() == title
    local = [i for i in _images(pg, "main img") if not i["src"].startswith("http")]
    assert local and all(i["loaded"] for i in local), f"figures that did not load: {local}"
    banner = pg.inner_text(".bd-header-announcement")
    assert f"course run of {record['date']}" in banner and record["profile"] in banner
    toc = pg.eval_on_selector_all("nav.bd-links a", "els => els.map(e => e.getAttribute('href'))")
    chapters = sorted(p.stem for p in (SITE / "src" / "notebooks").glob("*.ipynb"))
    assert [h.removeprefix("notebooks/").removesuffix(".html") for h in toc if h.startswith("notebooks/")] == chapters
    _shows_no_broken_content(pg)
    pg.goto(f"{url}/search.html?q=reparameterisation", wait_until="load")      # search, in the browser
    pg.wait_for_selector("#search-results ul.search li")
    hits = pg.eval_on_selector_all("#search-results ul.search li a", "els => els.map(e => e.getAttribute('href'))")
    assert any(h.startswith("notebooks/02_vae.html") for h in hits), hits


@pytest.mark.browser
def test_a_chapter_shows_its_figures_math_buttons_and_static_views(site, browser):
    url, record = site
    pg = _open(browser, f"{url}/{CHAPTER}.html")
    pg.wait_for_selector("mjx-container", state="attached")
    pg.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.document"
                         " && MathJax.startup.document.getMathItemsWithin(document.body).length > 0")
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    pg.screenshot(path=str(ARTEFACTS / "site-chapter.png"))
    figures = _images(pg, ".cell_output img")
    assert figures, "no figure in the chapter's outputs"
    assert all(f["loaded"] for f in figures), f"figures that did not load: {[f for f in figures if not f['loaded']]}"
    raw = pg.eval_on_selector_all(".math", "els => els.filter(e => !e.querySelector('mjx-container')).length")
    assert raw == 0 and pg.locator("mjx-container").count() > 10, "math left as TeX source"
    colab = pg.eval_on_selector_all("a[href*='colab.research.google.com/github/']", "els => els.map(e => e.href)")
    assert colab and all(h.endswith(f"/blob/{record['branch']}/{CHAPTER}.ipynb") for h in colab), colab
    binder = pg.eval_on_selector_all("a[href*='mybinder.org/v2/gh/']", "els => els.map(e => e.href)")
    assert binder and all(CHAPTER.split("/")[1] in h for h in binder), binder
    assert f"in the {record['profile']} profile" in pg.inner_text("main")   # the chapter's stamp
    assert record["date"] in pg.inner_text(".bd-header-announcement")
    note = pg.locator("p", has_text="static view of this explorer").first
    view = note.locator("xpath=preceding::div[contains(@class, 'cell_output')][1]")
    assert view.locator("img").count() >= 1
    view.scroll_into_view_if_needed()
    view.screenshot(path=str(ARTEFACTS / "site-static-view.png"))
    _shows_no_broken_content(pg)


@pytest.mark.browser
def test_no_built_page_shows_a_traceback_or_a_widget_placeholder():
    pages = sorted((SITE / "html").rglob("*.html"))
    assert len(pages) > 10
    for page in pages:
        text = page.read_text(errors="replace")
        assert "Traceback (most recent call last)" not in text, page
        assert "application/vnd.jupyter.widget-view+json" not in text, page
