# polycache: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# One cargo target dir outside the clone, reused by every build, binding and later clone
# on this machine (CI runs on the same machine, so it starts warm when one exists).
export CARGO_TARGET_DIR ?= $(HOME)/.cache/polycache/target
CARGO ?= cargo
# Always name the target triple: napi passes --target, and cargo keeps explicit-target
# artifacts apart from implicit ones; naming it everywhere lets every build share them.
export CARGO_BUILD_TARGET ?= $(shell rustc -vV | sed -n 's/^host: //p')
BIN_DIR := $(CARGO_TARGET_DIR)/$(CARGO_BUILD_TARGET)

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

.PHONY: demo
demo: ## Run the cache-aside demo on the embedded store (no Redis); DEMO_URL=redis://… for Redis
	$(CARGO) run -q -p polycache-cli -- demo --url "$(or $(DEMO_URL),memory://)"

.PHONY: setup
setup: ## Install what the tests need (redis-server via apt, clippy, rustfmt, …)
	scripts/setup
	@for step in $(SETUP_STEPS); do $(MAKE) --no-print-directory $$step || exit 1; done

.PHONY: lint
lint: ## cargo fmt --check, clippy -D warnings, and each language's linters
	$(CARGO) fmt --all --check
	$(CARGO) clippy --all-targets -- -D warnings
	@for step in $(LINT_STEPS); do $(MAKE) --no-print-directory $$step || exit 1; done

.PHONY: build
build: ## Build the workspace (core, harness, CLI) and the test binaries
	$(CARGO) build --all-targets

.PHONY: test
test: setup lint build ## Install what is missing, lint, and run every suite against real Redis
	scripts/with-redis $(MAKE) --no-print-directory suites

# Each language adds its pieces in mk/<lang>.mk: SETUP_STEPS, LINT_STEPS, SUITES, BENCHES.
SETUP_STEPS :=
LINT_STEPS :=
SUITES := test-rust
BENCHES := bench-rust
-include mk/python.mk mk/node.mk mk/wasm.mk mk/interop.mk mk/faults.mk

.PHONY: suites
suites: $(SUITES) ## Run every suite (needs POLYCACHE_TEST_REDIS; `make test` sets it)

.PHONY: test-rust
test-rust: ## The Rust suites: vectors, behaviour on every store, failures, placement, doctests
	$(CARGO) test

.PHONY: bench
bench: ## Every benchmark, side by side with peer libraries where they exist
	@for step in $(BENCHES); do $(MAKE) --no-print-directory $$step || exit 1; done

.PHONY: bench-rust
bench-rust: ## Criterion benches of the envelope and the ring
	$(CARGO) bench -p polycache --bench core -- --warm-up-time 1 --measurement-time 3

.PHONY: harness
harness: build ## Start Redis servers and print their URLs as JSON (Ctrl-D stops them)
	$(BIN_DIR)/debug/polycache-harness

.PHONY: fmt
fmt: ## Format the Rust code
	$(CARGO) fmt --all

# cargo-fuzz passes nightly's -Z flags; RUSTC_BOOTSTRAP=1 lets the stable compiler take them.
# The fuzz crate is outside the workspace (its own [workspace]), so no other build sees it.
# -malloc_limit_mb=64: one allocation above 64 MB is reported as a crash; the target's
# limits are 64 KiB, so such an allocation could only come from a claimed length.
FUZZ_SECONDS ?= 60
.PHONY: fuzz
fuzz: ## Fuzz the envelope decoder for FUZZ_SECONDS (default 60) with cargo-fuzz; not in `make test`
	@cargo fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	python3 fuzz/seed.py fuzz/corpus/decode
	cd fuzz && RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR=$(CARGO_TARGET_DIR)/fuzz cargo fuzz run \
	  --target $(CARGO_BUILD_TARGET) decode corpus/decode -- \
	  -max_total_time=$(FUZZ_SECONDS) -malloc_limit_mb=64
