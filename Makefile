# Echo4D: `make serve` runs the embedded service, `make test` runs every check, `make demo` runs
# one reconstruction on built-in data. Each bootstraps .venv from a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install test lint typecheck pytest demo serve clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch first and pinned exactly: a looser spec would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[worker,dev]'
	@touch $(STAMP)

# The Khronos glTF validator (npm) for the mesh.glb test; without npm the test skips and says why.
GLTF_VALIDATOR := tools/gltf-validator/node_modules/.package-lock.json
$(GLTF_VALIDATOR): tools/gltf-validator/package-lock.json
	@if command -v npm >/dev/null; then cd tools/gltf-validator && npm ci --no-audit --no-fund --loglevel=error; \
	else echo "npm not found: the glTF validator test will skip"; fi

install: $(STAMP) $(GLTF_VALIDATOR)

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy models service worker

# pytest-xdist: one worker per core (PYTEST_WORKERS=0 runs in one process; PYTEST_ARGS selects tests).
# worksteal: idle workers take tests queued on busy ones, so the few minute-long tests do not leave one worker
# running alone at the end.
PYTEST_WORKERS ?= auto
pytest: install
	$(VENV)/bin/pytest -q -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# ruff and mypy run beside pytest (mypy is single-threaded; it fills the cores the pytest workers leave idle while
# they wait on their subprocesses). pytest's output streams; ruff's and mypy's is printed after it.
test: install
	@$(MAKE) --no-print-directory -j2 --output-sync=target lint typecheck > $(VENV)/.checks.log 2>&1 & checks=$$!; \
	$(MAKE) --no-print-directory pytest; tests=$$?; \
	wait $$checks; checks_rc=$$?; cat $(VENV)/.checks.log; \
	if [ $$checks_rc -ne 0 ]; then echo "make test: ruff or mypy failed (above)"; fi; \
	exit $$(( tests != 0 || checks_rc != 0 ))

demo: install
	$(VENV)/bin/echo4d demo

serve: install
	$(VENV)/bin/echo4d serve

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
