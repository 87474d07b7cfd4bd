#!/bin/bash
# usage: run.sh SEED  (from a worktree)
S=$1
source env.sh
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
exec arm train --inprocess --task stack_wine --seed $S --demos 100 --minutes 120 --no-collision-checking \
  --demo-dir /work/runs/sw128/demos --place-noise-cm 1.5 \
  --agent-overrides amp=off 'unet_filters=[16,16,16]' actor_channels=64 pose_stem=32 image_size=128 attention_stride=2 \
  --out /work/runs/sw_stride/cells/stack_wine/arm/seed_$S
