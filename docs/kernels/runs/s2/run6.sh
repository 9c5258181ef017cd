#!/usr/bin/env bash
# Session 2, run 6: parity + memcheck after folding the MoE epilogue/argument copies (wgmma
# promotion every 64 k); the 128-k promotion variant's parity (twice) and prefill A/B against
# it, interleaved; the final full workbench.
cd "$(dirname "$0")" && tar xzf bins.tgz
export LD_LIBRARY_PATH=$PWD/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv,noheader | tee $OUT/parity.txt
timeout 150 ./cuda_parity >> $OUT/parity.txt 2>&1; echo "parity rc=$?"
for r in 1 2; do echo "=== p128 $r" >> $OUT/parity.txt; timeout 150 ./cuda_parity_p128 >> $OUT/parity.txt 2>&1; echo "parity p128 rc=$?"; done
grep -E "FAIL|passed|seed|===" $OUT/parity.txt | head -20
timeout 150 compute-sanitizer --tool memcheck --print-limit 5 ./cuda_parity --quick > $OUT/memcheck.txt 2>&1; echo "memcheck rc=$?"; grep -E "FAIL|passed" $OUT/memcheck.txt; tail -1 $OUT/memcheck.txt
for r in 1 2; do for b in kernel_workbench kernel_workbench_p128; do echo "=== $b run $r" >> $OUT/ab.md; timeout 60 ./$b --m 256,4096 --moe-tokens 0 --no-cublas >> $OUT/ab.md 2>/dev/null; done; done
timeout 120 ./kernel_workbench --json $OUT/workbench.json > $OUT/workbench.md 2> /dev/null; echo "bench rc=$?"
head -1 $OUT/workbench.md | cut -c1-250
