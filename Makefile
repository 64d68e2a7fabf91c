# Every target sets itself up: a fresh clone needs only Python 3.11+ and make.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install test demo bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Run the whole test suite (database tests run on SQLite, and on PostgreSQL when
## CHURNHUB_TEST_POSTGRES_URL is set; .ci/run starts one).
test: install
	$(BIN)/python -m pytest -n 2 -q

## The main job on the embedded default (SQLite) in a fresh directory.
demo: install
	$(BIN)/python -m pip install --quiet -e examples/churnhub-usage
	$(BIN)/churnhub demo --dir .demo

## Benchmarks (issue 12): prints a table and writes benchmarks/results.json; never part of `make test`.
## Flags via BENCH_ARGS, e.g. make bench BENCH_ARGS="--customers 10000 --only sync,noop".
bench: install
	$(BIN)/python -c "import dlt" 2>/dev/null || $(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) .demo build *.egg-info
