"""The floor plan at run time (the import graph itself is checked by `lint-imports`, pyproject [tool.importlinter]):
the API, the job core, the worker's Celery side and the command line import without torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_api_and_worker_modules_import_without_torch():
    code = ("import sys; import service.app, cli, cli.bench_api, cli.composition, jobcore.clients, jobcore.reconciler, "
            "worker.tasks, worker.pipeline, worker.worker_main; assert 'torch' not in sys.modules, 'torch imported'")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
