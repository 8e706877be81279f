# The course's commands.  Each target sets up what it needs in .venv first.
#   make lab        open the course in JupyterLab
#   make test       run every test: stage tests, simulator, notebooks (nbval), browser tests
#   make grade      grade exercises/ (instructors)
#   make exercises  regenerate exercises/ from solution/
#   make notebooks  execute notebooks/src/*.py into notebooks/*.ipynb (against the reference)
#   make bundle     write the candidate's bundle (no reference inside): dist/candidate-bundle/ and .tar.gz
#   make bench      print the benchmarks' figures

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST := $(BIN)/python -m pytest -p no:cacheprovider
# Two workers (the course's machines have 2 cores); a file's tests, and a notebook's cells, stay on one worker, in order.
# Files are handed out in collection order, where tests/conftest.py puts the minutes-long ones first (xdist's own
# order, most tests first, started the bundle and browser files last, leaving one worker alone on them at the end).
PARALLEL := -n 2 --dist loadfile --no-loadscope-reorder

.PHONY: setup lab test test-fast grade exercises notebooks bundle bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10 or newer is needed, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[course,test]'
	@touch $(STAMP)

setup: $(STAMP)

lab: setup
	$(BIN)/jupyter lab --config=jupyter_lab_config.py

test: setup
	$(PYTEST) $(PARALLEL) --durations=25 tests notebooks --nbval-lax --nbval-current-env

test-fast: setup
	$(PYTEST) $(PARALLEL) tests -m "not slow and not browser"

grade: setup
	$(BIN)/python tools/grade.py

exercises: setup
	$(BIN)/python tools/make_exercises.py

notebooks: setup
	$(BIN)/python tools/build_notebooks.py

bundle: setup
	$(BIN)/python tools/make_bundle.py

bench: setup
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) reports screenshots .pytest_cache dist
