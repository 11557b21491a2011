# Two entry points: `make demo` and `make test`. Each sets everything up by itself:
# a virtual environment, torch first (the CPU build where there is no CUDA; see
# scripts/install-torch.sh), then the project. `make browser` installs chromium for the
# dashboard's browser test (apt, as root); CI runs it, `make test` does not.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
# PyTorch's CPU wheels; where this index cannot be reached, pip's own configuration.
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu
PYTORCHCV_SPEC ?= pytorchcv==0.0.74
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint clean browser

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	PYTHON=$(BIN)/python TORCH_SPEC="$(TORCH_SPEC)" TORCH_INDEX_URL="$(TORCH_INDEX_URL)" \
	  bash scripts/install-torch.sh
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# pytorchcv for examples/byo_resnet20, without the torchvision it declares but does not
	# use here (PyPI's torchvision would bring another torch).
	$(BIN)/python -m pip install --quiet --no-deps "$(PYTORCHCV_SPEC)"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/hwsearch run examples/digits_cnn.yaml --out runs/demo

# The dashboard's browser test drives Debian's chromium, never a downloaded browser. This
# step installs it with apt-get (as root); without it the test is skipped with the reason,
# except under CI=true, where it fails.
browser:
	@if command -v chromium >/dev/null 2>&1; then \
	  echo "browser: chromium is installed ($$(command -v chromium))"; \
	else \
	  echo "browser: installing Debian's chromium with apt-get (needs root)"; \
	  apt-get update -qq && apt-get install -y -qq chromium; \
	fi

test: $(STAMP)
	$(BIN)/ruff check hwsearch tests bench
	$(BIN)/mypy
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check hwsearch tests bench
	$(BIN)/ruff format --check hwsearch tests bench
	$(BIN)/mypy

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
