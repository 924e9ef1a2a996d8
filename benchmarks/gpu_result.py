"""The GPU check's result: gpu_check.json from its steps, and its exit code (the contract gpu_check.sh documents).

    python benchmarks/gpu_result.py STEPS_TSV RESULT_JSON [GATES_RC] [SECONDS]

``STEPS_TSV``: one line per step, ``phase<TAB>step<TAB>exit code<TAB>seconds``. A phase *works* when all its
steps exited 0; the gates step (``meets_target``) is reported apart and never makes a working phase fail.
"""

from __future__ import annotations

import json
import sys

__all__ = ["exit_code", "summarize", "TIMEOUT_CODES"]

TIMEOUT_CODES = (124, 137)  # timeout(1): ran past its limit (killed by TERM / KILL)
OK, MISSED_TARGET, NO_CUDA, PARTS, FAILED, TIMED_OUT = 0, 10, 2, 3, 4, 5


def summarize(steps: list[tuple[str, str, int, int]], gates_rc: int | None, seconds: int = 0) -> dict:
    phases: dict = {}
    for phase, name, rc, s in steps:
        phases.setdefault(phase, {"steps": {}})["steps"][name] = {"rc": rc, "seconds": s}
    for p in phases.values():
        p["works"] = all(st["rc"] == 0 for st in p["steps"].values())
    return {"phases": phases, "works": bool(phases) and all(p["works"] for p in phases.values()),
            "meets_target": None if gates_rc is None else gates_rc == 0, "seconds": seconds}


def exit_code(steps: list[tuple[str, str, int, int]], gates_rc: int | None) -> int:
    """3: the DALI parts were missing or corrupt; 5: a step ran past its limit; 4: a step failed; 10: everything
    worked but a target gate was missed; 0: everything worked (and every gate passed, if gates ran)."""
    rcs = {(phase, name): rc for phase, name, rc, _ in steps}
    if rcs.get(("dali", "parts"), 0) != 0:
        return PARTS
    if any(rc in TIMEOUT_CODES for rc in rcs.values()):
        return TIMED_OUT
    if any(rc != 0 for rc in rcs.values()):
        return FAILED
    return MISSED_TARGET if gates_rc not in (None, 0) else OK


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    steps = []
    for line in open(argv[0]).read().splitlines():
        phase, name, rc, s = line.split("\t")
        steps.append((phase, name, int(rc), int(s)))
    gates = int(argv[2]) if len(argv) > 2 and argv[2] != "" else None
    res = summarize(steps, gates, int(argv[3]) if len(argv) > 3 else 0)
    res["exit_code"] = exit_code(steps, gates)
    with open(argv[1], "w") as f:
        json.dump(res, f, indent=1)
    print(f"gpu_check: works={res['works']} meets_target={res['meets_target']} exit={res['exit_code']} "
          f"in {res['seconds']} s; {argv[1]}")
    return res["exit_code"]


if __name__ == "__main__":
    sys.exit(main())
