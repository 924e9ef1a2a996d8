# A training loop written as most people write one: top-level code, no `if __name__ == "__main__":` guard.
# Used by tests/scale/test_scale.py:  python plain_loop.py DATA.yaml CACHE(none|ram|disk) OUT.json
# Two epochs at imgsz 896, batch 128: epoch 0 interrupted half-way, resumed from its state_dict in a new loader
# (as after a restart), epoch 1 with close_mosaic. Every figure the test checks goes to OUT.json.
import json
import os
import sys
import time

import loader

data, cache, out = sys.argv[1], sys.argv[2], sys.argv[3]
print("top-level code ran", flush=True)
kw = dict(imgsz=896, batch_size=128, workers=2, backend="cpu", cache=None if cache == "none" else cache, seed=1)


def open_fds():
    return len(os.listdir("/proc/self/fd"))


t0 = time.perf_counter()
ld = loader.DetectionLoader(data, **kw)
t_built = time.perf_counter()
n, n_batches = len(ld.index), len(ld)
epoch0, fd_max, shapes = [], open_fds(), set()
for k, batch in enumerate(ld):
    shapes.add(tuple(batch["img"].shape[1:]))
    epoch0 += batch["im_file"]
    fd_max = max(fd_max, open_fds())
    if k + 1 == n_batches // 2:
        break
state = ld.state_dict()
first = ld.stats()
ld.close()

ld = loader.DetectionLoader(data, **kw)  # a new process would do the same: build, then load the state
ld.load_state_dict(state)
for batch in ld:
    shapes.add(tuple(batch["img"].shape[1:]))
    epoch0 += batch["im_file"]
    fd_max = max(fd_max, open_fds())
t_epoch0 = time.perf_counter()
ld.close_mosaic()
epoch1 = []
for batch in ld:
    shapes.add(tuple(batch["img"].shape[1:]))
    epoch1 += batch["im_file"]
    fd_max = max(fd_max, open_fds())
t_epoch1 = time.perf_counter()
st = ld.stats()
result = {"build_s": t_built - t0, "epoch0_s": t_epoch0 - t_built, "epoch1_s": t_epoch1 - t_epoch0,"images": n, "batches": n_batches, "epoch0": len(epoch0), "epoch0_unique": len(set(epoch0)),
          "epoch1": len(epoch1), "epoch1_unique": len(set(epoch1)), "mosaic_closed": ld.mosaic_closed,
          "shapes": sorted(shapes), "fd_max": fd_max, "unreadable": len(ld.unreadable),
          "store_errors": first["store_errors"] + st["store_errors"], "read_faults": st["read_faults"],
          "store": st["store"], "first_store": first["store"]}
ld.close()
with open(out, "w") as f:
    json.dump(result, f)
print("done", json.dumps(result), flush=True)
