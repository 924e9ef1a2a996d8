"""pytest plugin: one JSON line per test the moment it finishes, in ``$LIVE_RESULTS``.

pytest writes its JUnit XML only at the end of a run, so a run killed at its time limit on a device machine
would leave no result at all; with ``-p benchmarks.live_results`` every finished test is on disk already."""

from __future__ import annotations

import json
import os


def pytest_runtest_logreport(report):
    path = os.environ.get("LIVE_RESULTS")
    if not path or not (report.when == "call" or report.outcome != "passed"):
        return
    line = {"test": report.nodeid, "when": report.when, "outcome": report.outcome, "s": round(report.duration, 3)}
    if report.outcome == "failed":
        line["error"] = str(report.longrepr)[-2000:]
    with open(path, "a") as f:
        f.write(json.dumps(line) + "\n")
