#!/usr/bin/env bash
# Session 3, run 5: NVFP4 decode on wgmma (M <= 4) added to FP8 and MXFP4. Parity + memcheck;
# decode A/B against the v11 binary, interleaved twice.
cd "$(dirname "$0")" && tar xzf bins.tgz
export LD_LIBRARY_PATH=$PWD/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee $OUT/parity.txt
for r in 1 2; do timeout 150 ./cuda_parity >> $OUT/parity.txt 2>&1; echo "parity rc=$?"; done; grep -E "FAIL|passed|seed" $OUT/parity.txt | head -30
timeout 150 compute-sanitizer --tool memcheck --print-limit 5 ./cuda_parity --quick > $OUT/memcheck.txt 2>&1; echo "memcheck rc=$?"; grep -E "FAIL|passed|ERROR SUMMARY" $OUT/memcheck.txt | head
for r in 1 2; do for b in kernel_workbench_v11 kernel_workbench; do echo "=== $b run $r" >> $OUT/ab.md; timeout 60 ./$b --m 1,4,8 --moe-tokens 1,8 --no-cublas >> $OUT/ab.md 2>/dev/null; done; done
grep -E "===|fp4" $OUT/ab.md | cut -c1-100
