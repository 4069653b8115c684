# One entry point. `make test` on a fresh clone installs what it needs (a project-local
# Python virtualenv with the pinned tools), starts a DynamoDB API server, runs every
# test, and stops the server again, also when a test fails.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed-$(shell cksum < requirements-dev.txt | cut -d' ' -f1)

SAM := SAM_CLI_TELEMETRY=0 $(VENV)/bin/sam
# `sam validate` needs a region to resolve the template; nothing is sent to AWS.
SAM_REGION ?= us-east-1

# checkov, the template's security checks, in a virtualenv of its own: its pins conflict
# with aws-sam-cli's. --skip-download: nothing is fetched from (or sent to) the Prisma
# Cloud platform, so it runs offline once installed; any finding fails the target. A
# finding is fixed in template.yaml or suppressed there, in the resource's Metadata
# (checkov: skip: id, comment), with the reason.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(shell cksum < requirements-checkov.txt | cut -d' ' -f1)
CHECKOV := $(CHECKOV_VENV)/bin/checkov

.PHONY: test dev build static-target static-bins packaged test-build bench bench-forgot bench-linking soak test-against-dynamodb lint-template venv browser docs-assets client check fmt clean

# Port of the local API (`make dev`).
PORT ?= 3000
# Lambda architecture of `make build`: arm64 (the template's default) or x86_64.
ARCH ?= arm64

test: $(VENV_STAMP) browser docs-assets client lint-template packaged
	cd clients/js && npx vitest run
	cargo build --workspace --locked
	$(PY) scripts/with_dynamodb.py -- $(MAKE) --no-print-directory test-against-dynamodb
	$(PY) scripts/with_dynamodb.py -- env REQUIRE_DYNAMODB=1 cargo test --workspace --locked

lint-template: $(VENV_STAMP) $(CHECKOV_STAMP)
	$(SAM) validate --lint --region $(SAM_REGION)
	$(CHECKOV) -f template.yaml --framework cloudformation --compact --quiet --skip-download

# Runs inside with_dynamodb.py, which exports the endpoint and table names. The Rust tests
# (above; REQUIRE_DYNAMODB: the storage tests fail instead of skipping when they find no
# DynamoDB API) get a server of their own: by the end of pytest the tables hold tens of
# thousands of items, and moto copies a whole table before every transaction.
test-against-dynamodb:
	$(PY) scripts/dynamodb_tables.py check --endpoint "$$AWS_ENDPOINT_URL_DYNAMODB"
	REQUIRE_PACKAGED="$(PACKAGED_TESTED)" $(PY) -m pytest -q tests

# The whole API on 127.0.0.1:$(PORT), backed by a local DynamoDB API server, and the browser
# sample app (examples/browser/) on 127.0.0.1:$(PORT)+1 (EXAMPLE_PORT=N: another port, 0:
# none); Ctrl-C stops everything it started. Signs as the template does (RS256) with a key pair
# made for the run, unless JWT_PRIVATE_KEY, or JWT_SECRET with JWT_ALGORITHM=HS256, is set.
dev: $(VENV_STAMP) docs-assets client
	cargo build -p local-api --locked
	@PORT=$(PORT) $(PY) scripts/with_dynamodb.py -- $(PY) scripts/local_api.py

# Load and soak (scripts/soak.py): a mixed workload against the local API through Locust,
# the store failing in the middle, then the invariants checked and a report with a plot in
# .local/soak/. SOAK_SECONDS (default 180) and SOAK_USERS (default 12) change it; `make
# test` runs a 30-second one (tests/test_soak.py).
soak: $(VENV_STAMP)
	cargo build -p local-api --locked
	$(PY) scripts/with_dynamodb.py -- $(PY) scripts/soak.py

# `sam build` of every function: static binaries (musl: no loader, no shared libraries),
# built by cargo-lambda with zig from the virtualenv as the linker; no container, nothing
# downloaded after `cargo fetch`. SAM's makefile builder (BuildMethod: makefile) calls
# build-<LogicalId> below for each function, in the source tree (samconfig.toml:
# build_in_source), and does not say the architecture: ARCH does (arm64 unless set).
STATIC_TARGET_arm64 := aarch64-unknown-linux-musl
STATIC_TARGET_x86_64 := x86_64-unknown-linux-musl
STATIC_TARGET = $(STATIC_TARGET_$(ARCH))
# Where static-bins puts an architecture's binaries (scripts/devtools/cargo_target.py: static_dir).
static_dir = .local/lambda-static-$(1)
STATIC_DIR = $(call static_dir,$(ARCH))
export ARCH
# This machine's Lambda architecture: the packaged binaries the tests run under the emulator.
HOST_ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x86_64)
# The functions tests/test_packaged.py runs under the emulator in `make test`, built exactly
# as `make build` builds them (a release build of all thirteen would add a quarter of an
# hour to every test run; `make test-build` builds and checks them all).
PACKAGED_TESTED := register login refresh authorizer

