"""The eight ARM tasks, rebuilt in MuJoCo with RLBench's names and success conditions.

A task is: the MJCF of its objects, a seeded random placement, a success detector read from the
simulator, and a scripted expert (a list of gripper waypoints that the same motion planner as the
learner executes). Static props are mocap bodies so a reset can move them; things the robot
moves are free bodies. Sizes are in metres; the table top is at sim.TABLE_HEIGHT.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arm_control.transforms import top_down_quat

from .sim import TABLE_HEIGHT, PandaSim

T = TABLE_HEIGHT
WORKSPACE_X = (0.35, 0.60)  # reachable top-down by the Panda with room to spare
WORKSPACE_Y = (-0.25, 0.25)
RED, GREEN, BLUE = "0.85 0.1 0.1 1", "0.1 0.7 0.2 1", "0.15 0.3 0.85 1"
YELLOW, GREY, WHITE = "0.9 0.8 0.1 1", "0.45 0.45 0.48 1", "0.9 0.9 0.88 1"
#: Where an expert's grasp or release height has room on both sides (bench/keyframe_tolerance.py).
#: A demo at the edge of what works teaches an agent whose poses drift by a centimetre to fail in
#: every scene at once: a demo grasp on pick_up_cup left 8 mm between palm and rim, and a learned
#: checkpoint grasping 1.3-2.9 cm below it collided in 16 of 25 scenes (docs/results/arm.md).
GRASP_MARGIN = 0.012


@dataclass
class Waypoint:
    """Where the tool centre point goes (xyz + quaternion xyzw), then the gripper's open amount."""

    pose: np.ndarray
    gripper: float


def _free(name, geoms, mass_note=""):
    return f'<body name="{name}"><freejoint name="{name}_joint"/>{geoms}</body>'


def _mocap(name, geoms):
    return f'<body name="{name}" mocap="true">{geoms}</body>'


def _box(size, rgba, pos="0 0 0", extra=""):
    return f'<geom class="world" type="box" size="{size}" pos="{pos}" rgba="{rgba}" {extra}/>'


def _cyl(r, h, rgba, pos="0 0 0", extra=""):
    return f'<geom class="world" type="cylinder" size="{r} {h}" pos="{pos}" rgba="{rgba}" {extra}/>'


def _marker(r, rgba):
    """Visual-only sphere (no collisions): targets and success regions."""
    return f'<geom type="sphere" size="{r}" rgba="{rgba}" contype="0" conaffinity="0"/>'


def sample_positions(rng, n, min_dist, x=WORKSPACE_X, y=WORKSPACE_Y, avoid=(), tries=1000):
    """n table positions (x, y) at least min_dist apart and from `avoid`: seeded rejection sampling."""
    out = []
    for _ in range(tries):
        p = np.array([rng.uniform(*x), rng.uniform(*y)])
        if all(np.linalg.norm(p - q) >= min_dist for q in [*out, *avoid]):
            out.append(p)
            if len(out) == n:
                return out
    raise RuntimeError(f"could not place {n} objects {min_dist} m apart")


def _yaw_quat_wxyz(yaw):
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


class Task:
    name = ""
    description = ""
    graspable: tuple[str, ...] = ()

    def bodies(self) -> str:
        raise NotImplementedError

    def randomise(self, sim: PandaSim, rng: np.random.Generator):
        raise NotImplementedError

    def success(self, sim: PandaSim) -> bool:
        raise NotImplementedError

    def expert(self, sim: PandaSim) -> list[Waypoint]:
        raise NotImplementedError

    # helpers shared by the experts
    @staticmethod
    def pose(xyz, yaw=0.0):
        return np.concatenate([np.asarray(xyz, dtype=float), top_down_quat(yaw)])

    def pick(self, xyz, yaw=0.0, approach=0.12, lift=0.15):
        """Above, down with the gripper open, close, lift: RLBench's pick waypoints."""
        x, y, z = xyz
        return [Waypoint(self.pose([x, y, z + approach], yaw), 1.0),
                Waypoint(self.pose([x, y, z], yaw), 0.0),
                Waypoint(self.pose([x, y, z + lift], yaw), 0.0)]

    def place(self, xyz, yaw=0.0, approach=0.12):
        x, y, z = xyz
        return [Waypoint(self.pose([x, y, z + approach], yaw), 0.0),
                Waypoint(self.pose([x, y, z], yaw), 1.0),
                Waypoint(self.pose([x, y, z + approach], yaw), 1.0)]


