# Two commands for a fresh clone (Python 3.11+): `make replay` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: replay test bench clean

replay: $(VENV)/.installed          ## set up, then replay the bundled real data
	$(BIN)/warden replay

test: $(VENV)/.installed            ## set up, then run the test suite
	$(BIN)/pytest

bench: $(VENV)/.installed           ## throughput and peak memory (1M bars, full path)
	$(BIN)/warden bench

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "tradewarden needs Python 3.11+, found " + sys.version.split()[0])'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $@

clean:
	rm -rf $(VENV) warden-out .pytest_cache
