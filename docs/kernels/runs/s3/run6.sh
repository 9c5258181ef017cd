#!/usr/bin/env bash
# Session 3, run 6: full workbench (with cuBLASLt) of the final binary (same as run 5), and of
# the v11 binary right after it.
cd "$(dirname "$0")" && tar xzf bins.tgz
export LD_LIBRARY_PATH=$PWD/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
timeout 150 ./kernel_workbench --json $OUT/workbench.json > $OUT/workbench.md 2> /dev/null; echo "bench rc=$?"
timeout 150 ./kernel_workbench_v11 --json $OUT/workbench-v11.json > $OUT/workbench-v11.md 2> /dev/null; echo "bench v11 rc=$?"
head -1 $OUT/workbench.md | cut -c1-250
