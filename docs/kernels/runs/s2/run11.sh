#!/usr/bin/env bash
# Session 2, run 11 (final): wgmma picks 256- or 128-row W tiles per shape. Parity twice +
# memcheck; prefill A/B against the 128-row-only build; the full workbench, then v11's.
cd "$(dirname "$0")" && tar xzf bins.tgz
export LD_LIBRARY_PATH=$PWD/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee $OUT/parity.txt
for r in 1 2; do timeout 150 ./cuda_parity >> $OUT/parity.txt 2>&1; echo "parity rc=$?"; done; grep -E "FAIL|passed|seed" $OUT/parity.txt
timeout 200 compute-sanitizer --tool memcheck --print-limit 5 ./cuda_parity --quick > $OUT/memcheck.txt 2>&1; echo "memcheck rc=$?"; grep -E "FAIL|passed|ERROR SUMMARY" $OUT/memcheck.txt
for r in 1 2; do for b in kernel_workbench_n128 kernel_workbench; do echo "=== $b run $r" >> $OUT/ab.md; timeout 60 ./$b --m 64,256,4096 --moe-tokens 0 --no-cublas >> $OUT/ab.md 2>/dev/null; done; done
timeout 120 ./kernel_workbench --json $OUT/workbench.json > $OUT/workbench.md 2> /dev/null; echo "bench rc=$?"
timeout 120 ./kernel_workbench_v11 > $OUT/workbench-v11.md 2> /dev/null; echo "v11 rc=$?"
head -1 $OUT/workbench.md | cut -c1-250
grep -E "\| 4096 \|" $OUT/workbench.md | cut -d'|' -f2-4,8,15
