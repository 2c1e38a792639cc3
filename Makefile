# make demo   set up .venv and reproduce the headline figure (Pascanu et al. 2013 Fig. 6)
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
	MPLBACKEND=Agg $(BIN)/landscape grid --cell pascanu --task target --x w:4.5:5.5:201 --y b:-2.9:-1.9:201 --T 1,2,3,5,7,10,30,50,100 --out out/pascanu-target.h5
	MPLBACKEND=Agg $(BIN)/landscape grid --cell srnn --T 1,2,5,10,20,50,100 --out out/srnn-latch.h5

test: $(STAMP)
	MPLBACKEND=Agg $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) out build *.egg-info
