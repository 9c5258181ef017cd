#!/usr/bin/env bash
# Session 2, run 7 (final build): parity twice (fresh seeds) + memcheck; the full workbench
# (copy bandwidth and cuBLASLt in the same run), then the v11 binary's full workbench.
cd "$(dirname "$0")" && tar xzf bins.tgz
export LD_LIBRARY_PATH=$PWD/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv,noheader | tee $OUT/parity.txt
for r in 1 2; do timeout 150 ./cuda_parity >> $OUT/parity.txt 2>&1; echo "parity rc=$?"; done; grep -E "FAIL|passed|seed" $OUT/parity.txt
timeout 150 compute-sanitizer --tool memcheck --print-limit 5 ./cuda_parity --quick > $OUT/memcheck.txt 2>&1; echo "memcheck rc=$?"; grep -E "FAIL|passed" $OUT/memcheck.txt; tail -1 $OUT/memcheck.txt
timeout 120 ./kernel_workbench --json $OUT/workbench.json > $OUT/workbench.md 2> /dev/null; echo "bench rc=$?"
timeout 120 ./kernel_workbench_v11 --json $OUT/workbench-v11.json > $OUT/workbench-v11.md 2> /dev/null; echo "v11 rc=$?"
head -1 $OUT/workbench.md | cut -c1-250; head -1 $OUT/workbench-v11.md | cut -c1-250
