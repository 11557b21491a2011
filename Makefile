# Two entry points: `make demo` and `make test`. Each sets everything up by itself:
# a virtual environment, the CPU build of torch first, then the project.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
PYTORCHCV_SPEC ?= pytorchcv==0.0.74
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint clean browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# pytorchcv for examples/byo_resnet20, without the torchvision it declares but does not
	# use here (PyPI's torchvision would bring another torch).
	$(BIN)/python -m pip install --quiet --no-deps "$(PYTORCHCV_SPEC)"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hwsearch run examples/digits_cnn.yaml --out runs/demo

# The dashboard's browser test drives Debian's chromium, never a downloaded browser.
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium) \
	  || echo "chromium could not be installed: the dashboard browser test will be skipped"

test: $(STAMP) browser
	$(BIN)/ruff check hwsearch tests bench
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check hwsearch tests bench
	$(BIN)/ruff format --check hwsearch tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
