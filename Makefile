# jukicore developer entry points. Every target sets itself up from scratch:
# a virtual environment in .venv, the Rust extension built in release mode,
# the Python dependencies (with the postgresql-binary, synth and dev extras), and
# the system packages of the PDFs (tools/system-deps.sh: installed when root on Debian).
#
#   make demo   run jukicore's main job on the embedded default (SQLite)
#   make test   the whole test suite: cargo test, clippy, ruff, mypy, stubtest, pytest
#   make bench  side-by-side comparisons against the best alternatives (prints ratios)
#   make wheel  a release wheel in dist/: manylinux2014, linked with zig (from PyPI)
#   make bench-asv / bench-asv-compare   asv: the installed build / main against HEAD

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: demo test build venv lint rust-test py-test stubtest bench bench-asv \
	bench-asv-compare wheel clean

$(VENV)/.deps: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "maturin>=1.9.2,<2"
	touch $@

venv: $(VENV)/.deps

build: venv
	@tools/system-deps.sh
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
	$(PY) benches/compare_audit.py
	$(PY) benches/compare_normalize.py
	$(PY) benches/compare_identity.py
	$(PY) benches/compare_pin.py
	$(PY) benches/compare_certificate.py
	$(PY) benches/compare_network.py
	$(PY) benches/compare_index.py --rows 40000000
	$(PY) benches/index_build_scale.py --rows 10000000

# asv, quick: the jukicore installed in .venv (make build), nothing built per commit
bench-asv: build
	cd benches && $(abspath $(VENV))/bin/asv machine --yes && \
	  $(abspath $(VENV))/bin/asv run --python=same --quick --show-stderr

# asv builds BASE and HEAD each in its own virtualenv and compares them; it exits 1 when
# a benchmark of BENCH (a regular expression) got slower by more than FACTOR
BASE ?= main
BENCH ?= ^ids_
FACTOR ?= 1.1
bench-asv-compare: build
	cd benches && $(abspath $(VENV))/bin/asv machine --yes && \
	  $(abspath $(VENV))/bin/asv continuous --show-stderr --factor $(FACTOR) --bench '$(BENCH)' \
	  $(BASE) HEAD

# pyproject.toml asks maturin for manylinux2014 (glibc 2.17): zig links against that
# glibc on any newer machine; auditwheel then shows the symbols the wheel needs.
wheel: venv
	$(PY) -m pip install --quiet "ziglang>=0.17,<0.18" "auditwheel>=6"
	rm -f dist/jukicore-*.whl
	PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/maturin build --release --zig --out dist
	for w in dist/jukicore-*.whl; do $(VENV)/bin/auditwheel show "$$w"; done

clean:
	rm -rf $(VENV) target
