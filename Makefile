# faceledger — two commands matter: `make serve` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv test lint typecheck unit serve bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/python -m faceledger.engine.mediapipe_models install
	touch $(STAMP)

venv: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check src tests

typecheck: $(STAMP)
	$(BIN)/mypy src/faceledger

test: $(STAMP) lint typecheck
	$(BIN)/pytest -q

serve: $(STAMP)
	$(BIN)/faceledger serve

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
