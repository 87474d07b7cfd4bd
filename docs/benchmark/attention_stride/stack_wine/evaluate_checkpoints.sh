#!/bin/bash
# every kept checkpoint (the last ~2,000 updates) of the stride and 64-px place-noise cells on 200 scenes
cd /work/main && source env.sh && export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
O=/work/runs/sw_stride/evalall; mkdir -p $O
ev() { arm evaluate $2 --all --episodes 200 > $O/$1.jsonl 2> $O/$1.err; }
ev stride_s0 /work/runs/sw_stride/cells/stack_wine/arm/seed_0 & ev stride_s1 /work/runs/sw_stride/cells/stack_wine/arm/seed_1; wait
ev px64_s0 /work/runs/sw_noise/cells/stack_wine/arm/seed_0 & ev px64_s1 /work/runs/sw_noise/cells/stack_wine/arm/seed_1; wait
ev px64_s2 /work/runs/sw_noise/cells/stack_wine/arm/seed_2
echo done > $O/DONE
