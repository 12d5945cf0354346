"""What an API process imports: a fresh interpreter, so nothing else was loaded first."""

from __future__ import annotations

import subprocess
import sys


def test_the_api_side_of_the_composition_root_loads_no_torch():
    # API processes and `upres keys` import upres.wiring only; torch, the models and
    # the engine are the worker half's (upres.worker_wiring), ~2 s of imports.
    code = (
        "import sys, upres.wiring, upres.cli.asgi, upres.cli.keys; "
        "print(sorted(m for m in ('torch', 'upres.pipeline.engine') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]"
