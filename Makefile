# The project's commands. Everything runs from a virtualenv in .venv that `make venv` builds.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: venv tools demo demo-azure test lint proto monitoring bench fuzz clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

venv: $(VENV)/.installed

## Tools from outside PyPI that the tests use: promtool (Debian's prometheus package) for the alert rules.
$(VENV)/bin/promtool: | $(VENV)/.installed
	sh tools/install-promtool.sh $@

tools: $(VENV)/bin/promtool

## The main job end to end: OpenBao dev server, the daemon on a socket, the local driver mounting an SPC.
demo: venv
	$(PY) tools/demo.py

## The same flow against the local Azure Key Vault fake.
demo-azure: venv
	$(PY) tools/demo_azure.py

## The whole test suite (what .ci/run calls).
test: venv tools
	$(PY) -m ruff check provider tests tools
	$(PY) -m mypy provider
	$(PY) -m pytest -q tests

lint: venv
	$(PY) -m ruff check provider tests tools
	$(PY) -m mypy provider

## Regenerate provider/_proto from proto/ (a test fails when they disagree).
proto: venv
	$(PY) tools/gen_proto.py

## Regenerate deploy/monitoring's PrometheusRule and dashboard from prometheus-rules.yaml and tools/gen_monitoring.py.
monitoring: venv
	$(PY) tools/gen_monitoring.py

## Benchmarks that print figures (not tests).
bench: venv
	$(PY) tools/bench.py

## A longer fuzzing run than the one in `make test`.
fuzz: venv
	HYPOTHESIS_PROFILE=long $(PY) -m pytest -q tests -m fuzz

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis build *.egg-info
