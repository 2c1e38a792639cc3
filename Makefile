# make demo   set up .venv and reproduce the headline figures (Pascanu et al. 2013 Figs. 6 and 3) into out/
# make test   set up .venv and run the test suite
# make bench  run the benchmarks (ratios against baselines measured in the same run)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	MPLBACKEND=Agg $(BIN)/landscape reproduce pascanu-fig6 --out out/pascanu-fig6
	MPLBACKEND=Agg $(BIN)/landscape reproduce pascanu-fig3 --out out/pascanu-fig3

test: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) out build *.egg-info
