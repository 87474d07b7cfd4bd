# One-command workspace. `make test` from a fresh clone installs what it needs and runs the suite;
# every step is idempotent (stamp files), so running it again skips what is done.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PKGS := $(wildcard src/*/package.xml)
PKG_SRC := $(shell find src -name '*.py' -o -name 'package.xml' -o -name 'setup.cfg' -o -name '*.xml' -o -name '*.yaml' 2>/dev/null)

.PHONY: setup test demos sim-train bench clean

setup: $(VENV)/.deps-stamp install/.build-stamp

# Headless OpenGL (EGL + OSMesa from Mesa) for MuJoCo rendering, only if missing.
$(VENV)/.gl-stamp:
	@if ! ldconfig -p | grep -q libEGL.so.1 || ! ldconfig -p | grep -q libOSMesa.so; then \
		echo "[setup] installing headless OpenGL (Debian: libegl1 libosmesa6 libgl1)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq libegl1 libosmesa6 libgl1 >/dev/null; \
	fi
	@mkdir -p $(VENV) && touch $@

$(VENV)/.deps-stamp: requirements.txt $(VENV)/.gl-stamp
	@[ -x $(PY) ] || python3.11 -m venv $(VENV) || python3 -m venv $(VENV)
	@echo "[setup] installing pinned Python dependencies into $(VENV)"
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@touch $@

install/.build-stamp: $(VENV)/.deps-stamp $(PKG_SRC)
	@echo "[setup] colcon build"
	source $(VENV)/bin/activate && colcon build --symlink-install --event-handlers console_cohesion- >/dev/null && touch $@

# Two workers, one per core; a file's tests stay on one worker (they share its ROS domain and
# its module fixtures). TEST_JOBS=0 runs them one after another in one process.
TEST_JOBS ?= 2
test: setup
	source env.sh && python -m pytest -q -n $(TEST_JOBS) --dist loadfile --durations=12 src test

# The main job: the whole learning loop over ROS 2 (arm launch sim_train) with the defaults of
# src/arm_bringup/config/sim_train.yaml (pick_up_cup, the cpu agent preset at 64x64, 100 demos, a
# 30-minute budget that includes the demos and the final evaluation); TASK= and MINUTES= override
# them. A fresh run folder each time; resume one with `make sim-train RUN=runs/sim_train-...`.
RUN ?= runs/sim_train-$(shell date +%Y%m%d-%H%M%S)
sim-train: setup
	source env.sh && arm launch sim_train $(if $(TASK),task:=$(TASK)) $(if $(MINUTES),minutes:=$(MINUTES)) run_dir:=$(RUN)

# Record scripted demonstrations as rosbag2 (MCAP) files.
demos: setup
	source env.sh && arm demos --task reach_target --episodes 10 --seed 0 --out runs/demos-$$(date +%Y%m%d-%H%M%S)

bench: setup
	source env.sh && python bench/bench_sim.py

clean:
	rm -rf build install log
