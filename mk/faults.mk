# The fault suite (tests/faults/faults.py): every public call in every binding under a
# paused, killed, paused-cluster-master and black-holed Redis (the deadline table), and
# clients in every runtime under load while a cluster master is killed, slots are
# resharded and a Sentinel master is killed. It starts its own servers (it kills them), so
# it needs no POLYCACHE_TEST_REDIS. `make faults` runs it alone; `make test` runs it as
# the last suite. It also runs the fail-safe table (loader raising or hanging past
# hard_timeout, Redis paused or killed, fail-safe on and off, every binding; a few
# seconds). FAULTS_ARGS come last, so `make faults FAULTS_ARGS='--matrices failsafe'`
# runs one table.
FAULTS_MATRICES ?= deadline,failsafe,failover,sentinel
FAULTS_ARGS ?=
SUITES += test-faults

.PHONY: faults-deps
faults-deps: interop-deps
	$(CARGO) build -q -p polycache-harness

.PHONY: test-faults
test-faults: faults-deps ## The fault suite: deadline and fail-safe tables, failover and Sentinel under load
	POLYCACHE_WASI_AGENT="$(WASI_AGENT)" $(PY) tests/faults/faults.py --matrices $(FAULTS_MATRICES) $(FAULTS_ARGS)

.PHONY: faults
faults: setup build test-faults ## Run the fault suite alone (FAULTS_ARGS='--matrices deadline' …)
