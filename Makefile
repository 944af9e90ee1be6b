# make demo: train small translation models on the shipped corpus, reload them, translate, draw attention.
# make test: the test suite but the tests marked slow; make test SLOW=1: all of it (what CI runs).
# Each creates .venv and installs the CPU torch first (override with TORCH_SPEC=...).
# make app: the Gradio web demo (app.py) on http://127.0.0.1:$(APP_PORT), after training the demo models it lacks.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
DATA_DIR ?= ../shared/data
OUTPUTS ?= outputs
APP_PORT ?= 7860
DEMO_MODELS := $(addprefix $(OUTPUTS)/demo_,translation_transformer translation_gru text_classification \
	image_classification_vit image_classification_gfnet image_classification_afno)

.PHONY: install browser test demo app clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test,onnx,deploy,app,federated]"
	touch $@

# The browser test (tests/test_app_browser.py) drives Debian's chromium; as root (CI), install it when missing.
# Otherwise that test fails and says chromium is missing.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq chromium; } \
		|| echo "make: no chromium and cannot install it (not root?): tests/test_app_browser.py will fail"

test: install browser
	$(BIN)/python -m pytest -q $(if $(SLOW),,-m "not slow")

demo: install
	DATA_DIR=$(DATA_DIR) OUTPUTS=$(OUTPUTS) BIN=$(BIN) bash recipes/demo.sh

app: install
	@for folder in $(DEMO_MODELS); do [ -f $$folder/model.safetensors ] || missing="$$missing $$folder"; done; \
	if [ -n "$$missing" ]; then \
		echo "make app: training the demo models it lacks ($$missing ) with recipes/demo.sh; progress bars follow"; \
		SKIP_TRAINED=1 DATA_DIR=$(DATA_DIR) OUTPUTS=$(OUTPUTS) BIN=$(BIN) bash recipes/demo.sh; \
	fi
	HF_HUB_OFFLINE=1 $(BIN)/python app.py --models_dir $(OUTPUTS) --port $(APP_PORT)

clean:
	rm -rf $(VENV) $(OUTPUTS) .pytest_cache
