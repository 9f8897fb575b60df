# The edge (bindings-wasm/): polycache.wasm, a WASI Preview 2 component, tested in a
# wasmtime host (bindings-wasm/host) against the harness's Redis; and the wasm-bindgen
# package for JS edge runtimes (bindings-wasm/js), tested with node:test.
WASM_BINDGEN_VERSION := 0.2.130
# A profile of its own so no other build changes: size over speed, LTO, one codegen unit,
# abort on panic. Defined on the command line, so the root manifest stays as it is. The
# component is stripped by cargo; the JS module keeps its `target_features` section for
# wasm-bindgen, which then drops the names itself.
WASM_PROFILE := --profile wasm \
  --config 'profile.wasm.inherits="release"' --config 'profile.wasm.opt-level="z"' \
  --config 'profile.wasm.lto=true' --config 'profile.wasm.codegen-units=1' \
  --config 'profile.wasm.panic="abort"'
WASM_COMPONENT := $(CARGO_TARGET_DIR)/wasm32-wasip2/wasm/polycache.wasm
WASM_JS_MODULE := $(CARGO_TARGET_DIR)/wasm32-unknown-unknown/wasm/polycache_wasm_js.wasm
WASM_JS_PKG := bindings-wasm/js/pkg
# The interop matrix's agent for the `wasi` runtime (tests/interop/matrix.py).
WASI_AGENT := $(BIN_DIR)/release/wasi-agent

SETUP_STEPS += setup-wasm
LINT_STEPS += lint-wasm
SUITES += test-wasm

.PHONY: setup-wasm
setup-wasm: ## Add the wasm32-wasip2 / wasm32-unknown-unknown targets and wasm-bindgen-cli when missing
	@for target in wasm32-wasip2 wasm32-unknown-unknown; do \
	  rustup target list --installed | grep -qx $$target || rustup target add $$target; done
	@wasm-bindgen --version 2>/dev/null | grep -qx 'wasm-bindgen $(WASM_BINDGEN_VERSION)' || \
	  cargo install wasm-bindgen-cli --version =$(WASM_BINDGEN_VERSION)

.PHONY: wasm
wasm: ## Build polycache.wasm (the WASI component) and print its size
	$(CARGO) build --target wasm32-wasip2 -p polycache-wasm $(WASM_PROFILE) --config 'profile.wasm.strip=true'
	@echo "polycache.wasm: $$(stat -c %s $(WASM_COMPONENT)) bytes ($(WASM_COMPONENT))"

.PHONY: wasm-js
wasm-js: ## Build the wasm-bindgen package for JS edge runtimes into bindings-wasm/js/pkg
	$(CARGO) build --target wasm32-unknown-unknown -p polycache-wasm-js $(WASM_PROFILE)
	wasm-bindgen --target web --out-dir $(WASM_JS_PKG) --out-name polycache \
	  --remove-name-section --remove-producers-section $(WASM_JS_MODULE)
	@echo "polycache_bg.wasm: $$(stat -c %s $(WASM_JS_PKG)/polycache_bg.wasm) bytes ($(WASM_JS_PKG))"

.PHONY: wasi-agent
wasi-agent: wasm ## Build the interop matrix's WASI agent: polycache.wasm driven from the wasmtime host
	$(CARGO) build --release -p polycache-wasm-host --bin wasi-agent

.PHONY: lint-wasm
lint-wasm: ## clippy -D warnings for the component, the JS package (their wasm targets) and the host
	$(CARGO) clippy --target wasm32-wasip2 -p polycache-wasm -- -D warnings
	$(CARGO) clippy --target wasm32-unknown-unknown -p polycache-wasm-js -- -D warnings
	$(CARGO) clippy --release -p polycache-wasm-host --all-targets -- -D warnings

.PHONY: test-wasm
test-wasm: wasm wasm-js ## The edge suites: the component in wasmtime (vectors, Redis, network policy), the JS package
	POLYCACHE_WASM=$(WASM_COMPONENT) $(CARGO) test --release -p polycache-wasm-host
	node --test bindings-wasm/js/test/*.test.mjs
