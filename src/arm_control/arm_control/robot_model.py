"""The Franka Panda as MJCF, built from its published kinematics with primitive shapes.

Body frames follow franka_description (the same chain as MuJoCo Menagerie's panda.xml), so
joint angles mean the same thing on the real arm. Links are capsules and boxes: collision
checking with primitives is fast (planning checks thousands of states) and nothing has to be
downloaded. The tool centre point (TCP) is 0.1034 m along the hand's z axis, Franka's default.

Collision bits: robot geoms have contype=2/conaffinity=1 and world geoms contype=1/conaffinity=3,
so the robot touches the world but not itself in physics; the self-collisions that matter for
planning (hand and forearm against base and shoulder) are explicit <pair>s.
"""
from dataclasses import dataclass

from . import panda

TABLE_HEIGHT = 0.75  # metres, as RLBench's table; the robot stands on it at the origin
TCP_OFFSET = 0.1034  # metres from the hand frame along its z axis
TCP_SITE = "tcp"
HAND_BODY = "panda_hand"
FINGER_BODIES = ("panda_leftfinger", "panda_rightfinger")
ROBOT_GEOM_PREFIX = "panda_"

ROBOT_GEOM = 'contype="2" conaffinity="1"'
WORLD_GEOM = 'contype="1" conaffinity="3"'

_SELF_COLLISION_PAIRS = [
    (a, b)
    for a in ("panda_hand_c", "panda_leftfinger_c", "panda_rightfinger_c", "panda_link7_c", "panda_link6_c")
    for b in ("panda_link0_c", "panda_link1_c", "panda_link2_c")
] + [("panda_link5_c", "panda_link0_c"), ("panda_link5_c", "panda_link1_c")]


@dataclass(frozen=True)
class RobotMJCF:
    """Fragments to splice into a scene: bodies go into <worldbody>, the rest at top level."""

    body: str
    actuators: str
    contacts: str
    defaults: str


def panda_mjcf(base_pos=(0.0, 0.0, 0.0)) -> RobotMJCF:
    j = [f'name="{n}"' for n in panda.ARM_JOINTS]
    lim = [f'range="{lo:.4f} {hi:.4f}"' for lo, hi in zip(panda.LOWER, panda.UPPER)]
    white, grey, dark = 'rgba="0.92 0.92 0.92 1"', 'rgba="0.6 0.6 0.62 1"', 'rgba="0.15 0.15 0.15 1"'
    bx, by, bz = base_pos
    body = f"""
<body name="panda_link0" pos="{bx} {by} {bz}">
  <geom name="panda_link0_c" class="panda" type="cylinder" size="0.09 0.07" pos="-0.04 0 0.07" {white}/>
  <body name="panda_link1" pos="0 0 0.333">
    <joint {j[0]} {lim[0]} class="panda"/>
    <geom name="panda_link1_c" class="panda" type="capsule" fromto="0 0 -0.17 0 0 -0.03" size="0.065" {white}/>
    <body name="panda_link2" quat="0.7071068 -0.7071068 0 0">
      <joint {j[1]} {lim[1]} class="panda"/>
      <geom name="panda_link2_c" class="panda" type="capsule" fromto="0 -0.04 0 0 -0.22 0" size="0.06" {white}/>
      <body name="panda_link3" pos="0 -0.316 0" quat="0.7071068 0.7071068 0 0">
        <joint {j[2]} {lim[2]} class="panda"/>
        <geom name="panda_link3_c" class="panda" type="capsule" fromto="0 0 -0.15 0.08 0 -0.03" size="0.055" {white}/>
        <body name="panda_link4" pos="0.0825 0 0" quat="0.7071068 0.7071068 0 0">
          <joint {j[3]} {lim[3]} class="panda"/>
          <geom name="panda_link4_c" class="panda" type="capsule" fromto="0 0 0.03 -0.08 0.1 0" size="0.055" {white}/>
          <body name="panda_link5" pos="-0.0825 0.384 0" quat="0.7071068 -0.7071068 0 0">
            <joint {j[4]} {lim[4]} class="panda"/>
            <geom name="panda_link5_c" class="panda" type="capsule" fromto="0 0 -0.24 0 0.05 -0.08" size="0.05" {white}/>
            <body name="panda_link6" quat="0.7071068 0.7071068 0 0">
              <joint {j[5]} {lim[5]} class="panda"/>
              <geom name="panda_link6_c" class="panda" type="capsule" fromto="0 0 -0.01 0.088 0 -0.01" size="0.045" {grey}/>
              <body name="panda_link7" pos="0.088 0 0" quat="0.7071068 0.7071068 0 0">
                <joint {j[6]} {lim[6]} class="panda"/>
                <geom name="panda_link7_c" class="panda" type="cylinder" size="0.045 0.03" pos="0 0 0.07" {dark}/>
                <body name="{HAND_BODY}" pos="0 0 0.107" quat="0.9238795 0 0 -0.3826834">
                  <geom name="panda_hand_c" class="panda" type="box" size="0.025 0.1 0.03" pos="0 0 0.03" {white}/>
                  <site name="{TCP_SITE}" pos="0 0 {TCP_OFFSET}" size="0.005" rgba="1 0 0 0" group="3"/>
                  <body name="panda_leftfinger" pos="0 0 0.0584">
                    <joint name="{panda.FINGER_JOINTS[0]}" type="slide" axis="0 1 0" range="0 0.04" class="finger"/>
                    <geom name="panda_leftfinger_c" class="panda_finger" type="box" size="0.01 0.008 0.026" pos="0 0.008 0.026" {dark}/>
                  </body>
                  <body name="panda_rightfinger" pos="0 0 0.0584">
                    <joint name="{panda.FINGER_JOINTS[1]}" type="slide" axis="0 -1 0" range="0 0.04" class="finger"/>
                    <geom name="panda_rightfinger_c" class="panda_finger" type="box" size="0.01 0.008 0.026" pos="0 -0.008 0.026" {dark}/>
                  </body>
                </body>
              </body>
            </body>
          </body>
        </body>
      </body>
    </body>
  </body>
</body>"""
    actuators = "".join(
        f'<position name="act_{n}" joint="{n}" kp="{kp}" kv="{kv}" ctrlrange="{lo:.4f} {hi:.4f}" forcerange="-{f} {f}"/>\n'
        for n, lo, hi, kp, kv, f in zip(
            panda.ARM_JOINTS, panda.LOWER, panda.UPPER,
            (4500, 4500, 3500, 3500, 2000, 2000, 2000), (450, 450, 350, 350, 40, 40, 20),
            (87, 87, 87, 87, 12, 12, 12)))
    actuators += "".join(
        f'<position name="act_{n}" joint="{n}" kp="300" kv="20" ctrlrange="0 0.04" forcerange="-40 40"/>\n'
        for n in panda.FINGER_JOINTS)
    contacts = "".join(f'<pair geom1="{a}" geom2="{b}"/>\n' for a, b in _SELF_COLLISION_PAIRS)
    defaults = f"""
<default class="panda">
  <joint armature="0.1" damping="1"/>
  <geom {ROBOT_GEOM} density="1500" friction="1 0.005 0.0001"/>
</default>
<default class="finger">
  <joint armature="0.01" damping="2"/>
</default>
<default class="panda_finger">
  <geom {ROBOT_GEOM} density="1500" friction="2 0.05 0.001" condim="4" solref="0.01 1"/>
</default>"""
    return RobotMJCF(body=body, actuators=actuators, contacts=contacts, defaults=defaults)


