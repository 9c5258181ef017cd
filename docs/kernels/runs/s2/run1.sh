#!/usr/bin/env bash
# Session 2, run 1: parity + memcheck of v12 (FP8 route) and wgmma v1; workbench of the new build
# beside the v11 binary (decode M = 1, 4 and MoE) in the same run.
cd "$(dirname "$0")" && tar xzf bins.tgz
export LD_LIBRARY_PATH=$PWD/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv,noheader | tee $OUT/gpu.txt
S=$(date +%s)
timeout 150 ./cuda_parity > $OUT/parity.txt 2>&1; echo "parity rc=$? $(( $(date +%s) - S ))s"; grep -E "FAIL|passed|seed|error" $OUT/parity.txt | head -30
S=$(date +%s)
timeout 150 compute-sanitizer --tool memcheck --print-limit 5 ./cuda_parity --quick > $OUT/memcheck.txt 2>&1; echo "memcheck rc=$? $(( $(date +%s) - S ))s"; tail -3 $OUT/memcheck.txt
S=$(date +%s)
timeout 100 ./kernel_workbench_v11 --m 1,4,4096 --moe-tokens 1,8 --no-cublas > $OUT/v11.md 2>/dev/null; echo "v11 rc=$? $(( $(date +%s) - S ))s"
S=$(date +%s)
timeout 200 ./kernel_workbench --json $OUT/workbench.json > $OUT/workbench.md 2> $OUT/workbench.err; echo "bench rc=$? $(( $(date +%s) - S ))s"; tail -2 $OUT/workbench.err
head -1 $OUT/workbench.md | cut -c1-300
for f in $OUT/v11.md $OUT/workbench.md; do echo "== $f"; grep -E "w1\+w3|w2|wq_b|wo_b" $f | grep -E "\| (1|4|4096) \|" | cut -d'|' -f2-12; grep -A8 "MoE layer" $f | tail -7; done
