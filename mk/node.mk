# The Node binding (bindings-node/, package `polycache`) and its benchmark (bench/node/).
NODE_DIR := bindings-node
NODE_BENCH_DIR := bench/node
NAPI = cd $(NODE_DIR) && npx --no-install napi

SETUP_STEPS += setup-node
LINT_STEPS += lint-node
SUITES += test-node
BENCHES += bench-node

.PHONY: setup-node
setup-node: ## Install Node (apt) and the binding's npm tools (napi CLI, TypeScript) when missing
	@command -v node >/dev/null && command -v npm >/dev/null || { \
	  echo "setup-node: installing nodejs and npm (apt)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	@[ -x $(NODE_DIR)/node_modules/.bin/napi ] && [ -x $(NODE_DIR)/node_modules/.bin/tsc ] || \
	  (cd $(NODE_DIR) && npm ci --no-audit --no-fund)

.PHONY: node-build
node-build: ## Build the Node addon (debug) and regenerate index.js / index.d.ts in place
	$(NAPI) build --platform

.PHONY: lint-node
lint-node: ## clippy for the Node crate, the index.d.ts drift gate, tsc --noEmit on the usage file
	$(CARGO) clippy -p polycache-node --all-targets -- -D warnings
	@stage=$$(mktemp -d) && trap 'rm -rf "$$stage"' EXIT && \
	  ( $(NAPI) build --platform --output-dir "$$stage" >/dev/null ) && \
	  for f in index.d.ts index.js; do \
	    diff -u $(NODE_DIR)/$$f "$$stage/$$f" || { \
	      echo "lint-node: $(NODE_DIR)/$$f is stale; run 'make node-build' and commit it" >&2; exit 1; }; \
	  done && echo "lint-node: index.d.ts and index.js match a fresh napi build"
	cd $(NODE_DIR) && npx --no-install tsc -p __test__/tsconfig.json

.PHONY: test-node
test-node: node-build ## The Node suite (node --test) on real Redis, then the fresh-app install test
	cd $(NODE_DIR) && POLYCACHE_PYTHON=$(PY) node --test --test-concurrency=1 __test__/
	$(NODE_DIR)/scripts/fresh-app-test

.PHONY: bench-node
bench-node: ## Node side by side: ioredis, node-redis, cache-manager + @keyv/redis, bentocache; the near tier vs bentocache L1+L2; freshness and the lock vs bentocache; then the HTTP benchmark
	@[ -x $(NODE_BENCH_DIR)/node_modules/.bin/autocannon ] || (cd $(NODE_BENCH_DIR) && npm ci --no-audit --no-fund)
	$(CARGO) build -q -p polycache-harness
	$(NAPI) build --platform --release >/dev/null
	node $(NODE_BENCH_DIR)/bench.mjs
	POLYCACHE_BENCH_CPU=0 node $(NODE_BENCH_DIR)/codec.mjs
	node $(NODE_BENCH_DIR)/near.mjs
	node $(NODE_BENCH_DIR)/fresh.mjs
	node $(NODE_BENCH_DIR)/http.mjs

.PHONY: node-pack
node-pack: ## Pack bindings-node/polycache-<version>.tgz (release addon inside) for `npm install <tarball>`
	$(NODE_DIR)/scripts/pack
