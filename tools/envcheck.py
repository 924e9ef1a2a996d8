"""Check the interpreter and what the set-up installed; tools/bootstrap.sh runs it, `make lock` too.

    python tools/envcheck.py python [--lock requirements.lock]  # interpreter: supported range, known defects
    python tools/envcheck.py freeze                             # installed distributions, name==version
    python tools/envcheck.py verify requirements.lock           # installed == locked, or exit 1 naming each gap
    python tools/envcheck.py report                             # the versions that decide pixels and speed

Standard library only for the ``python`` step (it runs before the venv exists); the other steps run
inside the venv.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

SUPPORTED = ((3, 10), (3, 13))  # inclusive minor range; the lock is resolved for one of them (its header)
# (affected, why): CPython releases with a defect this loader can meet
DEFECTS = [
    (lambda v: (3, 11, 0) <= v < (3, 11, 8) or v == (3, 12, 0),
     "python/cpython#106905: the AST constructor's recursion-depth bookkeeping races between threads "
     "(SystemError 'AST constructor recursion depth mismatch' from ast.literal_eval / np.load in two "
     "threads at once); fixed in 3.11.8 and 3.12.1. Painter threads can meet it through libraries that "
     "parse with ast; upgrade the interpreter when you can"),
]
# Distributions that stand for one another: the lock holds both, exactly one is installed.
ALTERNATIVES = {"pillow": "pillow-simd", "pillow-simd": "pillow"}
NAME_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_python(lock: Path) -> tuple[int, int] | None:
    """The ``major.minor`` the lock was resolved for (its header line ``# python: 3.11.7 ...``)."""
    for line in lock.read_text().splitlines():
        m = re.match(r"#\s*python:\s*(\d+)\.(\d+)", line)
        if m:
            return int(m.group(1)), int(m.group(2))
    return None


def check_python(lock: Path | None) -> int:
    v = sys.version_info[:3]
    lo, hi = SUPPORTED
    shown = ".".join(map(str, v))
    if v[:2] < lo:
        print(f"[envcheck] ERROR: Python {shown} is older than the supported range "
              f"{lo[0]}.{lo[1]}-{hi[0]}.{hi[1]}", file=sys.stderr)
        return 2
    if v[:2] > hi:
        print(f"[envcheck] WARNING: Python {shown} is newer than the tested range {lo[0]}.{lo[1]}-{hi[0]}.{hi[1]}",
              file=sys.stderr)
    for affected, why in DEFECTS:
        if affected(v):
            print(f"[envcheck] WARNING: Python {shown} has a known defect: {why}", file=sys.stderr)
    if lock is not None:
        want = lock_python(lock)
        if want is not None and want != v[:2]:
            print(f"[envcheck] ERROR: {lock} was resolved for Python {want[0]}.{want[1]}, this is {shown}. "
                  f"Either run with PYTHON=python{want[0]}.{want[1]}, or re-resolve the lock for this Python "
                  f"(make lock; commit it only if CI runs this Python), or install without the lock "
                  f"(UNLOCKED=1 make venv: newest versions pyproject.toml allows; the digest test will name "
                  f"any drift)", file=sys.stderr)
            return 2
    print(f"[envcheck] Python {shown} ({sys.executable}): supported range {lo[0]}.{lo[1]}-{hi[0]}.{hi[1]}")
    return 0


def installed() -> dict[str, tuple[str, str]]:
    """normalised name -> (name as published, version), without the editable project itself."""
    from importlib import metadata

    out = {}
    for d in metadata.distributions():
        name = d.metadata["Name"]
        if not name or _norm(name) == "yolo-dali-loader":
            continue
        out[_norm(name)] = (name, d.version)
    return out


def read_lock(lock: Path) -> dict[str, tuple[str, str]]:
    out = {}
    for line in lock.read_text().splitlines():
        m = NAME_LINE.match(line.strip())
        if m:
            out[_norm(m.group(1))] = (m.group(1), m.group(2))
    return out


def verify(lock: Path) -> int:
    want, have = read_lock(lock), installed()
    problems = []
    for key, (name, version) in want.items():
        if key in have:
            if have[key][1] != version:
                problems.append(f"{name}: locked {version}, installed {have[key][1]}")
        elif ALTERNATIVES.get(key) not in have:
            problems.append(f"{name}: locked {version}, not installed")
    for key, (name, version) in have.items():
        if key not in want:
            problems.append(f"{name}=={version}: installed, not in the lock")
    alt = [k for k in ALTERNATIVES if k in have]
    if len(alt) != 1:
        problems.append(f"expected exactly one of pillow / pillow-simd, found {alt or 'none'}")
    if problems:
        print(f"[envcheck] ERROR: the environment differs from {lock}:\n  " + "\n  ".join(problems)
              + "\n  (re-run `make venv`; to move a version on purpose edit the lock or run `make lock`)",
              file=sys.stderr)
        return 1
    print(f"[envcheck] ok: {len(have)} distributions, each at its locked version ({lock})")
    return 0


def freeze() -> int:
    for _, (name, version) in sorted(installed().items()):
        print(f"{name}=={version}")
    return 0


def _kernel_route(name: str) -> str:
    """The CPU engine's route for a step with a compiled kernel (``hsv``, ``resize``, ``warp``, ``jpeg``): "native", or OpenCV and why."""
    import importlib
    import logging

    logging.getLogger("loader").setLevel(logging.ERROR)  # the reason is printed here, not warned
    try:
        mod = importlib.import_module(f"loader.kernels.{name}")
    except ImportError as e:
        return f"? ({e})"
    return mod.kernel()


def report() -> int:
    from importlib import metadata

    import cv2
    import numpy
    import PIL
    from PIL import features

    have = installed()
    cv = [k for k in have if k.startswith("opencv")]
    if len(cv) != 1:
        print(f"[envcheck] ERROR: expected exactly one OpenCV wheel, found {cv}", file=sys.stderr)
        return 1
    pil = [k for k in ALTERNATIVES if k in have]
    if len(pil) != 1 or have[pil[0]][1] != PIL.__version__:
        print(f"[envcheck] ERROR: PIL {PIL.__version__} does not come from exactly one of pillow / pillow-simd "
              f"({pil})", file=sys.stderr)
        return 1
    jpeg = re.search(r"JPEG:\s*(.*)", cv2.getBuildInformation())

    def ver(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    rows = [
        ("python", sys.version.split()[0]),
        ("opencv", f"{cv2.__version__} ({have[cv[0]][0]}), JPEG: {jpeg.group(1).strip() if jpeg else '?'}"),
        ("numpy", numpy.__version__),
        ("torch", ver("torch")),
        ("torchvision", ver("torchvision")),
        ("ultralytics", ver("ultralytics")),
        ("nvidia-dali", ver("nvidia-dali-cuda120")),
        ("PIL", f"{PIL.__version__} ({have[pil[0]][0]}), libjpeg-turbo {features.version('libjpeg_turbo')}, "
                f"SIMD {'yes' if pil[0] == 'pillow-simd' else 'no'}"),
        ("HSV kernel", _kernel_route("hsv")),
        ("resize kernel", _kernel_route("resize")),
        ("warp kernel", _kernel_route("warp")),
        ("JPEG decoder", _kernel_route("jpeg")),
    ]
    for k, v in rows:
        print(f"[envcheck] {k:<13} {v}")
    return 0


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "python":
        lock = Path(rest[rest.index("--lock") + 1]) if "--lock" in rest else None
        return check_python(lock)
    if cmd == "freeze":
        return freeze()
    if cmd == "verify":
        return verify(Path(rest[0]))
    if cmd == "report":
        return report()
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
