# The interop matrix: every runtime writes, every runtime reads, in separate processes,
# over real Redis (tests/interop/matrix.py). `make interop` also refreshes the README table.
INTEROP_RUNTIMES ?= rust,python,node,wasi
SUITES += test-interop

.PHONY: interop-deps
interop-deps: install-python node-build wasi-agent
	$(CARGO) build -q -p polycache-interop

.PHONY: test-interop
test-interop: interop-deps ## The interop matrix (needs POLYCACHE_TEST_REDIS; `make test` sets it)
	POLYCACHE_WASI_AGENT="$(WASI_AGENT)" $(PY) tests/interop/matrix.py --runtimes $(INTEROP_RUNTIMES)

.PHONY: interop
interop: setup build interop-deps ## Run the interop matrix on fresh servers and update the README's Interop table
	scripts/with-redis env POLYCACHE_WASI_AGENT="$(WASI_AGENT)" $(PY) tests/interop/matrix.py --runtimes $(INTEROP_RUNTIMES) --readme README.md

# The stampede benchmark drives the interop agents (a debug Rust agent, the binding in the
# Python venv and the Node addon as bench-python / bench-node left them, built here only
# when missing) and dogpile.cache from bench/python/requirements.txt.
BENCHES += bench-stampede

.PHONY: bench-stampede
bench-stampede: $(PY) ## 1,000 callers in 4 processes (Rust, Python x2, Node) on one key with the stampede lock: loads and time to the value, vs dogpile.cache
	@$(PY) -c 'import polycache' 2>/dev/null || $(MAKE) --no-print-directory install-python
	@ls $(NODE_DIR)/*.node >/dev/null 2>&1 || ($(NAPI) build --platform --release >/dev/null)
	$(PY) -m pip install -q -r bench/python/requirements.txt
	$(CARGO) build -q -p polycache-harness -p polycache-interop
	POLYCACHE_HARNESS=$(BIN_DIR)/debug/polycache-harness $(PY) bench/python/stampede.py
