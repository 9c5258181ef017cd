#!/usr/bin/env bash
# Device run: parity, memcheck on the quick parity, then the workbench. Full logs in $OUT.
cd "$(dirname "$0")"
export LD_LIBRARY_PATH=$PWD/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem,power.draw --format=csv | tee $OUT/gpu.txt
ldd ./cuda_parity | grep -i "not found"
MODE=${1:-all}
if [ "$MODE" = all ] || [ "$MODE" = parity ]; then
  timeout 240 ./cuda_parity > $OUT/parity.txt 2>&1; echo "parity rc=$?"
  grep -E "FAIL|passed|seed|device|error" $OUT/parity.txt | head -60
  timeout 150 compute-sanitizer --tool memcheck --print-limit 5 ./cuda_parity --quick > $OUT/memcheck.txt 2>&1; echo "memcheck rc=$?"
  tail -4 $OUT/memcheck.txt
fi
if [ "$MODE" = all ] || [ "$MODE" = bench ]; then
  shift || true
  timeout ${BENCH_TIMEOUT:-300} ./kernel_workbench --json $OUT/workbench.json "$@" > $OUT/workbench.md 2> $OUT/workbench.err; echo "bench rc=$?"
  tail -3 $OUT/workbench.err
  cat $OUT/workbench.md
fi
