# The two set-up commands: `make serve` starts the embedded service, `make test` runs the tests.
# Both create .venv and install the project on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test test-fast lint bench

$(BIN)/.installed: pyproject.toml
	@echo "==> creating the virtual environment $(VENV) (first run only)"
	$(PYTHON) -m venv $(VENV)
	@echo "==> upgrading pip"
	$(BIN)/pip install --quiet --upgrade pip
	@echo "==> installing condarchive and its dependencies into $(VENV) (about a minute)"
	$(BIN)/pip install --progress-bar off -e '.[test]' | grep --line-buffered -E '^(Collecting|Successfully)' || true
	@test -x $(BIN)/condarchive || { echo "error: the install failed; run: $(BIN)/pip install -e '.[test]'"; exit 1; }
	touch $@
	@echo "==> installed; next time this step is skipped"

serve: $(BIN)/.installed
	$(BIN)/condarchive serve

# The whole suite, three test processes, each module's tests in one of them (their
# module fixtures start services once): see pyproject.toml's test extra.
test: $(BIN)/.installed
	$(BIN)/python -m pytest -n 3 --dist loadfile

# The in-process tier only (TestClient, SQLite, tasks inline): under a minute.
test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -m "not process and not distributed and not install and not realdata and not realpypi"

lint: $(BIN)/.installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: $(BIN)/.installed
	$(BIN)/python -m bench
