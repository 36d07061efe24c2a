# The two commands a newcomer needs: `make run` and `make test`. Everything else is here
# for developers. Each target installs what is missing first (venv + pip, npm ci).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PYTEST := $(VENV)/bin/pytest
PY_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
ANVIL := node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil

.PHONY: install build browser run chain deploy test test-slow bench clean

install: $(PY_STAMP) $(NPM_STAMP)

$(PY_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --no-cache-dir --upgrade pip
	$(PY) -m pip install --quiet --no-cache-dir -e '.[test]'
	touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

build: install
	$(PY) -m chain_gateway.toolchain

## make run: local anvil + deploy + demo bootstrap + indexer + API on 127.0.0.1:8000
run: build
	$(PY) -m api.run

## make chain: a standalone anvil on 127.0.0.1:8545 (state in var/chain-state.json)
chain: install
	mkdir -p var
	$(ANVIL) --host 127.0.0.1 --port 8545 --gas-price 0 --base-fee 0 --max-persisted-states 64 \
	  --state var/chain-state.json --state-interval 1

## make deploy: deploy + bootstrap the demo on the chain `make chain` serves
deploy: build
	scripts/deploy --rpc-url http://127.0.0.1:8545 --name local --bootstrap

## headless Chromium (Debian packages) for the console's browser tests
browser:
	bash scripts/install-browser.sh

test: build browser
	$(PY) -m mypy
	$(PYTEST) -q -m "not slow" -p no:cacheprovider

test-slow: build
	$(PYTEST) -q -m slow -p no:cacheprovider

bench: build
	$(PY) -m scripts.bench

clean:
	rm -rf build var/mirror.sqlite3* .pytest_cache
