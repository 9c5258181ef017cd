#!/usr/bin/env bash
# Session 2, run 4: parity + memcheck (decode back to v11; wgmma v4: FP8 and BF16 kernels, 4-bit
# prefill through exact BF16 copies); full workbench; prefill rows of the v11 binary beside it.
cd "$(dirname "$0")" && tar xzf bins.tgz
export LD_LIBRARY_PATH=$PWD/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv,noheader | tee $OUT/parity.txt
timeout 150 ./cuda_parity >> $OUT/parity.txt 2>&1; echo "parity rc=$?"; grep -E "FAIL|passed|seed|error" $OUT/parity.txt | head -20
timeout 150 compute-sanitizer --tool memcheck --print-limit 5 ./cuda_parity --quick > $OUT/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $OUT/memcheck.txt
timeout 120 ./kernel_workbench --json $OUT/workbench.json > $OUT/workbench.md 2> /dev/null; echo "bench rc=$?"
timeout 120 ./kernel_workbench_v11 --m 64,256,4096 --moe-tokens 0 --no-cublas > $OUT/v11-prefill.md 2> /dev/null; echo "v11 rc=$?"
head -1 $OUT/workbench.md | cut -c1-250
grep -E "mxfp4|nvfp4|bf16" $OUT/workbench.md | grep -E "\| (64|256|4096) \|" | cut -d'|' -f2-4,7-8,11-15
