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

.PHONY: test test-against-dynamodb lint-template venv check fmt clean

test: $(VENV_STAMP) lint-template
	cargo build --workspace --locked
	$(PY) scripts/with_dynamodb.py -- $(MAKE) --no-print-directory test-against-dynamodb

lint-template: $(VENV_STAMP)
	$(SAM) validate --lint --region $(SAM_REGION)

# Runs inside with_dynamodb.py, which exports the endpoint and table names.
test-against-dynamodb:
	$(PY) scripts/dynamodb_tables.py check --endpoint "$$AWS_ENDPOINT_URL_DYNAMODB"
	$(PY) -m pytest -q tests
	cargo test --workspace --locked

venv: $(VENV_STAMP)

$(VENV_STAMP): requirements-dev.txt
	rm -f $(VENV)/.installed-*
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

check:
	cargo check --workspace --all-targets

fmt:
	cargo fmt --all

clean:
	cargo clean
	rm -rf $(VENV) .local .aws-sam
