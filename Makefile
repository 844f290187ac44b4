# Two commands matter: `make demo` runs a whole market, `make test` runs every test.
# Both install what is missing first (a virtualenv in .venv, the compiled contracts in .build, Anvil
# and the web app's tools from npm, the web app's bundle, Chromium for its browser tests).

VENV   := .venv
PYTHON ?= python3
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: install browser demo test bench mutants clean

install: $(VENV)/.installed node_modules/.installed .build/__local__.json webapp/dist/index.html browser

WEBAPP_SOURCES := $(shell find webapp abi -type f -not -path 'webapp/dist/*' -not -path 'webapp/src/generated/*')

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[test]"
	$(VENV)/bin/pip check
	touch $@

# the contracts compile once, here; every later `ape run deploy` finds them unchanged in .build
CONTRACTS := $(shell find contracts -name '*.vy')
.build/__local__.json: $(VENV)/.installed ape-config.yaml $(CONTRACTS)
	$(VENV)/bin/ape compile
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

webapp/dist/index.html: node_modules/.installed $(WEBAPP_SOURCES)
	node webapp/build.mjs

# the browser tests drive Debian's Chromium; without it (no root, no apt) they skip and say why
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
		|| echo "warning: could not install chromium; the web app's browser tests will be skipped"

demo: install
	$(VENV)/bin/dtm demo

# the test files spread over the cores, four at most (pytest-xdist); `pytest FILE` alone runs in one process
test: install
	$(VENV)/bin/pytest -n auto --maxprocesses 4 --dist loadfile

# optional: deliberately broken copies of the code, each must fail its tests (scripts/mutants.py)
mutants: install
	$(VENV)/bin/python scripts/mutants.py

bench: install
	$(VENV)/bin/python bench/gas.py
	$(VENV)/bin/python bench/proof_overhead.py
	$(VENV)/bin/python bench/commitment.py
	$(VENV)/bin/python bench/detection.py

clean:
	rm -rf $(VENV) node_modules .build out webapp/dist webapp/src/generated
