# Python binding: a venv in the clone, `pip install ./bindings-python` (the user's path,
# maturin as the PEP 517 backend, release build), stubs gated by mypy.stubtest, pytest.
PY_VENV ?= $(CURDIR)/.venv
PY := $(PY_VENV)/bin/python
SETUP_STEPS += setup-python
LINT_STEPS += lint-python
SUITES += test-python
BENCHES += bench-python

$(PY):
	python3 -m venv $(PY_VENV)

.PHONY: setup-python
setup-python: $(PY) ## Create .venv with the Python test tools
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "pytest>=8" "mypy>=1.10" "ruff>=0.6"

.PHONY: lint-python
lint-python: ## ruff check + format check, clippy for the Python binding
	$(PY) -m ruff check bindings-python bench/python tests/vectors
	$(PY) -m ruff format --check bindings-python bench/python tests/vectors
	$(CARGO) clippy -p polycache-python -- -D warnings

.PHONY: install-python
install-python: $(PY) ## pip install ./bindings-python into .venv (release build)
	$(PY) -m pip install -q --force-reinstall --no-deps ./bindings-python

.PHONY: test-python
test-python: install-python ## Stub gate (mypy.stubtest) and the pytest suite on every store
	cd bindings-python && $(PY) -m mypy.stubtest polycache._native
	cd bindings-python && $(PY) -m mypy python/polycache tests
	cd bindings-python && $(PY) -m pytest -q -p no:cacheprovider tests

.PHONY: bench-python
bench-python: install-python ## polycache vs redis-py, redis.asyncio, aiocache, dogpile.cache, cashews; the near tier vs cachetools; freshness and the lock vs dogpile.cache
	$(PY) -m pip install -q -r bench/python/requirements.txt
	POLYCACHE_HARNESS=$(BIN_DIR)/debug/polycache-harness $(PY) bench/python/bench.py
	POLYCACHE_BENCH_CPU=0 POLYCACHE_HARNESS=$(BIN_DIR)/debug/polycache-harness $(PY) bench/python/codec.py
	POLYCACHE_HARNESS=$(BIN_DIR)/debug/polycache-harness $(PY) bench/python/near.py
	POLYCACHE_HARNESS=$(BIN_DIR)/debug/polycache-harness $(PY) bench/python/fresh.py