def _held(sim: PandaSim, body: str) -> bool:
    return sim.attached == body


class ReachTarget(Task):
    name = "reach_target"
    description = "reach the red target"

    def bodies(self):
        return (_mocap("target", _marker(0.025, RED)) + _mocap("distractor0", _marker(0.025, GREEN))
                + _mocap("distractor1", _marker(0.025, BLUE)))

    def randomise(self, sim, rng):
        for name, xy in zip(("target", "distractor0", "distractor1"), sample_positions(rng, 3, 0.12)):
            sim.data.mocap_pos[sim.model.body(name).mocapid[0]] = [*xy, T + rng.uniform(0.08, 0.30)]

    def success(self, sim):
        return np.linalg.norm(sim.tcp_pose()[:3] - sim.body_pos("target")) < 0.05

    def expert(self, sim):
        return [Waypoint(self.pose(sim.body_pos("target")), 1.0)]


class PickUpCup(Task):
    name = "pick_up_cup"
    description = "pick up the red cup"
    graspable = ("cup",)
    R, H = 0.028, 0.045  # radius, half height

    def bodies(self):
        cup = lambda c: _cyl(self.R, self.H, c, extra='mass="0.1"') + _cyl(self.R * 0.8, 0.001, "0.1 0.1 0.1 1", f"0 0 {self.H}")
        return _free("cup", cup(RED)) + _free("cup_distractor0", cup(GREEN)) + _free("cup_distractor1", cup(BLUE))

    def randomise(self, sim, rng):
        for name, xy in zip(("cup", "cup_distractor0", "cup_distractor1"), sample_positions(rng, 3, 0.13)):
            sim.set_body_pose(name, [*xy, T + self.H])

    def success(self, sim):
        return _held(sim, "cup") and sim.body_pos("cup")[2] > T + self.H + 0.08

    def expert(self, sim):
        return self.pick(sim.body_pos("cup") + [0, 0, 0.01 + GRASP_MARGIN], lift=0.2)


class TakeUmbrellaOutOfUmbrellaStand(Task):
    name = "take_umbrella_out_of_umbrella_stand"
    description = "take the umbrella out of the umbrella stand"
    graspable = ("umbrella",)
    STAND_H = 0.08  # half height of the stand's walls
    SHAFT_H = 0.11

    def bodies(self):
        h, w, t = self.STAND_H, 0.045, 0.006
        stand = (_box(f"{w} {w} 0.005", GREY, "0 0 0.005")
                 + _box(f"{t} {w} {h}", GREY, f"{w} 0 {h}") + _box(f"{t} {w} {h}", GREY, f"{-w} 0 {h}")
                 + _box(f"{w} {t} {h}", GREY, f"0 {w} {h}") + _box(f"{w} {t} {h}", GREY, f"0 {-w} {h}"))
        s = self.SHAFT_H
        umbrella = (f'<geom class="world" type="capsule" size="0.012 {s}" pos="0 0 {s + 0.012}" rgba="{BLUE}" mass="0.15"/>'
                    f'<geom class="world" type="cylinder" size="0.03 0.03" pos="0 0 0.09" rgba="{BLUE}" mass="0.05"/>'
                    f'<geom class="world" type="box" size="0.012 0.012 0.025" pos="0 0 {2 * s + 0.03}" rgba="0.2 0.2 0.2 1" mass="0.02"/>')
        return _mocap("umbrella_stand", stand) + _free("umbrella", umbrella)

    def randomise(self, sim, rng):
        (xy,) = sample_positions(rng, 1, 0.0, x=(0.4, 0.55), y=(-0.2, 0.2))
        sim.data.mocap_pos[sim.model.body("umbrella_stand").mocapid[0]] = [*xy, T]
        sim.set_body_pose("umbrella", [*xy, T + 0.011])

    def success(self, sim):
        return sim.body_pos("umbrella")[2] > T + 2 * self.STAND_H + 0.02

    def expert(self, sim):
        handle = sim.body_pos("umbrella") + [0, 0, 2 * self.SHAFT_H + 0.035]
        return self.pick(handle, approach=0.1, lift=0.22)


