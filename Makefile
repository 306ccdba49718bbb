# Two commands do all set-up on a fresh machine (Python >= 3.11 and make):
#   make demo   - installs into .venv, then runs the whole loop on embedded defaults
#   make test   - installs into .venv, then runs the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test install clean

$(BIN)/canary: pyproject.toml setup.py canary/scan/_probes.c
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/canary

demo: $(BIN)/canary
	$(BIN)/canary demo

test: $(BIN)/canary
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
