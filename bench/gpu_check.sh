#!/usr/bin/env bash
# Issue 13's GPU checks in one call, for a session lent a GPU machine (device tool, `run` with
# timeout_s 540; 15 minutes of device time per session, so one short prepared call):
#
#     bash bench/gpu_check.sh          # results under $OUT (or /tmp/gpu_check)
#
# That machine's python3 has CUDA torch, numpy, opencv and pytest, and none of ROS, mujoco or
# rosbags: the learner runs from the source folders, which import none of them. Checked on this
# CPU machine in a venv with only torch, numpy, opencv and pytest (the CUDA lines then say so).
# It writes device.txt, pytest.log (the CUDA tests), bench_learning_cuda.jsonl (updates/s of both
# presets at batch 128 and 32 against fp32 on the same GPU) and latency_cuda.jsonl.
set -o pipefail
cd "$(dirname "$0")/.."
out=${OUT:-/tmp/gpu_check}
mkdir -p "$out"
export PYTHONPATH=src/arm_policy:src/arm_control:src/arm_perception PYTHONUNBUFFERED=1

python3 - <<'EOF' 2>&1 | tee "$out/device.txt"
import torch
cuda = torch.cuda.is_available()
print("torch", torch.__version__, "cuda", cuda, torch.cuda.get_device_name(0) if cuda else "(no GPU: the checks below will say so)")
EOF
timeout 120 python3 -m pytest -q -p no:cacheprovider -k cuda \
    src/arm_policy/test/test_agent.py src/arm_policy/test/test_compute_options.py 2>&1 | tee "$out/pytest.log" | tail -3
timeout 330 python3 bench/bench_learning.py --only updates --device cuda --presets paper,cpu \
    --batches 128,32 --seconds 15 --loss-updates 20 2>&1 | tee "$out/bench_learning_cuda.jsonl"
timeout 60 python3 bench/bench_learning.py --only latency --device cuda 2>&1 | tee "$out/latency_cuda.jsonl"
