# The two entry points named in README.md. Both create .venv on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test test-all

demo: $(VENV)/.installed
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash examples/quickstart.sh

test: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q

test-all: $(VENV)/.installed
	HF_HUB_OFFLINE=1 $(PY) -m pytest -q -m ""

# torch/torchvision first (pinned: the project's ranges must never pull another torch), then partcli.
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@
