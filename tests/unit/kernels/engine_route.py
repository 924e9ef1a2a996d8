"""What a fresh process's CPU engine reports for a compiled kernel's route (its ``stats()`` key), and what it
warned: the route tests of the compiled kernels run it with and without their opt-out variable."""

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


def assert_vbmi_route(stat: str, var: str, env: str, warning: str, vector: bool) -> None:
    """The route test of a kernel that needs AVX-512 VBMI (hsv, resize, warp): ``var=opencv`` chooses OpenCV's
    route, warned with ``warning``; otherwise the kernel runs silently where the CPU has VBMI (``vector``: CI's
    does), and OpenCV's route runs, warned with the reason, where it has not."""
    route, err = engine_route(stat, **{var: env})
    if env:
        assert route == f"opencv: {var}=opencv" and warning in err, (route, err)
    elif vector:
        assert route == "native" and warning not in err, (route, err)
    else:
        assert route.startswith("opencv: this CPU has no AVX-512 VBMI") and warning in err, route
