"""What a fresh process's CPU engine reports for a compiled kernel's route (its ``stats()`` key), and what it
warned: the route tests of ``hsv`` and ``resize`` run it with and without their opt-out variable."""

from __future__ import annotations

import json
import os
import subprocess
import sys


def engine_route(stat: str, **env) -> tuple[str, str]:
    """(route, stderr) of ``CpuEngine(None, 1).stats()[stat]`` in a subprocess with ``env`` added."""
    code = f"import json; from loader.engines.cpu import CpuEngine; print(json.dumps(CpuEngine(None, 1).stats()[{stat!r}]))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, **env))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1]), r.stderr