class TakeLidOffSaucepan(Task):
    name = "take_lid_off_saucepan"
    description = "take the lid off the saucepan"
    graspable = ("saucepan_lid",)
    PAN_R, PAN_H = 0.08, 0.04

    def bodies(self):
        pan = (_cyl(self.PAN_R, self.PAN_H, GREY, f"0 0 {self.PAN_H}")
               + _box("0.07 0.012 0.008", "0.15 0.15 0.15 1", f"{self.PAN_R + 0.065} 0 {2 * self.PAN_H - 0.01}"))
        lid = (_cyl(self.PAN_R + 0.004, 0.005, "0.6 0.6 0.65 1", "0 0 0.005", 'mass="0.2"')
               + _cyl(0.012, 0.018, "0.1 0.1 0.1 1", "0 0 0.028", 'mass="0.02"'))
        return _mocap("saucepan", pan) + _free("saucepan_lid", lid)

    def randomise(self, sim, rng):
        (xy,) = sample_positions(rng, 1, 0.0, x=(0.4, 0.55), y=(-0.2, 0.2))
        yaw = rng.uniform(-np.pi, np.pi)
        body = sim.model.body("saucepan").mocapid[0]
        sim.data.mocap_pos[body] = [*xy, T]
        sim.data.mocap_quat[body] = _yaw_quat_wxyz(yaw)
        sim.set_body_pose("saucepan_lid", [*xy, T + 2 * self.PAN_H + 0.0005])

    def success(self, sim):
        return sim.body_pos("saucepan_lid")[2] > T + 2 * self.PAN_H + 0.05

    def expert(self, sim):
        knob = sim.body_pos("saucepan_lid") + [0, 0, 0.032]
        return self.pick(knob, approach=0.1, lift=0.2)


class PickAndLift(Task):
    name = "pick_and_lift"
    description = "pick up the red block and lift it up to the target"
    graspable = ("block",)
    S = 0.02

    def bodies(self):
        block = lambda c: _box(f"{self.S} {self.S} {self.S}", c, extra='mass="0.05"')
        return (_free("block", block(RED)) + _free("block_distractor0", block(GREEN))
                + _free("block_distractor1", block(BLUE)) + _mocap("success_region", _marker(0.04, "0.9 0.9 0.1 0.25")))

    def randomise(self, sim, rng):
        xys = sample_positions(rng, 3, 0.12)
        for name, xy in zip(("block", "block_distractor0", "block_distractor1"), xys):
            sim.set_body_pose(name, [*xy, T + self.S], _yaw_quat_wxyz(rng.uniform(-0.6, 0.6)))
        (goal,) = sample_positions(rng, 1, 0.0)
        sim.data.mocap_pos[sim.model.body("success_region").mocapid[0]] = [*goal, T + rng.uniform(0.15, 0.3)]

    def success(self, sim):
        return _held(sim, "block") and np.linalg.norm(sim.body_pos("block") - sim.body_pos("success_region")) < 0.05

    def expert(self, sim):
        yaw = _yaw_of(sim.body_mat("block"), symmetry=np.pi / 2)
        goal = sim.body_pos("success_region")
        return self.pick(sim.body_pos("block"), yaw) + [Waypoint(self.pose(goal, yaw), 0.0)]


