#!/usr/bin/env bash
# Run 5: skinny v8 (burst 4, 1 CTA/SM) and v9 (burst 3, 2 CTAs/SM) against v7 on the decode
# shapes in the same run; ncu of v7 on Pro shared w1+w3 (FP8, M=1).
cd "$(dirname "$0")"
export LD_LIBRARY_PATH=$PWD/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name --format=csv,noheader
for v in . v8 v9; do timeout 90 $v/kernel_workbench --m 1,4,16 --no-cublas > $OUT/variant_$(basename $(realpath $v)).md 2>/dev/null; echo "$v rc=$?"; done
ncu --clock-control none --kernel-name regex:skinny --launch-skip 2 --launch-count 1 --section SpeedOfLight --section Occupancy --section WarpStateStats --section MemoryWorkloadAnalysis --section SchedulerStats ./kernel_workbench --models pro --m 1 --moe-tokens 0 --no-cublas --only "shared w1" > $OUT/ncu.txt 2>&1; echo "ncu rc=$?"
for f in $OUT/variant_*.md; do echo "== $f"; head -1 $f | cut -c1-120; grep -E "wq_b|wo_b|lm_head|shared w1|expert w1" $f | grep -E "\| (1|16) \|" | cut -d'|' -f2-10; grep -A8 "MoE layer" $f | tail -6; done
grep -E "DRAM Throughput|Duration|Warp Cycles Per Issued|Achieved Occupancy|Issued Warp|No Eligible|Active Warps Per" $OUT/ncu.txt | head -12
grep -B2 -A6 "stalled waiting" $OUT/ncu.txt | head -30
