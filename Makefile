# The two commands a newcomer needs: `make demo` and `make test`. Both install what they need.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
TOOLS := $(CURDIR)/.tools/bin
export PATH := $(TOOLS):$(CURDIR)/$(BIN):$(PATH)

.PHONY: install controlplane test lint unit demo e2e bench sync clean

install: $(VENV)/.installed $(TOOLS)/helm $(TOOLS)/checkov controlplane

# The real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl)
# and kwok, built from the pinned Go modules in tools/controlplane/ into a cache outside the clone; one line
# per binary, and only what is missing is built. kubectl is linked into .tools/bin, ahead of any other.
controlplane: $(VENV)/.installed
	$(PY) -m modelrelease.sandbox.binaries
	mkdir -p $(TOOLS) && ln -sf "$$($(PY) -m modelrelease.sandbox.binaries --path kubectl)" $(TOOLS)/kubectl

$(VENV)/.installed: requirements.lock pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(PY) -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(PY) --no-deps -e .
	touch $@

$(TOOLS)/helm: tools/install-helm.sh
	bash tools/install-helm.sh $(CURDIR)/.tools

# checkov pins older boto3/botocore than the lock, so it lives in a venv of its own.
$(TOOLS)/checkov: tools/install-checkov.sh $(VENV)/.installed
	UV=$(CURDIR)/$(BIN)/uv bash tools/install-checkov.sh $(CURDIR)/.tools

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

# Regenerate everything derived from the API models: the CRD, the chart's copy, manifests/, the README reference.
sync: install
	$(PY) -m modelrelease.api.crd
	$(PY) tools/sync_chart.py
	$(PY) -m modelrelease.api.reference --write README.md

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache
