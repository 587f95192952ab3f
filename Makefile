# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?= -n 2

.PHONY: run test lint messages

$(BIN)/python:
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/python scripts/run.py

# pytest's exit code 5 (no test collected) is a failure here, never a silent pass.
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "No tests were collected: failing." >&2; exit 1; fi; exit $$rc

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Rebuild the translation catalogues after changing user-facing text (needs GNU gettext).
messages: $(VENV)/.installed-dev
	DEBUG=true $(BIN)/python manage.py makemessages -l pt_BR --ignore '$(VENV)/*' --ignore 'staticfiles/*' --ignore 'var/*'
	DEBUG=true $(BIN)/python manage.py compilemessages --ignore '$(VENV)/*'
