#!/bin/bash
# usage: evaluate_checkpoints.sh SEED : seed S's kept checkpoints (--all) on 200 scenes, then its archived
# step 7,000 (the updates seeds 0 / 1 ended at, ~96 min here) on the same 200 scenes
S=$1
cd "$(dirname "$0")" && cd "$(git rev-parse --show-toplevel)" && source env.sh && export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
R=/work/runs/sw_stride/cells/stack_wine/arm/seed_$S
O=/work/runs/sw_stride/eval200; mkdir -p $O
arm evaluate $R --all --episodes 200 > $O/kept_s$S.jsonl 2> $O/kept_s$S.err
A=/work/runs/sw_stride/at7000/seed_$S; mkdir -p $A/checkpoints
cp $R/config.json $A/ && cp /work/runs/sw_stride/archive/seed_$S/step_000007000.pt $A/checkpoints/
arm evaluate $A --episodes 200 > $O/at7000_s$S.jsonl 2> $O/at7000_s$S.err
echo done > $O/s$S.done
