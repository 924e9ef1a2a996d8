"""Pack wheels for a device machine into parts that fit one device call, and unpack them there.

    python tools/gpu_parts.py pack DIR_OF_WHEELS OUT_DIR [--part-mib 60] [--preset 6]
    python tools/gpu_parts.py unpack PARTS_DIR DEST

``pack``: the wheels are unpacked (a wheel is a zip: compressing zips gains little) into one tar, compressed
with xz (Python's lzma), and split into ``dali.tar.xz.partNN`` of at most ``--part-mib`` MiB, with
``dali.tar.xz.sha256`` of the whole and a ``manifest.json`` (sizes, seconds). ``unpack``: joins the parts,
checks the sha256 first (exit 3, naming what is wrong, when a part is missing or corrupt: nothing is
unpacked), then unpacks and re-zips each wheel into DEST, ready for ``pip install --no-index``. Only the
standard library is needed on either side.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import lzma
import sys
import tarfile
import time
import zipfile
from pathlib import Path

NAME = "dali.tar.xz"


def pack(wheels: Path, out: Path, part_mib: int, preset: int) -> dict:
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob(NAME + "*"):
        old.unlink()
    buf = io.BytesIO()
    raw = 0
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for whl in sorted(wheels.glob("*.whl")):
            with zipfile.ZipFile(whl) as z:
                for info in z.infolist():
                    data = z.read(info)
                    raw += len(data)
                    ti = tarfile.TarInfo(f"{whl.name}/{info.filename}")
                    ti.size, ti.mode = len(data), (info.external_attr >> 16) or 0o644
                    tar.addfile(ti, io.BytesIO(data))
    tar_bytes = buf.getvalue()
    packed = lzma.compress(tar_bytes, preset=preset)
    part = part_mib * 2**20
    for k in range(0, len(packed), part):
        (out / f"{NAME}.part{k // part:02d}").write_bytes(packed[k:k + part])
    (out / f"{NAME}.sha256").write_text(hashlib.sha256(packed).hexdigest() + "\n")
    wheel_bytes = sum(w.stat().st_size for w in wheels.glob("*.whl"))
    info = {"wheels": sorted(w.name for w in wheels.glob("*.whl")), "wheel_bytes": wheel_bytes, "unpacked_bytes": raw,
            "packed_bytes": len(packed), "parts": -(-len(packed) // part), "part_mib": part_mib, "xz_preset": preset,
            "seconds": round(time.perf_counter() - t0, 1)}
    (out / "manifest.json").write_text(json.dumps(info, indent=1))
    return info


def unpack(parts: Path, dest: Path) -> int:
    files = sorted(parts.glob(f"{NAME}.part*"))
    sha = parts / f"{NAME}.sha256"
    if not files or not sha.exists():
        print(f"{parts}: {'no ' + NAME + '.partNN' if not files else 'no ' + sha.name}: parts missing")
        return 3
    numbers = [int(f.name.rsplit("part", 1)[1]) for f in files]
    if numbers != list(range(len(files))):
        print(f"{parts}: parts {numbers} are not 00..{len(files) - 1:02d}: one is missing")
        return 3
    data = b"".join(f.read_bytes() for f in files)
    if hashlib.sha256(data).hexdigest() != sha.read_text().strip():
        print(f"{parts}: the joined parts ({len(data)} bytes) do not match {sha.name}: corrupt or incomplete")
        return 3
    dest.mkdir(parents=True, exist_ok=True)
    wheels: dict[str, zipfile.ZipFile] = {}
    with tarfile.open(fileobj=io.BytesIO(lzma.decompress(data)), mode="r") as tar:
        for m in tar:
            whl, _, name = m.name.partition("/")
            if whl not in wheels:
                wheels[whl] = zipfile.ZipFile(dest / whl, "w", zipfile.ZIP_STORED)
            wheels[whl].writestr(name, tar.extractfile(m).read())
    for z in wheels.values():
        z.close()
    print(f"unpacked {len(wheels)} wheels into {dest}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("wheels", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--part-mib", type=int, default=60)
    p.add_argument("--preset", type=int, default=6)
    u = sub.add_parser("unpack")
    u.add_argument("parts", type=Path)
    u.add_argument("dest", type=Path)
    a = ap.parse_args(argv)
    if a.cmd == "pack":
        print(json.dumps(pack(a.wheels, a.out, a.part_mib, a.preset), indent=1))
        return 0
    return unpack(a.parts, a.dest)


if __name__ == "__main__":
    sys.exit(main())