class PhoneOnBase(Task):
    name = "phone_on_base"
    description = "put the phone on the base"
    graspable = ("phone",)
    PHONE = (0.07, 0.028, 0.01)  # half sizes: long, across the fingers, thickness

    def bodies(self):
        lx, ly, lz = self.PHONE
        phone = _box(f"{lx} {ly} {lz}", "0.1 0.1 0.12 1", extra='mass="0.1"') + _box(
            f"{lx - 0.006} {ly - 0.004} 0.0005", "0.2 0.4 0.8 1", f"0 0 {lz}")
        base = _box("0.085 0.045 0.008", "0.8 0.8 0.8 1", "0 0 0.008") + _box("0.085 0.006 0.015", "0.8 0.8 0.8 1", "0 0.051 0.015")
        return _free("phone", phone) + _mocap("phone_base", base)

    def randomise(self, sim, rng):
        phone_xy, base_xy = sample_positions(rng, 2, 0.22)
        sim.set_body_pose("phone", [*phone_xy, T + self.PHONE[2]], _yaw_quat_wxyz(rng.uniform(-0.5, 0.5)))
        sim.data.mocap_pos[sim.model.body("phone_base").mocapid[0]] = [*base_xy, T]

    def success(self, sim):
        rel = sim.body_pos("phone") - sim.body_pos("phone_base")
        on_top = abs(rel[0]) < 0.04 and abs(rel[1]) < 0.035 and 0.0 < rel[2] - 0.016 < 0.02
        return on_top and sim.attached is None

    def expert(self, sim):
        yaw = _yaw_of(sim.body_mat("phone"), symmetry=np.pi)
        grasp = sim.body_pos("phone") + [0, 0, 0.004]
        base = sim.body_pos("phone_base") + [0, 0, 0.016 + self.PHONE[2] + 0.012 + GRASP_MARGIN]
        return self.pick(grasp, yaw, lift=0.12) + self.place(base, 0.0, approach=0.1)


class StackWine(Task):
    name = "stack_wine"
    description = "stack the wine bottle in the rack"
    graspable = ("wine_bottle",)
    R, H = 0.026, 0.075  # bottle body radius, half height

    def bodies(self):
        bottle = (_cyl(self.R, self.H, "0.1 0.35 0.15 1", f"0 0 {self.H}", 'mass="0.2"')
                  + _cyl(0.011, 0.035, "0.1 0.35 0.15 1", f"0 0 {2 * self.H + 0.03}", 'mass="0.02"'))
        post = lambda x, y: _cyl(0.008, 0.03, "0.5 0.3 0.15 1", f"{x} {y} 0.045")
        d = 0.045
        rack = _box("0.07 0.07 0.015", "0.55 0.35 0.2 1", "0 0 0.015") + "".join(
            post(x, y) for x in (-d, d) for y in (-d, d))
        return _free("wine_bottle", bottle) + _mocap("wine_rack", rack)

    def randomise(self, sim, rng):
        bottle_xy, rack_xy = sample_positions(rng, 2, 0.2)
        sim.set_body_pose("wine_bottle", bottle_xy.tolist() + [T])
        sim.data.mocap_pos[sim.model.body("wine_rack").mocapid[0]] = [*rack_xy, T]

    def success(self, sim):
        rel = sim.body_pos("wine_bottle") - sim.body_pos("wine_rack")
        upright = sim.body_mat("wine_bottle")[2, 2] > 0.95
        return np.hypot(rel[0], rel[1]) < 0.02 and abs(rel[2] - 0.03) < 0.01 and upright and sim.attached is None

    def expert(self, sim):
        neck = 2 * self.H + 0.03 + GRASP_MARGIN  # the neck, the palm well clear of the bottle's top
        grasp = sim.body_pos("wine_bottle") + [0, 0, neck]
        slot = sim.body_pos("wine_rack") + [0, 0, 0.03 + neck + 0.005 + GRASP_MARGIN]
        return self.pick(grasp, lift=0.15) + self.place(slot, approach=0.1)


