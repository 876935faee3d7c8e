# The two commands a newcomer needs: `make demo` and `make test`. Both install what they need.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
TOOLS := $(CURDIR)/.tools/bin
export PATH := $(TOOLS):$(CURDIR)/$(BIN):$(PATH)

.PHONY: install test lint unit demo e2e bench clean

install: $(VENV)/.installed $(TOOLS)/helm

$(VENV)/.installed: requirements.lock pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(PY) -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(PY) --no-deps -e .
	touch $@

$(TOOLS)/helm: tools/install-helm.sh
	bash tools/install-helm.sh $(CURDIR)/.tools

lint: install
	$(BIN)/ruff check operator tests bench tools
	$(BIN)/ruff format --check operator tests bench tools
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

unit: install
	$(BIN)/pytest tests/unit

demo: install
	$(BIN)/modelrelease demo

e2e: install
	bash tests/e2e/run-kind.sh

bench: install
	$(PY) -m bench

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
