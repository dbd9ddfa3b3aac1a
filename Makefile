# The two commands of the README: `make run` and `make test`. Both set everything up first.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: run test setup browser bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The pinned requirements first, then this project itself, editable (engine, app, the `fgsd`
# command), without resolving its dependencies again or fetching a build backend: both are there.
$(STAMP): requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

setup: $(STAMP)

# Debian's Chromium for the browser tests and PNG figures (never `playwright install`).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1; then \
	    echo "installing Debian chromium (apt-get)"; \
	    (apt-get install -y -q chromium >/dev/null 2>&1 || (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)); \
	  else echo "chromium not found and no apt-get: browser tests will be skipped"; fi; }

run: setup
	$(BIN)/python app.py

# The suite in one worker per core, up to 4 (pytest-xdist); the app's tests share one worker and its
# one app server (tests/conftest.py). `make test WORKERS=0` runs it in this one process.
WORKERS ?= $(shell $(PY) -c "import os; n = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count(); print(min(4, n or 1))" 2>/dev/null || echo 1)

test: setup browser
	$(BIN)/python -m pytest -q -n $(WORKERS) --dist loadgroup tests

bench: setup
	$(BIN)/python -m engine benchmark

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
