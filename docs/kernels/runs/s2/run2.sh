#!/usr/bin/env bash
# Session 2, run 2: parity + memcheck of skinny v13 (route: plain B loads, first burst before
# staging) and wgmma v2 (persistent, 64-k promotion); decode A/B against the v11 binary,
# interleaved twice; full workbench; SASS of the route kernels; ncu of route vs v11.
cd "$(dirname "$0")" && tar xzf bins.tgz
export LD_LIBRARY_PATH=$PWD/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv,noheader | tee $OUT/parity.txt
timeout 150 ./cuda_parity >> $OUT/parity.txt 2>&1; echo "parity rc=$?"; grep -E "FAIL|passed|seed|error" $OUT/parity.txt | head -20
timeout 150 compute-sanitizer --tool memcheck --print-limit 5 ./cuda_parity --quick > $OUT/memcheck.txt 2>&1; echo "memcheck rc=$?"; tail -2 $OUT/memcheck.txt
for r in 1 2; do for b in kernel_workbench_v11 kernel_workbench; do echo "=== $b run $r" >> $OUT/ab.md; timeout 60 ./$b --m 1,4 --moe-tokens 1,8 --no-cublas >> $OUT/ab.md 2>/dev/null; done; done
timeout 120 ./kernel_workbench --json $OUT/workbench.json > $OUT/workbench.md 2> /dev/null; echo "bench rc=$?"
head -1 $OUT/workbench.md | cut -c1-250
/usr/local/cuda/bin/cuobjdump -sass -fun '_ZN8fp4serve4cuda6skinny18skinny_gemm_kernelILNS0_10WeightKindE3ELb0ELi0ELNS1_4ModeE0EEEvNS1_6ParamsE' ./kernel_workbench 2>&1 | gzip > $OUT/sass_route_nvfp4.txt.gz
for b in kernel_workbench_v11 kernel_workbench; do echo "=== $b" >> $OUT/ncu.txt; timeout 90 ncu --clock-control none --kernel-name regex:skinny --launch-skip 3 --launch-count 1 --section SpeedOfLight --section Occupancy --section WarpStateStats --section SchedulerStats --section LaunchStats ./$b --models pro --m 1 --moe-tokens 0 --no-cublas --only "expert w1" >> $OUT/ncu.txt 2>&1; echo "ncu $b rc=$?"; done
grep -E "===|Duration|DRAM Throughput|Issue Slots Busy|No Eligible|Warp Cycles Per Issued|Registers Per|Function Name|skinny_gemm" $OUT/ncu.txt | head -40
