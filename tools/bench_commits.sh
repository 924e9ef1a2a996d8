#!/usr/bin/env bash
# Same-machine, interleaved comparison of two commits: `yolo-loader bench` run alternately in a worktree of
# each (this checkout's venv), for a claim such as "the refactor kept the speed". Prints each round's rows
# and, per commit, the median of <ours>/<stock> images/s over the rounds.
#
#   bash tools/bench_commits.sh BEFORE_REV AFTER_REV [ROUNDS] [-- bench arguments]
#   e.g. bash tools/bench_commits.sh 009c0b6 HEAD 3 -- --data $PWD/.demo/bench/data.yaml --batch 32 \
#            --only stock-w8,cpu-auto        (an absolute --data: each commit runs in its own worktree)
set -euo pipefail
cd "$(dirname "$0")/.."
A=$1; B=$2; ROUNDS=${3:-3}
shift 2; [ $# -gt 0 ] && [ "$1" != "--" ] && shift; [ "${1:-}" = "--" ] && shift
ARGS=("$@")
PY=$PWD/.venv/bin/python
OUT=$(mktemp -d /tmp/bench-commits.XXXX)
cleanup() { for rev in "$A" "$B"; do git worktree remove --force "$OUT/$rev" 2>/dev/null || true; done; }
trap cleanup EXIT
for rev in "$A" "$B"; do
  git worktree add -f -q "$OUT/$rev" "$rev"
done
for r in $(seq 1 "$ROUNDS"); do
  for rev in "$A" "$B"; do
    (cd "$OUT/$rev" && PYTHONPATH="$OUT/$rev" "$PY" -m integration.cli bench --no-forced --rounds 1 \
        --json "$OUT/$rev-$r.json" "${ARGS[@]}" > "$OUT/$rev-$r.log" 2>&1) || { tail -20 "$OUT/$rev-$r.log"; exit 1; }
    echo "round $r $rev: $(grep -E '^ *(stock|cpu)' "$OUT/$rev-$r.log" | awk -F'|' '{printf "%s %s img/s; ", $1, $3}')"
  done
done
"$PY" - "$OUT" "$A" "$B" "$ROUNDS" <<'PYEOF'
import json, statistics, sys
out, revs, rounds = sys.argv[1], sys.argv[2:4], int(sys.argv[4])
for rev in revs:
    ratios = []
    for r in range(1, rounds + 1):
        rows = {x["name"]: x for x in json.load(open(f"{out}/{rev}-{r}.json")) if "img_s" in x}
        stock = max((x for n, x in rows.items() if n.startswith("stock")), key=lambda x: x["img_s"])
        ours = rows.get("cpu-auto")
        if ours:
            ratios.append(ours["img_s"] / stock["img_s"])
    print(f"{rev}: cpu-auto / best stock img/s per round {[round(x, 3) for x in ratios]}, "
          f"median {statistics.median(ratios):.3f}")
PYEOF
