# Two commands a newcomer needs: `make demo` and `make test`. Each sets up first.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
DEMO_OUT ?= demo_out

.PHONY: setup test demo bench clean

setup:
	@bash scripts/setup.sh "$(PYTHON)"

# Browser tests run in a process of their own: inside the full xdist run headless Chromium
# sometimes never creates its WebGL context (3 of 3 full runs on 2026-12-03; 0 of 6 alone).
test: setup
	$(PYTHON) -m pytest -q -n 2 --dist loadfile -m "not browser" tests
	$(PYTHON) -m pytest -q -m browser tests

demo: setup
	$(PYTHON) -m lyra_sim.cli demo -o $(DEMO_OUT)

bench: setup
	$(PYTHON) benchmarks/io.py && $(PYTHON) benchmarks/render.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache build *.egg-info
