# make demo   set up .venv with what the demo needs and reproduce the headline figures (Pascanu et al. 2013 Figs. 6 and 3) into out/
# make test   add the test tools to .venv and run the test suite (CI runs exactly this: .ci/run)
# make test-fast   the same without the tests marked slow (the end-to-end runs, the golden comparison)
# make bench  run the benchmarks (ratios against baselines measured in the same run)
# make docs   build the documentation site into site/ (mkdocs build --strict: a broken link fails)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CORE := $(VENV)/.core-installed
TEST := $(VENV)/.test-installed
DOCS := $(VENV)/.docs-installed

.PHONY: demo test test-fast bench docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# the package and its core dependencies only (torch pinned by constraints.txt: the CPU build); the
# distribution is rnn-landscape, once named landscape: an old install of that name goes first
$(CORE): setup.cfg pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip uninstall --quiet --yes landscape 2>/dev/null || true
	$(BIN)/pip install --quiet -c constraints.txt -e .
	touch $(CORE)

# the test extra on top (pytest, triton for the fused kernels' interpreter tests, xarray, ...)
$(TEST): $(CORE)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(TEST)

# the docs extra (mkdocs, mkdocs-material, mkdocstrings)
$(DOCS): $(CORE)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[docs]'
	touch $(DOCS)

demo: $(CORE)
	MPLBACKEND=Agg $(BIN)/landscape reproduce pascanu-fig6 --out out/pascanu-fig6
	MPLBACKEND=Agg $(BIN)/landscape reproduce pascanu-fig3 --out out/pascanu-fig3

test: $(TEST)
	MPLBACKEND=Agg $(BIN)/python -m pytest -q

test-fast: $(TEST)
	MPLBACKEND=Agg $(BIN)/python -m pytest -q -m "not slow"

bench: $(TEST)
	$(BIN)/python -m benchmarks

docs: $(DOCS)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) out build dist site *.egg-info
