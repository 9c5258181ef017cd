#!/usr/bin/env bash
# Session 2, run 8: the final parity binary (FP8 wgmma outputs allowed 2^-11 sum|x w| for four
# chained k32 wgmmas at ~14-bit accumulation; kernels as in run 7): three full runs, memcheck twice.
cd "$(dirname "$0")" && tar xzf bins.tgz
export LD_LIBRARY_PATH=$PWD/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee $OUT/parity.txt
for r in 1 2 3; do timeout 150 ./cuda_parity >> $OUT/parity.txt 2>&1; echo "parity rc=$?"; done; grep -E "FAIL|passed|seed" $OUT/parity.txt
for r in 1 2; do timeout 150 compute-sanitizer --tool memcheck --print-limit 5 ./cuda_parity --quick >> $OUT/memcheck.txt 2>&1; echo "memcheck rc=$?"; done; grep -E "FAIL|passed|seed|ERROR SUMMARY" $OUT/memcheck.txt
grep -E "fp8-block (256x4096|1024x384).*prefill" $OUT/parity.txt | grep -oE "worst element [0-9.]+" | sort -k3 -n | tail -3
