# make run  : set up a venv (if needed) and run the main job.
# make test : set up a venv (if needed) and run the test suite.
# VENV=path uses another venv; a torch already installed there is kept.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# This CPU wheel lies on the project's machines; it is installed only into a venv without torch.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.energymeter-installed

# lava-nc runs only on Python 3.10: its cross-check uses a venv of its own, built when a 3.10 exists.
LAVA_VENV ?= .venv-lava
LAVA_STAMP := $(LAVA_VENV)/.lava-installed
LAVA_BASE := $(shell for p in "$$ENERGYMETER_LAVA_BASE" python3.10 $$HOME/.pyenv/versions/3.10*/bin/python3.10; do \
	[ -n "$$p" ] && "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 10)' >/dev/null 2>&1 && echo "$$p" && break; done)

.PHONY: run test bench install clean lava-venv

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]"
	@# NeuroBench's metrics need only torch and snntorch; its declared torchaudio/tonic would replace torch.
	$(PY) -m pip install -q --no-deps "neurobench==2.3.0"
	@touch $(STAMP)

install: $(STAMP)

lava-venv: $(LAVA_STAMP)

$(LAVA_STAMP):
	@if [ -n "$(LAVA_BASE)" ]; then \
		echo "lava-nc venv from $(LAVA_BASE)"; \
		test -x $(LAVA_VENV)/bin/python || $(LAVA_BASE) -m venv $(LAVA_VENV); \
		($(LAVA_VENV)/bin/python -m pip install -q "lava-nc==0.10.0" && touch $(LAVA_STAMP)) \
			|| echo "lava-nc did not install: the lava-nc cross-check will be skipped"; \
	else \
		echo "no Python 3.10 found: the lava-nc cross-check will be skipped"; \
	fi

run: $(STAMP)
	$(PY) -m energymeter validate --resume

test: $(STAMP) $(LAVA_STAMP)
	@if [ -x $(LAVA_VENV)/bin/python ]; then export ENERGYMETER_LAVA_PYTHON="$(abspath $(LAVA_VENV))/bin/python"; fi; \
	$(PY) -m pytest -q

# What bench/bench_window.py compares a window against (codecarbon comes with the dev extra).
BENCH_PEERS ?= zeus==0.16.0

bench: $(STAMP) $(LAVA_STAMP)
	$(PY) -m pip install -q $(BENCH_PEERS)
	@# zeus pulls amdsmi, whose import fails without ROCm's libamd_smi.so and then breaks `import ray`
	@# (Ray's AMD probe catches only ImportError); zeus's RAPL window runs without it.
	-@$(PY) -m pip uninstall -y -q amdsmi
	@if [ -x $(LAVA_VENV)/bin/python ]; then export ENERGYMETER_LAVA_PYTHON="$(abspath $(LAVA_VENV))/bin/python"; fi; \
	for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) $(LAVA_VENV) build *.egg-info .pytest_cache
