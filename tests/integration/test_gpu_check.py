"""The GPU check's plumbing on this machine (GPU_CHECK_DRY=1): both phases run and report, missing or corrupt
DALI parts stop phase 2 at once, and the exit-code contract."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.gpu_result import exit_code, summarize  # noqa: E402


def _check(tmp_path, phase: str, parts: Path | None = None, timeout: int = 900):
    out = tmp_path / "out"
    env = dict(os.environ, GPU_CHECK_DRY="1", OUT=str(out), PYTHON=sys.executable)
    if parts is not None:
        env["GPU_CHECK_PARTS"] = str(parts)
    r = subprocess.run(["bash", "benchmarks/gpu_check.sh", phase], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=timeout)
    res = json.loads((out / "gpu_check.json").read_text()) if (out / "gpu_check.json").exists() else None
    return r, res, out


def _parts(tmp_path) -> Path:
    """A real (tiny) set of parts, made by the same tool as the DALI wheels."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "demo-1.0-py3-none-any.whl", "w") as z:  # incompressible: 3 parts of 1 MiB
        z.writestr("demo/__init__.py", "x = 1\n")
        z.writestr("demo/blob.bin", os.urandom(2_500_000))
    subprocess.run([sys.executable, "tools/gpu_parts.py", "pack", str(wheels), str(tmp_path / "parts"),
                    "--part-mib", "1"], cwd=ROOT, check=True, capture_output=True)
    assert len(list((tmp_path / "parts").glob("dali.tar.xz.part*"))) == 3
    return tmp_path / "parts"


def test_dry_run_exercises_both_phases_dali_first(tmp_path):
    r, res, out = _check(tmp_path, "all", _parts(tmp_path))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert res["works"] and res["meets_target"] is None and res["exit_code"] == 0
    assert list(res["phases"]) == ["dali", "stock"], "the part that can fail runs first"
    dali, stock = res["phases"]["dali"]["steps"], res["phases"]["stock"]["steps"]
    assert list(dali)[:4] == ["parts", "facts", "import", "tests"]
    assert {"bench", "dali-did-the-work", "train"} <= set(dali) and {"facts", "bench", "train"} <= set(stock)
    for f in ("dali-tests.xml", "dali-tests.jsonl", "dali-bench.json", "dali-train.json", "stock-bench.json",
              "stock-train.json", "dali-bench.log"):
        assert (out / f).exists(), f
    live = [json.loads(x) for x in (out / "dali-tests.jsonl").read_text().splitlines()]
    assert live and all(t["outcome"] == "passed" for t in live), "a line per finished test"
    rows = {x["name"].split(" ")[0] for x in json.loads((out / "dali-bench.json").read_text())}  # " (CPU-only mode)"
    assert {"dali", "dali-disk"} <= rows, "from JPEG and from the disk cache"
    rows = {x["name"] for x in json.loads((out / "stock-bench.json").read_text())}
    assert {"stock-w8", "cpu-w8", "cpu-w12", "cpu-auto"} <= rows


def test_step_limits_fit_the_documented_call_timeouts():
    """Each phase's step limits add up to less than the timeout_s its call uses in benchmarks/README.md (600):
    a step killed by its own limit still leaves the call time to write gpu_check.json. (The optional knob sweep,
    GPU_CHECK_KNOBS=1, is outside the documented sequence.)"""
    import re

    text = (ROOT / "benchmarks" / "gpu_check.sh").read_text()
    helpers = {name: int(n) for name, n in re.findall(r'step "\$1" ([\w-]+) (\d+)', text)}
    assert set(helpers) == {"facts", "data"}
    for phase in ("dali", "stock"):
        body = text[text.index(f"\n{phase}() {{"):]
        body = body[:body.index("\n}\n")]
        steps = {name: int(n) for name, n in re.findall(rf"step {phase} ([\w-]+) (\d+)", body) if name != "knobs"}
        steps.update({h: helpers[h] for h, call in (("facts", "facts "), ("data", "demo_data ")) if call in body})
        grace = int(re.search(r"--kill-after=(\d+)", text).group(1)) * len(steps)  # timeout's KILL delay, each
        assert len(steps) >= 4 and sum(steps.values()) + grace <= 600, (phase, steps, grace)


@pytest.mark.parametrize("damage", ["no-sha", "missing-part", "corrupt"])
def test_missing_or_corrupt_parts_stop_phase_two_at_once(tmp_path, damage):
    parts = _parts(tmp_path)
    if damage == "no-sha":
        (parts / "dali.tar.xz.sha256").unlink()
    elif damage == "missing-part":
        sorted(parts.glob("dali.tar.xz.part*"))[0].unlink()
    else:
        p = sorted(parts.glob("dali.tar.xz.part*"))[-1]
        p.write_bytes(p.read_bytes()[:-10] + b"0123456789")
    r, res, out = _check(tmp_path, "dali", parts, timeout=120)
    assert r.returncode == 3, r.stdout[-2000:]
    assert list(res["phases"]["dali"]["steps"]) == ["parts"], "nothing else of the dali phase ran"
    assert "missing or corrupt" in r.stdout


def test_exit_code_contract():
    ok = [("dali", "tests", 0, 5), ("stock", "bench", 0, 60)]
    assert exit_code(ok, None) == 0 and exit_code(ok, 0) == 0
    assert exit_code(ok, 1) == 10, "works, misses a target: not the same as broken"
    assert exit_code(ok + [("dali", "tests", 1, 9)], 0) == 4
    assert exit_code(ok + [("dali", "bench", 124, 180)], None) == 5
    assert exit_code([("dali", "parts", 1, 2)], None) == 3
    assert exit_code([("dali", "parts", 3, 0)], None) == 3
    res = summarize(ok + [("dali", "bench", 1, 3)], 1, 70)
    assert res["phases"]["stock"]["works"] and not res["phases"]["dali"]["works"] and not res["works"]
    assert res["meets_target"] is False and res["seconds"] == 70
