#!/usr/bin/env bash
# Session 3, run 2: FP8 wgmma decode with 64-k promotion, burst 3 (kernel_workbench) and the
# prefetch variant (burst 2, next burst loaded during the wgmmas). Parity of both + memcheck;
# decode A/B against the v11 binary, interleaved twice; full workbench of the main binary.
cd "$(dirname "$0")" && tar xzf bins.tgz
export LD_LIBRARY_PATH=$PWD/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee $OUT/parity.txt
timeout 150 ./cuda_parity >> $OUT/parity.txt 2>&1; echo "parity rc=$?"; grep -E "FAIL|passed|seed" $OUT/parity.txt | head -20
timeout 150 ./cuda_parity_prefetch > $OUT/parity-prefetch.txt 2>&1; echo "parity prefetch rc=$?"; grep -E "FAIL|passed|seed" $OUT/parity-prefetch.txt | head -20
timeout 150 compute-sanitizer --tool memcheck --print-limit 5 ./cuda_parity --quick > $OUT/memcheck.txt 2>&1; echo "memcheck rc=$?"; grep -E "FAIL|passed|ERROR SUMMARY" $OUT/memcheck.txt | head
for r in 1 2; do for b in kernel_workbench_v11 kernel_workbench kernel_workbench_prefetch; do echo "=== $b run $r" >> $OUT/ab.md; timeout 60 ./$b --m 1,4,8,16 --moe-tokens 1 --no-cublas >> $OUT/ab.md 2>/dev/null; done; done
timeout 120 ./kernel_workbench --json $OUT/workbench.json > $OUT/workbench.md 2> /dev/null; echo "bench rc=$?"
