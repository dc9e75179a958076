# Echo4D: `make serve` runs the embedded service, `make test` runs every check, `make demo` runs
# one reconstruction on built-in data. Each bootstraps .venv from a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install test-tools test lint typecheck importlint pytest demo serve clean

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

# The web viewer: three.js (served by the API from service/viewer/static/vendor, no CDN) and playwright-core for its
# browser test (never downloads a browser). Without npm the viewer pages answer 503 and the browser test skips.
VIEWER_DEPS := service/viewer/node_modules/.package-lock.json
VIEWER_BUILD := service/viewer/static/vendor/three/build/three.module.js
$(VIEWER_DEPS): service/viewer/package-lock.json
	@if command -v npm >/dev/null; then cd service/viewer && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error; \
	else echo "npm not found: the web viewer is not built (its pages answer 503) and its browser test will skip"; fi
$(VIEWER_BUILD): $(VIEWER_DEPS) service/viewer/build.mjs
	@if [ -d service/viewer/node_modules/three ]; then cd service/viewer && node build.mjs; fi

# Debian packages the tests use, installed when absent and apt-get is usable (root): chromium for the viewer's
# browser test (~2 min), dicom3tools for dciodvfy on the DICOM results (~40 s). Without them those tests skip and say why.
TEST_PACKAGES := /usr/bin/chromium:chromium /usr/bin/dciodvfy:dicom3tools
test-tools:
	@missing=""; for pair in $(TEST_PACKAGES); do [ -x "$${pair%%:*}" ] || missing="$$missing $${pair#*:}"; done; \
	if [ -z "$$missing" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing$$missing for the tests (apt-get)"; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  { apt-get install -y -q $$missing >/dev/null 2>&1 || \
	    { apt-get update -q >/dev/null && apt-get install -y -q $$missing >/dev/null; }; } || \
	  echo "$$missing could not be installed: the tests needing them will skip"; \
	else echo "$$missing not found and apt-get is not usable here (not root): the tests needing them will skip"; fi

install: $(STAMP) $(GLTF_VALIDATOR) $(VIEWER_BUILD) test-tools

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy models jobcore service worker cli

# The floor plan (docs/architecture.md) as import-linter contracts ([tool.importlinter] in pyproject.toml).
importlint: install
	$(VENV)/bin/lint-imports

# pytest-xdist: one worker per core (PYTEST_WORKERS=0 runs in one process; PYTEST_ARGS selects tests).
# worksteal: idle workers take tests queued on busy ones, so the few minute-long tests do not leave one worker
# running alone at the end.
PYTEST_WORKERS ?= auto
pytest: install
	$(VENV)/bin/pytest -q -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

# ruff, mypy and lint-imports run beside pytest (mypy is single-threaded; it fills the cores the pytest workers leave
# idle while they wait on their subprocesses). pytest's output streams; the checks' output is printed after it.
test: install
	@$(MAKE) --no-print-directory -j2 --output-sync=target lint typecheck importlint > $(VENV)/.checks.log 2>&1 & checks=$$!; \
	$(MAKE) --no-print-directory pytest; tests=$$?; \
	wait $$checks; checks_rc=$$?; cat $(VENV)/.checks.log; \
	if [ $$checks_rc -ne 0 ]; then echo "make test: ruff, mypy or lint-imports failed (above)"; fi; \
	exit $$(( tests != 0 || checks_rc != 0 ))

demo: install
	$(VENV)/bin/echo4d demo

serve: install
	$(VENV)/bin/echo4d serve

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
