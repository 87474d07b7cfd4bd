"""`arm train --distributed` on a local Ray: QT-Opt's actors on this machine, bound to localhost
with token authentication, surviving the death of a collector, a Bellman updater and the learner,
and leaving no Ray process behind. Tiny images and a run of a minute or so."""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

from arm_distributed.cluster import ray_processes, ray_session
from arm_distributed.settings import DistributedSettings
from arm_policy.settings import TrainSettings

SMALL = {"image_size": 32, "batch_size": 8, "conv_channels": [8, 8], "embed_hidden": 16,
         "head_channels": 8, "head_hidden": 16, "cem_samples": 16, "cem_elites": 4}


def settings(out, minutes, **changes):
    return TrainSettings(**{"task": "grasp_bin", "method": "qtopt", "demos": 4, "minutes": minutes,
                            "out": str(out), "eval_every": 10_000, "eval_episodes": 2, "checkpoint_every": 10,
                            "agent_overrides": SMALL, **changes})


def arm_ray_processes() -> set[int]:
    return set(ray_processes("/tmp/arm-ray-"))


def listening(pids: set[int]) -> list[str]:
    """Local addresses the processes ``pids`` listen on (TCP)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    return [line.split()[3] for line in out.splitlines()
            if {int(p) for p in re.findall(r"pid=(\d+)", line)} & pids]


def test_a_local_ray_listens_on_localhost_only_and_refuses_a_wrong_token(capfd):
    import urllib.error
    import urllib.request

    with ray_session(DistributedSettings(collectors=0, bellman_updaters=0, dashboard=True, worker_niceness=7),
                     log=lambda _: None) as session:
        import ray

        assert ray.get(ray.remote(lambda: os.nice(0)).remote()) == 7  # the workers' priority is ours to set

        assert session.dashboard_url.startswith("http://127.0.0.1:")
        with pytest.raises(urllib.error.HTTPError) as refused:  # no token, no dashboard
            urllib.request.urlopen(session.dashboard_url + "/api/version", timeout=30)
        assert refused.value.code == 401

        addresses = listening(set(ray_processes(session.temp_dir)) | {os.getpid()})
        assert addresses, "no Ray server found listening"
        assert all(a.rsplit(":", 1)[0] in ("127.0.0.1", "[::ffff:127.0.0.1]", "[::1]") for a in addresses), addresses
        gcs = ray.get_runtime_context().gcs_address
        join = [sys.executable, "-c", f"import ray; ray.init(address='{gcs}'); print('joined')"]
        wrong = subprocess.run(join, env=dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN="not-the-token"),
                               capture_output=True, text=True, timeout=120)
        assert wrong.returncode != 0 and "joined" not in wrong.stdout
        right = subprocess.run(join, capture_output=True, text=True, timeout=120)
        assert right.returncode == 0 and "joined" in right.stdout, right.stderr[-2000:]
    assert not ray_processes(session.temp_dir)
    assert "Token authentication is enabled" not in capfd.readouterr().err  # asked for, not a default to warn of


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory):
    """A 100 s run (2 collectors, 1 Bellman updater) in which a collector, then the updater, then
    the learner are killed with SIGKILL, as a crash would."""
    run = tmp_path_factory.mktemp("qt_ray")
    lines, killed, errors = [], {}, []

    def kill(name):
        import ray  # the run's driver has initialised it by now

        actor = ray.get_actor(name)
        pid = ray.get(actor.pid.remote())
        os.kill(pid, signal.SIGKILL)
        killed[name] = (pid, time.monotonic())

    def wait_for(test, seconds=90):
        deadline = time.monotonic() + seconds
        while not test():
            if time.monotonic() > deadline:
                raise TimeoutError
            time.sleep(0.2)

    def killer():
        try:
            online = run / "replay" / "online"
            wait_for(lambda: online.exists() and len(list(online.glob("episode_*"))) >= 2)
            kill("collector-0")
            time.sleep(4)
            kill("bellman-updater-0")
            time.sleep(4)
            wait_for(lambda: len(list((run / "checkpoints").glob("*.pt"))) >= 1)
            kill("learner")
        except Exception as err:  # reported by the tests, not lost in a thread
            errors.append(repr(err))

    from arm_distributed.train import train_distributed

    before = arm_ray_processes()
    threading.Thread(target=killer, daemon=True).start()  # it waits for the run's first online episodes
    # weights after every update: the learner's kill then lands while the driver's newest weights
    # request is still queued at it, the case where a failed label once blamed the updater forever
    summary = train_distributed(settings(run, 1.7), DistributedSettings(collectors=2, bellman_updaters=1,
                                                                        weights_every=1), log=lines.append)
    return {"run": run, "summary": summary, "log": lines, "killed": killed, "errors": errors,
            "left": arm_ray_processes() - before}


def test_the_run_ends_with_a_checkpoint_and_the_in_process_summary(faulty_run):
    s, run = faulty_run["summary"], faulty_run["run"]
    assert not faulty_run["errors"], faulty_run["errors"]
    on_disk = json.loads((run / "summary.json").read_text())
    for key in ("untrained_success", "eval_success", "best_success", "eval_success_last_mean",
                "scripted_success", "env_steps", "episodes", "updates", "wall_seconds"):
        assert key in on_disk and on_disk[key] == s[key]
    assert s["distributed"] and s["collectors"] == 2 and s["bellman_updaters"] == 1
    assert s["env_steps"] > 0 and s["updates"] > 0
    assert (run / "checkpoints" / f"step_{s['updates']:09d}.pt").exists()
    assert (run / "learning_curve.png").exists() and (run / "config.json").exists()
    assert len(list((run / "demos").glob("grasp_bin*/episode_*"))) == 4  # the scripted grasps, as bags
    assert s["startup_seconds"] is not None and s["startup_seconds"] > 0
    from arm_policy.run_log import read_metrics

    # the learner's own log counts the driver's env steps (it has no replay that would)
    assert max(row.get("env_steps", 0) for row in read_metrics(run / "training" / "metrics.csv")) > 0


def test_a_killed_collector_is_restarted_and_loses_at_most_its_episode(faulty_run):
    s, run = faulty_run["summary"], faulty_run["run"]
    assert "collector-0" in faulty_run["killed"]
    assert s["restarts"]["collector"] >= 1  # Ray's count: killed while idle (held back by the rate
    # limit), it is restarted without any call of ours failing, and nothing is logged
    names = sorted(int(p.name.split("_")[1]) for p in (run / "replay" / "online").glob("episode_*"))
    gaps = {f"episode_{k:06d}" for k in set(range(names[-1] + 1)) - set(names)}
    assert gaps <= set(s["lost_episodes"])  # every gap is an episode the run said it lost
    causes = list(s["lost_episodes"].values())
    # nothing but the episodes in flight: one per collector death, one per collector per learner death
    assert causes.count("collector") <= s["restarts"]["collector"]
    assert causes.count("learner") <= s["collectors"] * s["restarts"]["learner"]
    assert set(causes) <= {"collector", "learner"}
    assert len(names) >= s["episodes"] - 2  # every counted episode was persisted (2 may end after the summary)
    assert max(names) > 2, "collection went on after the kill"


def test_a_killed_bellman_updater_is_restarted_and_every_update_had_its_target(faulty_run):
    s = faulty_run["summary"]
    assert "bellman-updater-0" in faulty_run["killed"]
    assert s["restarts"]["bellman_updater"] >= 1
    # the learner refuses a batch without targets, so every update consumed one labelled batch
    assert s["bellman_targets"] == s["updates_this_run"] * SMALL["batch_size"]


def test_a_killed_learner_resumes_from_its_newest_checkpoint(faulty_run):
    s = faulty_run["summary"]
    assert "learner" in faulty_run["killed"]
    assert s["restarts"]["learner"] >= 1
    resumed = [line for line in faulty_run["log"] if "the learner died" in line]
    assert resumed and re.search(r"update (\d+)", resumed[0])
    at = int(re.search(r"update (\d+)", resumed[0]).group(1))
    assert at > 0 and s["updates"] > at


def test_no_ray_process_outlives_the_run(faulty_run):
    assert faulty_run["left"] == set()


def test_the_same_command_on_its_folder_resumes_the_run_from_checkpoint_and_bags(faulty_run):
    from arm_distributed.train import train_distributed

    run, first = faulty_run["run"], faulty_run["summary"]
    online = run / "replay" / "online"
    before = {p.name for p in online.glob("episode_*")}
    lines = []
    # the budget counts the time already spent (1.7 min and the end's evaluation): about a minute more
    again = train_distributed(settings(run, 2.8), DistributedSettings(collectors=1, bellman_updaters=0),
                              log=lines.append)
    assert any(line.startswith("resuming") for line in lines)
    assert again["updates"] > first["updates"] and again["env_steps"] > first["env_steps"]
    new = {p.name for p in online.glob("episode_*")} - before
    assert new and min(new) > max(before)  # numbered on after the last bag, none overwritten
    assert again["evaluations"] > first["evaluations"], lines[-15:]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_ctrl_c_or_kill_stops_the_run_with_a_checkpoint_and_every_ray_process(tmp_path, ctrl_c, signum):
    before = arm_ray_processes()
    cmd = [sys.executable, "-m", "arm_bringup.cli", "train", "--distributed", "--algo", "qtopt", "--task", "grasp_bin",
           "--demos", "3", "--minutes", "10", "--eval-every", "10000", "--eval-episodes", "1",
           "--checkpoint-every", "1000", "--collectors", "1", "--bellman-updaters", "0", "--out", str(tmp_path),
           "--agent-overrides", *[f"{k}={json.dumps(v)}" for k, v in SMALL.items()]]
    # after the untrained evaluation: collectors and learner are up
    code, output = ctrl_c(cmd, after="held-out success", wait=3, timeout=180, signum=signum)
    assert code == 130, output[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert list((tmp_path / "checkpoints").glob("*.pt")), output[-3000:]
    time.sleep(1)
    assert arm_ray_processes() - before == set()


TINY_ARM = {"image_size": 16, "crop_size": 8, "batch_size": 8, "unet_stem": 4, "unet_stem_kernel": 3,
            "unet_filters": [8, 8], "unet_kernel": 3, "pose_stem": 4, "actor_channels": 8, "actor_hidden": 16,
            "critic_channels": 8, "critic_layers": 2, "replay_capacity": 256}


def test_arm_trains_on_ray_from_its_demos_and_its_collectors_episodes(tmp_path):
    """ARM on Ray: the demos and the collector's episodes in one prioritised replay, a Bellman
    updater's targets for every update, the learner's priorities back to the replay, and the
    episodes persisted as the bags the ROS graph records (read back to what was trained on)."""
    from arm_distributed.train import train_distributed
    from arm_policy.episode_dataset import read_agent_episode

    before = arm_ray_processes()
    lines = []
    s = train_distributed(
        TrainSettings(task="reach_target", method="arm", demos=3, episode_length=3, minutes=1.3, out=str(tmp_path),
                      eval_every=6, eval_episodes=2, checkpoint_every=10, agent_overrides=TINY_ARM),
        DistributedSettings(collectors=1, bellman_updaters=1), log=lines.append)
    assert arm_ray_processes() - before == set()
    assert s["method"] == "arm" and s["distributed"] and "scripted_success" not in s
    assert s["updates_this_run"] > 0 and s["env_steps"] > 0 and s["evaluations"] >= 2
    assert s["bellman_targets"] == s["updates_this_run"] * TINY_ARM["batch_size"]
    assert s["priority_updates"] == s["updates_this_run"] * TINY_ARM["batch_size"]
    assert (tmp_path / "checkpoints" / f"step_{s['updates']:09d}.pt").exists()
    assert list((tmp_path / "attention").glob("env_step_*.png")) and (tmp_path / "learning_curve.png").exists()
    assert len(list((tmp_path / "demos" / "reach_target").glob("seed_*"))) == 3
    bags = sorted((tmp_path / "replay" / "online").glob("episode_*"))
    assert len(bags) >= s["episodes"]
    assert sum(len(read_agent_episode(b)) for b in bags) >= s["env_steps"]


def test_a_distributed_run_refuses_what_only_trains_in_process():
    from arm_distributed.train import check_distributed

    dist = DistributedSettings()
    with pytest.raises(ValueError, match="demos only"):
        check_distributed(TrainSettings(task="pick_up_cup", method="bc", out="x"), dist)
    with pytest.raises(ValueError, match="offline-only"):
        check_distributed(TrainSettings(task="pick_up_cup", method="arm", offline_only=True, out="x"), dist)
    with pytest.raises(ValueError, match="arm evaluate RUN --episodes N"):
        check_distributed(TrainSettings(task="pick_up_cup", method="arm", final_eval_episodes=200, out="x"), dist)
    check_distributed(TrainSettings(task="pick_up_cup", method="arm", out="x"), dist)


def test_collectors_grasp_in_the_runs_tray():
    from arm_distributed.algorithms import algorithm
    from arm_policy.agents.qtopt import QTOptConfig

    cfg = QTOptConfig(image_size=32, conv_channels=(8, 8)).to_dict()
    for tray, objects in (("one_box", 1), ("full", None)):
        env = algorithm("qtopt", cfg, {"task": "grasp_bin", "tray": tray}).env()
        assert env.tray_objects == objects and env.image_size == (32, 32)
