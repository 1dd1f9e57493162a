# mnist-course: `make course` runs the whole course, `make test` runs every test.
# Both create the virtual environment (.venv) on first use and install the package into it.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
MC     := $(VENV)/bin/mnist-course
STAMP  := $(VENV)/.installed-stamp
BUILD  := $(CURDIR)/build
# CPU threads for PyTorch/NumPy in `make course` (the recorded results used 1; `make course THREADS=8`
# on a bigger machine; the GPU is used automatically when there is one).
THREADS ?= 1

# Fast-mode settings for the test suite: outputs go to build/test (fast-mode models to
# build/test/models/fast), never to figures/, results/ or models/; never a recorded run.
# One torch/BLAS thread: on small batches and few cores, more threads only fight each other.
TEST_ENV := MNIST_COURSE_FAST=1 MNIST_COURSE_RECORD=0 MNIST_COURSE_PROGRESS=0 MPLBACKEND=Agg OMP_NUM_THREADS=1 \
	MNIST_COURSE_FIGURES=$(BUILD)/test/figures \
	MNIST_COURSE_RESULTS=$(BUILD)/test/results.json \
	MNIST_COURSE_MODELS=$(BUILD)/test/models

.PHONY: help install course course-fast test test-fast lint nbval readme lab benchmark clean web-deps export serve site

help:
	@echo "Each target below calls the mnist-course command; $(MC) --help lists all of its commands."
	@echo "make course      the recorded run: every notebook (full mode) into build/notebooks, writes the tracked figures/ and results/"
	@echo "make course-fast every notebook in fast mode (minutes), into build/fast/ (never figures/, results/ or models/)"
	@echo "make test        lint, library tests, notebook policy, papermill batch run and nbval (fast mode)"
	@echo "make test-fast   lint and library tests only"
	@echo "make lab         copy the notebooks into my-notebooks/ (git-ignored, never overwritten) and open JupyterLab there"
	@echo "make benchmark   time data loading, training to 99% and inference; writes results/benchmark.md"
	@echo "make readme      regenerate the generated blocks of README.md, docs/ and CONTRIBUTING.md from results/ and the code"
	@echo "make nbval-refs  run the notebooks in fast mode, store the outputs of their # NBVAL_CHECK_OUTPUT cells"
	@echo "make export      export the course CNN to ONNX (models/onnx/), checked against PyTorch on the 10,000 test digits"
	@echo "make serve       the web service and drawing page on http://127.0.0.1:8000 (FastAPI + uvicorn)"
	@echo "make site        the course as a static website in build/site/, from the last make course run"
	@echo "make clean       remove build/ (keeps .venv, data/, figures/, results/ and models/)"
	@echo "make images      the service and lab container images (podman, else docker; docs/shipping.md, Containers)"

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

course: $(STAMP)
	OMP_NUM_THREADS=$(THREADS) $(MC) course --record --output $(BUILD)/notebooks
	$(MC) readme --update
	$(MC) nbrefs --check $(BUILD)/notebooks

course-fast: $(STAMP)
	OMP_NUM_THREADS=$(THREADS) $(MC) course --fast --output $(BUILD)/fast/notebooks

lint: $(STAMP)
	$(PY) -m ruff check .

test-fast: lint
	$(TEST_ENV) $(PY) -m pytest -m "not slow"

nbval: $(STAMP)
	$(TEST_ENV) $(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks/

test: lint web-deps
	$(TEST_ENV) $(PY) -m pytest
	$(TEST_ENV) $(PY) -m pytest --nbval-lax --nbval-current-env -p no:cacheprovider notebooks/

# nbval's references: the outputs of the cells marked # NBVAL_CHECK_OUTPUT, stored in notebooks/ from a
# fast-mode run (figures, results and models of that run go to a temporary folder). Run it after changing
# a checked cell; `mnist-course nbrefs --check build/notebooks` compares a full run with them.
.PHONY: nbval-refs
nbval-refs: $(STAMP)
	$(MC) nbrefs --update

readme: $(STAMP)
	$(MC) readme --update

lab: $(STAMP)
	$(MC) lab

benchmark: $(STAMP)
	$(MC) bench --out results/benchmark.md
	$(MC) readme --update

clean:
	rm -rf $(BUILD) .pytest_cache .ruff_cache

# onnxruntime-web for the drawing page's in-browser inference, from npm into build/web-deps/ (ignored),
# served by `make serve` under /vendor/; never a CDN.
ORT_WEB_VERSION ?= 1.30.0
WEB_DEPS := $(BUILD)/web-deps/node_modules/onnxruntime-web/package.json
$(WEB_DEPS):
	npm install --no-audit --no-fund --prefix $(BUILD)/web-deps onnxruntime-web@$(ORT_WEB_VERSION)

web-deps: $(WEB_DEPS)

export: $(STAMP)
	$(MC) export --model cnn

serve: $(STAMP)
	$(MC) serve --model cnn --port 8000

site: $(STAMP)
	$(MC) site

# Container images (docs/shipping.md, "Containers"), built with podman when it is installed, else docker;
# the build context is the repository (.dockerignore). The service image bakes in MODEL (an ONNX
# export under models/onnx/ or build/containers/), exported first when missing. podman writes OCI
# images by default, which have no HEALTHCHECK: --format docker keeps it. IMAGE_FLAGS: more build flags.
ENGINE        ?= $(shell command -v podman >/dev/null 2>&1 && echo podman || echo docker)
SERVICE_IMAGE ?= localhost/mnist-course-service:latest
LAB_IMAGE     ?= localhost/mnist-course-lab:latest
MODEL         ?= models/onnx/cnn.onnx
IMAGE_FLAGS   ?=
IMAGE_FORMAT  := $(if $(findstring podman,$(ENGINE)),--format docker)
.PHONY: images image-service image-lab
images: image-service image-lab

image-service:
	@test -f $(MODEL) || $(MAKE) --no-print-directory export
	$(ENGINE) build $(IMAGE_FORMAT) $(IMAGE_FLAGS) --build-arg MODEL=$(MODEL) -f containers/service/Containerfile -t $(SERVICE_IMAGE) .

image-lab:
	$(ENGINE) build $(IMAGE_FORMAT) $(IMAGE_FLAGS) -f containers/lab/Containerfile -t $(LAB_IMAGE) .
