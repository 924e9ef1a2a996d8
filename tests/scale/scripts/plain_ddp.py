# DDP as people launch it: torchrun --nproc_per_node 2 plain_ddp.py DATA.yaml CACHE(ram|disk) OUT.json
# Top-level code, no __main__ guard. Each rank builds its loader for its shard; one process per node builds the
# cache, the other waits and maps it. Rank 0 writes what every rank served and how it got its cache.
import json
import sys

import torch.distributed as dist

import loader

data, cache, out = sys.argv[1], sys.argv[2], sys.argv[3]
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
print(f"top-level code ran on rank {rank}", flush=True)
ld = loader.DetectionLoader(data, imgsz=896, batch_size=128, workers=1, backend="cpu", cache=cache, rank=rank,
                            world_size=world, seed=1)
files = [f for batch in ld for f in batch["im_file"]]
st = ld.stats()
row = {"rank": rank, "files": files, "images": len(ld.index), "built_here": st["store"]["built_here"],
       "path": st["store"]["path"], "backing": st["store"]["backing"], "store_errors": st["store_errors"],
       "unreadable": len(ld.unreadable)}
rows = [None] * world
dist.all_gather_object(rows, row)
ld.close()
if rank == 0:
    with open(out, "w") as f:
        json.dump(rows, f)
dist.destroy_process_group()
