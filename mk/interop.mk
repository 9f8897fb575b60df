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
