# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-regions test ui serve bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)  ## synthetic landing zone + key + full build into ./data
	$(BIN)/tyokyky demo --data data

REGIONS := keusote eksote rovaniemi-kemijarvi
demo-regions: $(STAMP)  ## three synthetic regions built apart, exported and pooled into data/national
	for r in $(REGIONS); do \
	  test -d data/$$r/landing || $(BIN)/tyokyky synth --region regions/$$r.yaml || exit 1; \
	  $(BIN)/tyokyky run --region regions/$$r.yaml || exit 1; \
	  rm -rf data/packages/$$r && $(BIN)/tyokyky export-aggregates --data data/$$r --out data/packages/$$r || exit 1; \
	done
	$(BIN)/tyokyky pool --out data/national $(addprefix data/packages/,$(REGIONS))

test: $(STAMP)  ## the whole suite (unit, integration through Dagster, notebooks)
	$(BIN)/python -m pytest -q

ui: $(STAMP)  ## the Dagster UI on the project, with the demo's run history
	mkdir -p data/.dagster && cp -n dagster.yaml data/.dagster/dagster.yaml || true
	DAGSTER_HOME=$(CURDIR)/data/.dagster TYOKYKY_DATA=$${TYOKYKY_DATA:-$(CURDIR)/data} \
	TYOKYKY_KEY_FILE=$${TYOKYKY_KEY_FILE:-$(CURDIR)/data/keys/demo.key} \
	$(BIN)/dagster dev -m assets.definitions

serve: $(STAMP)  ## production mode on ./data: PostgreSQL, dagster-daemon, webserver (docs/operations.md)
	$(BIN)/tyokyky serve --data $${TYOKYKY_DATA:-data} \
	--key-file $${TYOKYKY_KEY_FILE:-$${TYOKYKY_DATA:-data}/keys/demo.key} --port $${PORT:-3000}

bench: $(STAMP)  ## national-scale benchmark (BENCHMARKS.md); PERSONS="10000 100000" to choose
	$(BIN)/tyokyky bench --persons $${PERSONS:-10000 100000}

clean:
	rm -rf data .pytest_cache
