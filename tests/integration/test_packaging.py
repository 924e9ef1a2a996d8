"""Packaging promises: entry points, layering, version checks, backend report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=ROOT).stdout


def test_loader_never_imports_ultralytics_or_torch_at_import():
    out = _run("import sys, loader, loader.dataset, loader.sampler, loader.demo_data, loader.cli; "
               "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ultralytics', 'torch')))")
    assert out.strip() == "[]"


def test_no_loader_module_imports_ultralytics():
    offenders = [str(p) for p in (ROOT / "loader").rglob("*.py")
                 if any(line.strip().startswith(("import ultralytics", "from ultralytics"))
                        for line in p.read_text().splitlines())]
    assert offenders == []


def test_ultralytics_version_check():
    from integration._version import UnsupportedUltralytics, check_ultralytics_version

    assert check_ultralytics_version("8.4.150") == "8.4.150"
    assert check_ultralytics_version("8.4.190") == "8.4.190"
    for bad in ("8.3.99", "8.4.149", "8.5.0", "9.0.1"):
        with pytest.raises(UnsupportedUltralytics, match=r"supports >=8\.4\.150,<8\.5"):
            check_ultralytics_version(bad)
    with pytest.raises(UnsupportedUltralytics, match="cannot read"):
        check_ultralytics_version("banana")
    import integration.ultralytics as iu  # the installed one is in range

    assert iu.ULTRALYTICS_VERSION.startswith("8.4.")


def test_one_opencv_build_and_backend_report():
    from importlib import metadata

    cv = sorted({d.metadata["Name"].lower() for d in metadata.distributions()
                 if d.metadata["Name"].lower().startswith("opencv")})
    assert len(cv) == 1, cv
    from loader.imaging import backend_report, describe

    r = backend_report()
    assert r["pillow_distribution"] in ("pillow", "pillow-simd") and r["opencv"]
    assert "JPEG decode" in describe() and "resize" in describe()


def test_cli_demo_data_and_index(tmp_path):
    exe = Path(sys.executable).with_name("yolo-loader")
    assert exe.exists(), "console script yolo-loader is installed"
    out = subprocess.run([str(exe), "demo-data", "--out", str(tmp_path / "d"), "--count", "3", "--size", "160x120",
                          "--nasty"], check=True, capture_output=True, text=True).stdout
    assert "wrote" in out
    r = subprocess.run([str(exe), "index", str(tmp_path / "d" / "data.yaml"), "--json", "--no-cache"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    summary, info = r.stdout.strip().splitlines()
    assert summary.startswith("train: ") and "10 skipped" in summary
    assert json.loads(info)["candidates"] == 3 + 19
    assert "skipped 1/10" in r.stderr  # each skipped file named, counted
    bad = subprocess.run([str(exe), "index", str(tmp_path / "nothing")], capture_output=True, text=True)
    assert bad.returncode == 2 and "does not exist" in bad.stderr
    r = subprocess.run([str(exe), "demo-data", "--out", str(tmp_path / "e"), "--size", "big"], capture_output=True,
                       text=True)
    assert r.returncode == 2 and "1920x1080" in r.stderr


def test_tree_minor_faults_count_children_and_keep_exited_ones():
    """The bench's faults per image: a child touching 50 MB page by page (no huge pages: a fresh 4 KiB-aligned
    mapping, madvise'd off) is counted, and still counted by its last reading after it exits."""
    from loader.memory import tree_minor_faults

    seen: dict[int, int] = {}
    before = tree_minor_faults(seen=seen)
    code = ("import mmap, time; m = mmap.mmap(-1, 50 << 20); m.madvise(mmap.MADV_NOHUGEPAGE)\n"
            "for i in range(0, 50 << 20, 4096): m[i] = 1\nprint('ready', flush=True); time.sleep(30)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        during = tree_minor_faults(seen=seen)
        assert during > before + 10_000  # 12,800 pages touched
    finally:
        child.kill()
        child.wait()
    assert tree_minor_faults(seen=seen) >= during  # exited: its last reading stays in


def test_tree_pss_parts_read_the_rollup_as_psutil_reads_smaps(tmp_path):
    """PSS from one read of smaps_rollup per process (the bench's meter, once a second) agrees with psutil's sum
    over the full smaps; its file-backed part grows with a mapped file's pages."""
    import mmap

    import psutil

    from loader.memory import tree_pss_parts

    pss, file = tree_pss_parts()
    assert abs(pss - psutil.Process().memory_full_info().pss) < 16 << 20, (pss, file)
    path = tmp_path / "mapped"
    path.write_bytes(b"\1" * (48 << 20))
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        assert sum(m[i] for i in range(0, len(m), 4096)) == len(m) // 4096  # every page mapped in
        pss2, file2 = tree_pss_parts()
        assert file2 > file + (40 << 20) and pss2 > pss + (40 << 20), (file, file2, pss, pss2)


def test_tree_pss_counts_children():
    from loader.memory import tree_pss

    alone = tree_pss()
    child = subprocess.Popen([sys.executable, "-c", "import time, numpy; x = numpy.ones(50_000_000, numpy.uint8); "
                              "print('ready', flush=True); time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        assert tree_pss() > alone + 40_000_000  # the child's 50 MB array is counted
    finally:
        child.kill()
        child.wait()
