set -e
source env.sh
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
[ -d runs/sw_s1/demos/stack_wine ] || arm demos --task stack_wine --episodes 100 --seed 0 --image-size 64 --out runs/sw_s1/demos
arm train --inprocess --task stack_wine --seed 1 --demos 100 --minutes 100 --demo-dir runs/sw_s1/demos \
  --out runs/sw_s1/cells/stack_wine/arm/seed_1 --keep-checkpoints 30 --no-collision-checking \
  --agent-overrides amp=off 'unet_filters=[16,16,16]' actor_channels=64 pose_stem=32
