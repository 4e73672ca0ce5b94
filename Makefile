# make run  : set up a venv (if needed) and run the main job.
# make test : set up a venv (if needed) and run the test suite.
# VENV=path uses another venv; a torch already installed there is kept.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# This CPU wheel lies on the project's machines; it is installed only into a venv without torch.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.energymeter-installed

.PHONY: run test bench install clean

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) -m energymeter validate --resume

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
