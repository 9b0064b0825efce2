# Two commands: `make demo` (the whole pipeline on synthetic faces) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test runtime-check bench clean

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

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=25

# The package inside Colab's and Kaggle's runtimes, rebuilt from runtimes/*.txt (README).
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
