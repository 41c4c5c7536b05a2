"""Sphinx settings of the course's website. tools/build_site.py (`make site`) writes the pages and
runs Sphinx with this folder as its configuration; docs/site.md says how the site is built.

The pages come from one `make course` run; `_site.json`, which build_site.py writes beside them,
says which (profile, date, device) and where the repository is, and every page says it too.
"""
import json
import shutil
from importlib.util import find_spec
from pathlib import Path

project = "Generating images with VAEs and diffusion models"
author = "the course's authors"
copyright = "the course's authors"
extensions = ["myst_nb"]

exclude_patterns = ["_build", "**.ipynb_checkpoints", "_site.json"]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3            # links such as docs/results.md#run-times are checked
nb_execution_mode = "off"           # the pages show `make course`'s outputs; the site runs no code
nb_render_markdown_format = "myst"  # tables and math in the Markdown that cells print
nb_output_stderr = "show"

# MathJax 3 from sphinx-mathjax-offline's wheel, copied into the site (see setup), so that math
# renders with no CDN; its fonts and TeX extensions load relative to this file.
mathjax_path = "mathjax/tex-chtml.js"
MATHJAX_PARTS = ["tex-chtml.js", "input/tex/extensions", "output/chtml/fonts/woff-v2", "a11y"]

html_theme = "sphinx_book_theme"
html_title = "VAEs and diffusion models on CIFAR-10"
html_last_updated_fmt = None
html_show_sourcelink = False
html_copy_source = True          # the download button offers the executed notebook
html_theme_options = {
    "path_to_docs": "",
    "repository_branch": "main",
    "use_repository_button": True,
    "use_download_button": True,
    "launch_buttons": {"colab_url": "https://colab.research.google.com",
                       "binderhub_url": "https://mybinder.org", "notebook_interface": "jupyterlab"},
    "show_toc_level": 2,
    "navbar_persistent": [],        # the search box is in the sidebar; not a second one above it
}


def _stamp(app, config) -> None:
    """The repository and the course run, from _site.json, on every page (banner and footer)."""
    site = json.loads((Path(app.srcdir) / "_site.json").read_text())
    run = (f"the course run of {site['date']} in the <code>{site['profile']}</code> profile "
           f"({site['device']}, torch {site['torch']})")
    config.html_theme_options.update(
        repository_url=site["repository"], repository_branch=site["branch"],
        announcement=f"Executed chapters from {run}: every figure and number on a chapter page is that run's.",
        extra_footer=f"<p>Built from {run}, with <code>make course</code> and <code>make site</code>.</p>")
    config.html_context = {**config.html_context, "course_run": site}


def _copy_mathjax(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    spec = find_spec("sphinx-mathjax-offline")
    if spec is None:
        raise RuntimeError("sphinx-mathjax-offline is not installed: make site installs requirements-site.txt")
    source = Path(spec.origin).parent / "static" / "mathjax"
    target = Path(app.outdir) / "_static" / "mathjax"
    for part in MATHJAX_PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / part, target / part)


def setup(app):
    app.connect("config-inited", _stamp)
    app.connect("build-finished", _copy_mathjax)