build: $(VENV_STAMP) static-target
	cargo fetch --locked
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" CARGO_NET_OFFLINE=true $(SAM) build --parameter-overrides Architecture=$(ARCH)

# The Rust standard library for the static target, installed by rustup when missing (the
# one download beyond crates).
static-target:
	@if [ -z "$(STATIC_TARGET)" ]; then echo "ARCH must be arm64 or x86_64" >&2; exit 2; fi; \
	if [ ! -d "$$(rustc --print sysroot)/lib/rustlib/$(STATIC_TARGET)/lib" ]; then \
	  if ! command -v rustup >/dev/null; then \
	    echo "The Rust standard library for $(STATIC_TARGET) is not installed, and there is no rustup to install it" >&2; exit 2; fi; \
	  echo "Installing the Rust standard library for $(STATIC_TARGET) (once)"; \
	  rustup target add $(STATIC_TARGET); fi

# The static binaries BINS="a b" into $(STATIC_DIR)/<name>/bootstrap: the one build command
# of the packaged functions (build-% below copies its output into SAM's artifacts).
static-bins: $(VENV_STAMP) static-target
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cargo lambda build --release --locked --target $(STATIC_TARGET) \
	  --lambda-dir $(STATIC_DIR) $(foreach b,$(BINS),--bin $(b))

packaged:
	@$(MAKE) --no-print-directory static-bins ARCH=$(HOST_ARCH) BINS="$(PACKAGED_TESTED)"

# Every packaged function for this machine's architecture (`make build`), then
# tests/test_packaged.py on all of them (make test runs it on $(PACKAGED_TESTED)).
test-build: $(VENV_STAMP)
	$(MAKE) --no-print-directory build ARCH=$(HOST_ARCH)
	REQUIRE_PACKAGED=all $(PY) scripts/with_dynamodb.py -- $(PY) -m pytest -q tests/test_packaged.py

# One function's bootstrap into SAM's ARTIFACTS_DIR: its binary named by shared/functions.json
# (read through scripts/devtools/functions.py, as FUNCTION_NAMES below).
build-%:
	@bin=$$(PYTHONPATH=scripts $(PYTHON) -c 'import sys; from devtools import functions; print(next(f.name for f in functions.load() if f.logical_id == sys.argv[1]))' $*) && \
	$(MAKE) --no-print-directory static-bins BINS=$$bin && \
	cp $(STATIC_DIR)/$$bin/bootstrap "$(ARTIFACTS_DIR)/bootstrap"

# Cold start, warm latency, memory, size and DynamoDB round trips of every function under
# the Lambda RIE, next to a PyJWT + boto3 authorizer; criterion figures. Prints a table.
# Then bench_cold.py: each function's cold answer over HTTPS (a test CA) at its Lambda CPU
# share (a cgroup CFS quota where the machine allows one), same Python authorizer beside it.
# What is measured is what ships: the static build `make build` packages, for this machine.
BENCH_STAMP := $(VENV)/.bench-$(shell cksum < requirements-bench.txt | cut -d' ' -f1)
# The functions' names, from shared/functions.json (scripts/devtools/functions.py reads it).
FUNCTION_NAMES = $(shell PYTHONPATH=scripts $(PYTHON) -c 'from devtools import functions; print(" ".join(f.name for f in functions.load()))')
BENCH_STATIC := BENCH_LAMBDA_DIR=$(call static_dir,$(HOST_ARCH)) BENCH_COLD_LAMBDA_DIR=$(call static_dir,$(HOST_ARCH))
bench: $(VENV_STAMP) $(BENCH_STAMP)
	$(MAKE) --no-print-directory static-bins ARCH=$(HOST_ARCH) BINS="$(FUNCTION_NAMES)"
	$(BENCH_STATIC) $(PY) scripts/with_dynamodb.py -- $(PY) scripts/bench.py
	$(BENCH_STATIC) $(PY) scripts/with_dynamodb.py -- $(PY) scripts/bench_cold.py

# Whether the forgot-password answer's time tells that an account matched (figures only).
bench-forgot: $(VENV_STAMP)
	cargo build -p local-api --locked
	$(PY) scripts/with_dynamodb.py -- $(PY) scripts/bench_forgot.py

