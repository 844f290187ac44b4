# Two commands matter: `make demo` runs a whole market, `make test` runs every test.
# Both install what is missing first (a virtualenv in .venv, Anvil from npm).

VENV   := .venv
PYTHON ?= python3
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: install demo test bench mutants clean

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[test]"
	$(VENV)/bin/pip check
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: install
	$(VENV)/bin/dtm demo

test: install
	$(VENV)/bin/pytest

# optional: deliberately broken copies of the code, each must fail its tests (scripts/mutants.py)
mutants: install
	$(VENV)/bin/python scripts/mutants.py

bench: install
	$(VENV)/bin/python bench/gas.py
	$(VENV)/bin/python bench/proof_overhead.py
	$(VENV)/bin/python bench/commitment.py
	$(VENV)/bin/python bench/detection.py

clean:
	rm -rf $(VENV) node_modules .build out
