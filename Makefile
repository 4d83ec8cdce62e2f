# Set-up is part of every target: .venv is created and the project installed when missing or stale.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The real BEIR data is never committed; point the project at the shared copy when it exists.
SHARED_DATA := $(abspath ../shared/data)
ifneq ($(wildcard $(SHARED_DATA)/scifact/corpus.jsonl),)
export RETRIEVAL_DATA_DIR ?= $(SHARED_DATA)
endif
export HF_HUB_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: eval test test-slow test-browser test-all install clean reproduce lock

LOCK := requirements.lock

# The exact versions of requirements.lock, then the project itself (editable, no dependency resolution): make and CI
# install what was tested. pyproject.toml keeps ranges, for users installing next to their own tools.
$(STAMP): pyproject.toml $(LOCK)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e '.[test,mteb,parity]'
	touch $(STAMP)

# Rewrite requirements.lock from a fresh resolve of pyproject.toml's ranges (then run make test before committing it).
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --upgrade pip && .venv-lock/bin/pip install --quiet -e '.[test,mteb,parity]'
	{ head -2 $(LOCK); .venv-lock/bin/pip freeze --exclude-editable; } > $(LOCK).new && mv $(LOCK).new $(LOCK) && rm -rf .venv-lock

install: $(STAMP)

eval: $(STAMP)
	$(PY) evaluate.py --task beir

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

# The interactive page in a real browser and the LaTeX tables through pdflatex: Debian's chromium, chromium-driver and
# texlive (apt-get install chromium chromium-driver texlive-latex-base texlive-latex-recommended); they skip where missing.
test-browser: $(STAMP)
	$(PY) -m pytest -q -m browser

# The reproduction matrix (configs/reproductions/): MAX_COST=cheap (BM25 rows, seconds), moderate or expensive.
# test-slow already checks the cheap rows (tests/benchmarks/test_reproduce.py).
MAX_COST ?= cheap
reproduce: $(STAMP)
	$(PY) evaluate.py --reproduce --max-cost $(MAX_COST)

test-all: $(STAMP)
	$(PY) -m pytest -q -m "slow or not slow or browser"

clean:
	rm -rf $(VENV) results .pytest_cache
