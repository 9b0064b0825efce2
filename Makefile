# Two commands: `make demo` (the whole pipeline on synthetic faces) and `make test` (the fast
# tier of the tests; `make test-all` runs every test, as CI does: tests/README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-all runtime-check bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -r requirements.txt
	$(BIN)/python -m pip install --no-deps -e .
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

demo: $(STAMP)
	$(BIN)/celebseg demo --out runs/demo

# pytest's exit 5 ("no tests collected") is a broken suite, not a pass: it fails with a line
# saying so (make itself then exits 2, as for any failed test run).
PYTEST_ARGS ?=
define pytest
	$(BIN)/python -m pytest -q --durations=25 $(1) $(PYTEST_ARGS); rc=$$?; \
	  [ $$rc -ne 5 ] || echo "error: pytest collected no tests" >&2; exit $$rc
endef

# The fast tier: every module, tests marked `slow` left out (tests/README.md says which).
test: $(STAMP)
	$(call pytest,-m "not slow")

# Everything: slow, reliability, notebook, browser tests (what .ci/run runs).
test-all: $(STAMP)
	$(call pytest,)

# The package inside Colab's and Kaggle's runtimes, rebuilt from runtimes/*.txt (docs/runtimes.md).
runtime-check: $(STAMP)
	$(BIN)/python scripts/check_runtime.py --jobs 2 runtimes/colab-2026-08.txt runtimes/kaggle-2026-05.txt

clean:
	rm -rf $(VENV) runs .pytest_cache

# --- browser test (tests/interface/test_viewer_browser.py, issue #13) ---------------------
# Headless Chromium + chromedriver from Debian, and one Jupyter front-end environment per
# ipywidgets major (scripts/browser_envs.py; kept in ~/.cache/celebseg, rebuilt only when
# its pins change). Without them the browser test skips and says why.
.PHONY: browser-setup
browser-setup: $(STAMP)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && apt-get install -y -qq chromium chromium-driver; }
	$(BIN)/python scripts/browser_envs.py