# What linking alone changes (docs/performance.md, "Linking"): the request-path functions
# of the same code built twice, glibc (cargo's release build) and static musl (make
# build's), measured one after the other in one run: warm CPU, peak RSS and size
# (bench.py), then the cold answer and its CPU at the share (bench_cold.py, HS256; the
# Python authorizer beside the static build). BENCH_ONLY=a,b picks the functions; by
# default every request-path function but email, whose benchmark event (a verification with
# a token nobody issued) is answered 400, which the benchmarks count as a failure.
comma := ,
BENCH_ONLY ?= $(shell PYTHONPATH=scripts $(PYTHON) -c 'from devtools import functions; print(",".join(f.name for f in functions.load() if f.on_request_path and f.name != "email"))')
bench-linking: $(VENV_STAMP) $(BENCH_STAMP)
	cargo build --release --locked $(foreach b,$(subst $(comma), ,$(BENCH_ONLY)),--bin $(b))
	$(MAKE) --no-print-directory static-bins ARCH=$(HOST_ARCH) BINS="$(subst $(comma), ,$(BENCH_ONLY))"
	@echo "== glibc (cargo build --release)"
	BENCH_ONLY=$(BENCH_ONLY) $(PY) scripts/with_dynamodb.py -- $(PY) scripts/bench.py
	@echo "== static musl (make build)"
	BENCH_ONLY=$(BENCH_ONLY) $(BENCH_STATIC) $(PY) scripts/with_dynamodb.py -- $(PY) scripts/bench.py
	@echo "== glibc (cargo build --release)"
	BENCH_ONLY=$(BENCH_ONLY) BENCH_RS256=0 $(PY) scripts/with_dynamodb.py -- $(PY) scripts/bench_cold.py
	@echo "== static musl (make build), and the Python authorizer"
	BENCH_ONLY=$(BENCH_ONLY),python BENCH_RS256=0 $(BENCH_STATIC) $(PY) scripts/with_dynamodb.py -- $(PY) scripts/bench_cold.py

$(BENCH_STAMP): requirements-bench.txt $(VENV_STAMP)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements-bench.txt
	touch $@

venv: $(VENV_STAMP)

# The pages' vendored JavaScript: Swagger UI for the local API's /docs page (and
# tests/test_openapi.py) and the sample app's QR code generator: the npm registry's
# tarballs, pinned and integrity-checked, unpacked into .local/docs-assets/ and
# .local/sample-assets/ once (Python's standard library only; no node). The pages load
# nothing from elsewhere.
docs-assets:
	@$(PYTHON) scripts/docs_assets.py

# The TypeScript browser client (clients/js/): its npm dependencies from the lock file (npm
# ci; --prefer-offline: from npm's cache once it holds them), its types generated from
# openapi.yaml, and dist/index.js, which the sample app loads. Node 20 and npm are the
# machine's.
CLIENT_STAMP := clients/js/node_modules/.installed-$(shell cksum < clients/js/package-lock.json | cut -d' ' -f1)
$(CLIENT_STAMP): clients/js/package-lock.json
	cd clients/js && npm ci --prefer-offline --no-audit --no-fund
	touch $@

client: $(CLIENT_STAMP)
	cd clients/js && npm run --silent build

# Chromium for tests/test_browser.py: Debian's package, which Playwright (in .venv) drives
# through its executable path; Playwright's own browser downloads are never used. Installed
# when missing (apt-get, as root: CI is); CHROMIUM=/path/to/chromium uses another build.
browser:
	@if [ -n "$$CHROMIUM" ] || command -v chromium >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	  echo "tests/test_browser.py needs Chromium. Install Debian's package:" >&2; \
	  echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium" >&2; \
	  echo "or set CHROMIUM to a Chromium executable (make test CHROMIUM=/path/to/chromium)." >&2; \
	  exit 2; \
	fi; \
	echo "Installing Debian's chromium for the browser tests (once)"; \
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium

$(VENV_STAMP): requirements-dev.txt
	rm -f $(VENV)/.installed-*
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

$(CHECKOV_STAMP): requirements-checkov.txt
	rm -f $(CHECKOV_VENV)/.installed-*
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --disable-pip-version-check -q -r requirements-checkov.txt
	touch $@

check:
	cargo check --workspace --all-targets

fmt:
	cargo fmt --all

clean:
	cargo clean
	rm -rf $(VENV) $(CHECKOV_VENV) .local .aws-sam clients/js/node_modules clients/js/dist