def workcell_xml(extra_bodies: str = "", extra_equalities: str = "", timestep: float = 0.002) -> str:
    """The work cell as a full MJCF: the Panda on its table, plus `extra_bodies` (cameras, task
    objects) and `extra_equalities`. The simulator and the control node's planning scene are both
    built from this, so they agree on where the table is."""
    robot = panda_mjcf((0.0, 0.0, TABLE_HEIGHT))
    body = robot.body.replace('<body name="panda_', '<body gravcomp="1" name="panda_')
    return f"""
<mujoco model="arm_panda_scene">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{timestep}" integrator="implicitfast" cone="elliptic" impratio="5"/>
  <visual>
    <global offwidth="1280" offheight="1024"/>
    <quality shadowsize="0" offsamples="0"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.5 0.5 0.5" specular="0 0 0"/>
    <map znear="0.02" zfar="10"/>
  </visual>
  <default>
    {robot.defaults}
    <default class="world"><geom {WORLD_GEOM} friction="1 0.005 0.0001"/></default>
  </default>
  <worldbody>
    <light name="top" pos="0.4 0 3" dir="0 0 -1" diffuse="0.5 0.5 0.5" castshadow="false"/>
    <geom name="floor" class="world" type="plane" size="3 3 0.1" rgba="0.35 0.33 0.3 1"/>
    <body name="table">
      <geom name="table_top" class="world" type="box" size="0.6 0.65 0.025" pos="0.45 0 {TABLE_HEIGHT - 0.025}" rgba="0.72 0.58 0.42 1"/>
      <geom name="table_leg" class="world" type="box" size="0.5 0.5 0.36" pos="0.45 0 0.36" rgba="0.5 0.4 0.3 1"/>
    </body>
    {body}
    {extra_bodies}
  </worldbody>
  <contact>
    <exclude body1="panda_link0" body2="table"/>
    {robot.contacts}
  </contact>
  <equality>
    {extra_equalities}
  </equality>
  <actuator>
    {robot.actuators}
  </actuator>
</mujoco>"""


