# Two entry points for a fresh clone (only Python needed):
#   make run   - create the environment if missing, then run the default job (Fig. 4 of Lun et al. 2025)
#   make test  - create the environment if missing, then run the test suite (what CI runs)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-all lint bench figures clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/fluxsim

# --dist loadgroup: tests marked @pytest.mark.xdist_group(name) run on one worker, one after another, so the
# first compiles a configuration and the others load it from the persistent compilation cache.
test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup -m "not slow"

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check fluxsim tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# The README's figures: the fig4, fig5b and fig5d presets at default numerics, PNGs copied to docs/figures/.
figures: $(STAMP)
	mkdir -p docs/figures
	for p in fig4 fig5b fig5d; do \
		dir=$$($(BIN)/fluxsim preset=$$p runtime.progress=false | tail -n 1); \
		test -d "$$dir" || { echo "fluxsim preset=$$p failed: $$dir"; exit 1; }; \
		for f in "$$dir"/*.png; do cp "$$f" docs/figures/$$p-$$(basename "$$f"); done; \
	done

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
