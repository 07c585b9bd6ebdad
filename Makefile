# vpnmonitor: `make run` sets up and runs the product locally; `make test` runs the test suite.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint install install-dev integration-deps clean

$(PY):
	@PYTHON=$$(scripts/find-python) && echo "Creating $(VENV) with $$PYTHON" && "$$PYTHON" -m venv $(VENV)
	@$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(PY)
	$(PIP) install --quiet -r requirements.txt
	@touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(PY)
	$(PIP) install --quiet -r requirements-dev.txt
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Runs the web server, a Celery worker and beat on the embedded default (SQLite, no Redis).
run: install
	@DEBUG=$${DEBUG:-true} HOST=$(HOST) PORT=$(PORT) PY=$(PY) scripts/run-local

# Installs what the tests need (Python packages; Debian test programs when run as root) and runs them.
test: install-dev
	@scripts/install-test-programs
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install-dev
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