class PutRubbishInBin(Task):
    name = "put_rubbish_in_bin"
    description = "put the rubbish in the bin"
    graspable = ("rubbish",)
    BIN = (0.09, 0.07, 0.05)  # inner half sizes

    def bodies(self):
        bx, by, bh = self.BIN
        t = 0.005
        walls = (_box(f"{bx} {by} 0.004", "0.2 0.2 0.22 1", "0 0 0.004")
                 + _box(f"{t} {by + t} {bh}", "0.2 0.2 0.22 1", f"{bx + t} 0 {bh}")
                 + _box(f"{t} {by + t} {bh}", "0.2 0.2 0.22 1", f"{-bx - t} 0 {bh}")
                 + _box(f"{bx} {t} {bh}", "0.2 0.2 0.22 1", f"0 {by + t} {bh}")
                 + _box(f"{bx} {t} {bh}", "0.2 0.2 0.22 1", f"0 {-by - t} {bh}"))
        # crumpled paper as a lumpy box: boxes rest still on the table, ellipsoids would rock
        rubbish = (f'<geom class="world" type="box" size="0.02 0.018 0.017" rgba="{WHITE}" mass="0.02"/>'
                   f'<geom class="world" type="box" size="0.017 0.02 0.015" euler="0.3 0.2 0.5" rgba="{WHITE}" mass="0.005"/>')
        tomato = lambda: f'<geom class="world" type="sphere" size="0.022" rgba="{RED}" mass="0.05"/>'
        return (_mocap("bin", walls) + _free("rubbish", rubbish)
                + _free("tomato1", tomato()) + _free("tomato2", tomato()))

    def randomise(self, sim, rng):
        # the hand is 20 cm across the fingers: keep the rubbish clear of the bin's walls
        bin_xy, rubbish_xy = sample_positions(rng, 2, 0.25)
        t1, t2 = sample_positions(rng, 2, 0.13, avoid=(bin_xy, rubbish_xy))
        sim.data.mocap_pos[sim.model.body("bin").mocapid[0]] = [*bin_xy, T]
        sim.set_body_pose("rubbish", [*rubbish_xy, T + 0.0175], _yaw_quat_wxyz(rng.uniform(-0.7, 0.7)))
        sim.set_body_pose("tomato1", [*t1, T + 0.022])
        sim.set_body_pose("tomato2", [*t2, T + 0.022])

    def success(self, sim):
        rel = sim.body_pos("rubbish") - sim.body_pos("bin")
        bx, by, bh = self.BIN
        return abs(rel[0]) < bx and abs(rel[1]) < by and rel[2] < 2 * bh and sim.attached is None

    def expert(self, sim):
        above_bin = sim.body_pos("bin") + [0, 0, 2 * self.BIN[2] + 0.08]
        yaw = _yaw_of(sim.body_mat("rubbish"), symmetry=np.pi / 2)
        return self.pick(sim.body_pos("rubbish"), yaw, lift=0.15) + [
            Waypoint(self.pose(above_bin), 0.0), Waypoint(self.pose(above_bin), 1.0)]


def _yaw_of(R, symmetry):
    """Yaw of an object's x axis, folded by its symmetry into the gripper's easy range."""
    yaw = np.arctan2(R[1, 0], R[0, 0])
    return (yaw + symmetry / 2) % symmetry - symmetry / 2


TASKS = {t.name: t for t in (ReachTarget, PickUpCup, TakeUmbrellaOutOfUmbrellaStand, TakeLidOffSaucepan,
                             PickAndLift, PhoneOnBase, StackWine, PutRubbishInBin)}
TASK_NAMES = tuple(TASKS)
# QT-Opt's bin grasping is not a keyframe Task but its own closed-loop episode (arm_sim.grasp_bin);
# Environment().get_task("grasp_bin") builds its GraspBinEnv. TASK_NAMES stays the eight ARM tasks.
QTOPT_TASK_NAMES = ("grasp_bin",)


class UnknownTaskError(ValueError):
    def __init__(self, name):
        super().__init__(f"unknown task {name!r}; valid tasks: {', '.join(TASK_NAMES)}"
                         f" (QT-Opt's closed-loop task: {', '.join(QTOPT_TASK_NAMES)})")


def make_task(name: str) -> Task:
    if name in QTOPT_TASK_NAMES:
        raise ValueError(f"{name!r} is not a keyframe Task: use Environment().get_task({name!r}) "
                         "or arm_sim.grasp_bin.GraspBinEnv")
    if name not in TASKS:
        raise UnknownTaskError(name)
    return TASKS[name]()
