#!/usr/bin/env bash
# Session 2, run 12: the final parity binary (FP8-wgmma allowance 2^-10 sum|x w|; kernels as in
# run 11): four full runs with fresh seeds, memcheck once; the largest worst-element ratios.
cd "$(dirname "$0")" && tar xzf bins.tgz
export LD_LIBRARY_PATH=$PWD/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee $OUT/parity.txt
for r in 1 2 3 4; do timeout 150 ./cuda_parity >> $OUT/parity.txt 2>&1; echo "parity rc=$?"; done; grep -E "FAIL|passed|seed" $OUT/parity.txt
timeout 200 compute-sanitizer --tool memcheck --print-limit 5 ./cuda_parity --quick > $OUT/memcheck.txt 2>&1; echo "memcheck rc=$?"; grep -E "FAIL|passed|ERROR SUMMARY" $OUT/memcheck.txt
grep -E "^PASS|^FAIL" $OUT/parity.txt | grep -oE "worst element [0-9.]+" | sort -k3 -n | tail -3
