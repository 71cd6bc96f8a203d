# jukicore developer entry points. Every target sets itself up from scratch:
# a virtual environment in .venv, the Rust extension built in release mode,
# and the Python dependencies (with the synth and dev extras).
#
#   make demo   run jukicore's main job on the embedded default (SQLite)
#   make test   the whole test suite: cargo test, clippy, ruff, mypy, stubtest, pytest
#   make bench  side-by-side comparisons against the best alternatives (prints ratios)

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: demo test build venv lint rust-test py-test stubtest bench bench-asv clean

$(VENV)/.deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "maturin>=1.9.2,<2"
	touch $@

venv: $(VENV)/.deps

build: venv
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH \
	  $(VENV)/bin/maturin develop --release --quiet --extras postgresql-binary,synth,dev

demo: build
	$(VENV)/bin/jukicore demo

rust-test:
	$(CARGO) test --workspace --exclude jukicore-py --release --quiet
	$(CARGO) clippy --workspace --all-targets --release --quiet -- -D warnings

lint: build
	$(VENV)/bin/ruff check --no-cache python tests benches
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest jukicore._jukicore

py-test: build
	$(VENV)/bin/pytest

test: rust-test lint py-test

bench: build
	$(PY) benches/compare.py
	$(PY) benches/compare_register.py
	$(PY) benches/compare_aead.py
	$(PY) benches/compare_sync.py

bench-asv: build
	cd benches && ../$(VENV)/bin/asv machine --yes && \
	  ../$(VENV)/bin/asv run --python=same --quick --show-stderr

clean:
	rm -rf $(VENV) target
