"""ROS 2 graph benchmarks. One JSON object per line: name, value, unit (+ context).

Examples:
    python bench/bench_ros.py                      # every figure (about 40 s)
    python bench/bench_ros.py --only fill          # one or more figures: --only perception,latency
    ROS_DOMAIN_ID=45 python bench/bench_ros.py --only latency --rates 30,60 --seconds 5

Figures (one function each, registered in FIGURES; add yours there):
    perception  in-process perception per frame: Image -> numpy, depth_to_points, numpy -> Image +
                PointCloud2 (128x128 from the simulator; 640x480 RealSense bgr8+16UC1 -> 128)
    fill        Image / PointCloud2 data filled from numpy vs element-wise Python, same run
    control     next_best_pose -> reached on `arm launch sim` (real time), and planning time
    latency     camera -> points across processes: a camera process publishes 128x128 frames
                (stamped with the system clock) to a perception_node process; this process
                subscribes to the cloud and measures receive time - header stamp; per offered
                rate: median / p95 latency, output rate, frames lost

The ROS figures run in the caller's ROS_DOMAIN_ID on topic names unique to this run (no other
graph on the machine can feed or read them), and stop every process they start.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np


def emit(name, value, unit, **extra):
    print(json.dumps({"name": name, "value": round(float(value), 4), "unit": unit, **extra}), flush=True)


def _stats_ms(seconds):
    ms = np.asarray(seconds) * 1000.0
    return float(np.median(ms)), float(np.percentile(ms, 95))


def _timed(fn, reps, warmup=5):
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


# --------------------------------------------------------------------------- synthetic camera


def sim_camera_frame(size=128, seed=0):
    """rgb8 + 32FC1 (metres) frame as the simulator's camera sends it, with its K and pose."""
    from arm_perception.camera import intrinsics_from_fovy

    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    depth = rng.uniform(0.8, 2.0, (size, size)).astype(np.float32)
    depth[rng.random((size, size)) < 0.05] = 0.0
    K = intrinsics_from_fovy(50.0, size, size)
    T = np.eye(4)
    T[:3, :3] = [[0, -1, 0], [-0.5, 0, -0.866], [0.866, 0, -0.5]]  # roughly looking at the table
    T[:3, 3] = [1.3, 0.0, 1.5]
    return rgb, depth, K, T


def realsense_frame(seed=0):
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    depth_mm = rng.integers(400, 3000, (480, 640), dtype=np.uint16)
    K = np.array([[615.0, 0.0, 320.0], [0.0, 615.0, 240.0], [0.0, 0.0, 1.0]])
    return rgb, depth_mm, K


# --------------------------------------------------------------------------- figures


def bench_perception(frames=300, size=128):
    """In-process perception per frame, the work perception_node does per message pair."""
    from arm_perception.camera import depth_to_points
    from arm_perception.ros_conversions import (
        image_to_numpy,
        intrinsics_to_camera_info,
        numpy_to_image,
        points_to_pointcloud2,
        resize_to,
    )

    def perceive(color_msg, depth_msg, K, T):
        rgb = image_to_numpy(color_msg, kind="color")
        depth = image_to_numpy(depth_msg, kind="depth")
        rgb, depth, K2 = resize_to(rgb, depth, K, size)
        points = depth_to_points(depth, K2, T)
        stamp = color_msg.header.stamp
        return (numpy_to_image(rgb, "rgb8", stamp, "cam"), points_to_pointcloud2(points, stamp, "world"),
                intrinsics_to_camera_info(K2, size, size, stamp, "cam"))

    rgb, depth, K, T = sim_camera_frame(size)
    cm, dm = numpy_to_image(rgb, "rgb8", 1.0, "cam"), numpy_to_image(depth, "32FC1", 1.0, "cam")
    med, p95 = _stats_ms(_timed(lambda: perceive(cm, dm, K, T), frames))
    emit("perception_ms_per_frame", med, "ms", p95=round(p95, 3), size=f"{size}x{size}",
         input="rgb8 + 32FC1 (simulator)",
         includes="Image->numpy x2 + depth_to_points + numpy->Image + PointCloud2 + CameraInfo",
         target="<= 5")

    rs_rgb, rs_depth, rs_K = realsense_frame()
    cm, dm = numpy_to_image(rs_rgb, "bgr8", 1.0, "cam"), numpy_to_image(rs_depth, "16UC1", 1.0, "cam")
    med, p95 = _stats_ms(_timed(lambda: perceive(cm, dm, rs_K, T), frames // 3))
    emit("perception_ms_per_frame_realsense", med, "ms", p95=round(p95, 3), size=f"640x480 -> {size}x{size}",
         input="bgr8 + 16UC1 mm (RealSense)", includes="as above + centre crop + resize")


def bench_fill(size=128, reps=200, slow_reps=5):
    """Filling Image.data / PointCloud2.data from numpy (ros_conversions) vs element-wise Python."""
    from sensor_msgs.msg import Image, PointCloud2

    from arm_perception.ros_conversions import numpy_to_image, points_to_pointcloud2

    rgb, depth, K, T = sim_camera_frame(size)
    from arm_perception.camera import depth_to_points

    points = depth_to_points(depth, K, T)
    cases = {
        "image_rgb8": (rgb, lambda: numpy_to_image(rgb, "rgb8", 1.0, "cam"), Image),
        "pointcloud2_xyz": (points, lambda: points_to_pointcloud2(points, 1.0, "world"), PointCloud2),
    }
    for name, (arr, fast, mtype) in cases.items():
        flat = arr.reshape(-1).view(np.uint8)

        def elementwise():  # what per-element code costs: every byte a Python int through the setter
            msg = mtype()
            msg.data = flat.tolist()
            return msg

        def default_setter():  # the default check_fields=False setter re-wraps bytes: two copies
            msg = mtype()
            msg.data = arr.tobytes()
            return msg

        def ndarray_setter():  # a numpy array handed to the setter is iterated element by element
            msg = mtype()
            msg.data = flat
            return msg

        t_fast = float(np.median(_timed(fast, reps)))
        t_two = float(np.median(_timed(default_setter, reps)))
        t_slow = float(np.median(_timed(elementwise, slow_reps, warmup=1)))
        t_nd = float(np.median(_timed(ndarray_setter, slow_reps, warmup=1)))
        emit(f"fill_{name}_numpy_us", t_fast * 1e6, "us", bytes=int(arr.nbytes),
             method="array.array.frombytes(numpy buffer) into a check_fields=True message (one copy)")
        emit(f"fill_{name}_elementwise_us", t_slow * 1e6, "us", bytes=int(arr.nbytes),
             method="msg.data = list of Python ints")
        emit(f"fill_{name}_speedup", t_slow / t_fast, "x", numpy_us=round(t_fast * 1e6, 1),
             elementwise_us=round(t_slow * 1e6, 1), default_setter_bytes_us=round(t_two * 1e6, 1),
             ndarray_to_setter_us=round(t_nd * 1e6, 1))


# --------------------------------------------------------------------------- latency (3 processes)


def _ros_env():
    env = dict(os.environ, RCUTILS_COLORIZED_OUTPUT="0", PYTHONUNBUFFERED="1")
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    return env


def _stop(proc):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def camera_process(prefix, rate, seconds, size):
    """--role camera: publish colour, depth, camera_info (+ latched pose) at `rate` Hz.

    Stamps are the system clock at publish time. Waits for the perception node to subscribe.
    Prints one JSON line {"sent", "offered_hz"} at the end.
    """
    import rclpy
    from geometry_msgs.msg import PoseStamped
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    from arm_control.graph import LATCHED
    from arm_perception.ros_conversions import (
        intrinsics_to_camera_info,
        matrix_to_pose,
        numpy_to_image,
    )

    rclpy.init()
    node = rclpy.create_node("bench_camera")
    pub_c = node.create_publisher(Image, f"{prefix}/color", qos_profile_sensor_data)
    pub_d = node.create_publisher(Image, f"{prefix}/depth", qos_profile_sensor_data)
    pub_i = node.create_publisher(CameraInfo, f"{prefix}/camera_info", qos_profile_sensor_data)
    pub_p = node.create_publisher(PoseStamped, f"{prefix}/pose", LATCHED)
    rgb, depth, K, T = sim_camera_frame(size)
    pub_p.publish(PoseStamped(header=Header(frame_id="world"), pose=matrix_to_pose(T)))
    color = numpy_to_image(rgb, "rgb8", 0.0, "front_camera_optical_frame")
    depth_msg = numpy_to_image(depth, "32FC1", 0.0, "front_camera_optical_frame")
    info = intrinsics_to_camera_info(K, size, size, 0.0, "front_camera_optical_frame")
    deadline = time.monotonic() + 20
    while not all(p.get_subscription_count() > 0 for p in (pub_c, pub_d, pub_i)):
        if time.monotonic() > deadline:
            raise SystemExit("camera: perception_node never subscribed")
        time.sleep(0.05)
    time.sleep(0.5)  # let the latched pose land
    period, sent = 1.0 / rate, 0
    t_start = time.monotonic()
    next_t = t_start
    while time.monotonic() - t_start < seconds:
        ns = time.time_ns()
        for msg in (info, color, depth_msg):
            msg.header.stamp.sec, msg.header.stamp.nanosec = ns // 1_000_000_000, ns % 1_000_000_000
        pub_i.publish(info)
        pub_c.publish(color)
        pub_d.publish(depth_msg)
        sent += 1
        next_t += period
        delay = next_t - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            next_t = time.monotonic()  # fell behind: do not burst to catch up
    elapsed = time.monotonic() - t_start
    print(json.dumps({"sent": sent, "offered_hz": sent / elapsed}), flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


def bench_latency(rates=(30.0, 60.0, 120.0), seconds=5.0, warmup=1.0, size=128):
    """camera process -> perception_node process -> this process: latency and sustained rate."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import PointCloud2

    prefix = f"/bench_ros_{os.getpid()}"
    env = _ros_env()
    rclpy.init()
    node = rclpy.create_node("bench_points_listener")
    received = []  # (receive ns, stamp ns)

    def on_points(msg):
        received.append((time.time_ns(), msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec))

    sub = node.create_subscription(PointCloud2, f"{prefix}/points", on_points, qos_profile_sensor_data)
    node_args = [sys.executable, "-m", "arm_perception.perception_node", "--ros-args",
                 "-p", f"image_size:={size}",
                 "-p", f"color_topic:={prefix}/color", "-p", f"depth_topic:={prefix}/depth",
                 "-p", f"camera_info_topic:={prefix}/camera_info", "-p", f"camera_pose_topic:={prefix}/pose",
                 "-r", f"/arm/perception/points:={prefix}/points", "-r", f"/arm/perception/rgb:={prefix}/rgb",
                 "-r", f"/arm/perception/camera_info:={prefix}/camera_info_out"]
    perception = camera = None
    try:
        perception = subprocess.Popen(node_args, env=env, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while sub.get_publisher_count() == 0:
            if perception.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("perception_node did not come up")
            rclpy.spin_once(node, timeout_sec=0.05)
        for rate in rates:
            received.clear()
            camera = subprocess.Popen(
                [sys.executable, __file__, "--role", "camera", "--prefix", prefix, "--rate", str(rate),
                 "--seconds", str(seconds + warmup), "--size", str(size)],
                env=env, stdout=subprocess.PIPE, text=True)
            while camera.poll() is None:
                rclpy.spin_once(node, timeout_sec=0.05)
            end = time.monotonic() + 0.5  # the last frames in flight
            while time.monotonic() < end:
                rclpy.spin_once(node, timeout_sec=0.05)
            report = json.loads(camera.stdout.read().strip().splitlines()[-1])
            if camera.returncode != 0 or not received:
                raise SystemExit(f"camera process failed (rc {camera.returncode}) or no clouds came back")
            recv = np.array(received, dtype=np.int64)
            t0 = recv[:, 1].min() + int(warmup * 1e9)
            window = recv[recv[:, 1] >= t0]
            lat = (window[:, 0] - window[:, 1]) / 1e6
            span = (window[:, 1].max() - window[:, 1].min()) / 1e9
            out_hz = (len(window) - 1) / span if span > 0 else 0.0
            offered_in_window = report["offered_hz"] * (seconds)
            lost = max(0.0, 1.0 - len(window) / offered_in_window) if offered_in_window else 0.0
            emit("camera_to_points_latency_ms", np.median(lat), "ms", p95=round(float(np.percentile(lat, 95)), 3),
                 max=round(float(lat.max()), 3), offered_hz=round(report["offered_hz"], 1),
                 size=f"{size}x{size}", samples=int(len(window)),
                 path="camera process -> perception_node process -> subscriber process, Fast DDS",
                 target="median <= 15")
            emit("perception_output_hz", out_hz, "Hz", offered_hz=round(report["offered_hz"], 1),
                 lost_fraction=round(lost, 3), target=">= 30 sustained")
    finally:
        _stop(camera)
        _stop(perception)
        node.destroy_node()
        rclpy.try_shutdown()


# --------------------------------------------------------------------------- control (the sim graph)


def bench_control(goals=20):
    """next_best_pose -> 'reached' across processes on `arm launch sim` (real time): the wall time
    from publishing a goal to its result, which is mostly the arm's motion; plus planning time."""
    import re
    import shutil

    import rclpy
    from geometry_msgs.msg import PoseStamped
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy
    from std_msgs.msg import String

    launch = subprocess.Popen([shutil.which("arm"), "launch", "sim"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, env=_ros_env(), start_new_session=True)
    rclpy.init()
    node = rclpy.create_node("bench_control")
    qos = QoSProfile(depth=100, reliability=QoSReliabilityPolicy.RELIABLE)
    results = []
    node.create_subscription(String, "/arm/control/result", lambda m: results.append((time.perf_counter(), m.data)), qos)
    pub = node.create_publisher(PoseStamped, "/arm/next_best_pose", qos)
    try:
        end = time.monotonic() + 60
        while pub.get_subscription_count() == 0 and time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.1)
        time.sleep(2.0)  # the simulator's first frames and joint states
        rng = np.random.default_rng(0)
        latencies, plans, reached = [], [], 0
        for _ in range(goals):
            msg = PoseStamped()
            msg.header.frame_id = "world"
            msg.header.stamp = node.get_clock().now().to_msg()
            msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (
                rng.uniform(0.35, 0.6), rng.uniform(-0.25, 0.25), rng.uniform(0.85, 1.1))
            msg.pose.orientation.x = 1.0
            n, t0 = len(results), time.perf_counter()
            pub.publish(msg)
            while len(results) == n and time.perf_counter() - t0 < 30:
                rclpy.spin_once(node, timeout_sec=0.01)
            if len(results) > n:
                t1, text = results[n]
                latencies.append(t1 - t0)
                reached += text.startswith("reached")
                m = re.search(r"plan ([0-9.]+) ms", text)
                if m:
                    plans.append(float(m.group(1)) / 1000)
        med, p95 = _stats_ms(latencies)
        emit("next_best_pose_to_reached_ms", med, "ms", p95=round(p95, 1), goals=goals, reached=reached,
             includes="DDS both ways + IK + plan + real-time execution + settling")
        med, p95 = _stats_ms(plans)
        emit("control_node_plan_ms", med, "ms", p95=round(p95, 1), goals=goals)
    finally:
        _stop(launch)
        node.destroy_node()
        rclpy.try_shutdown()


FIGURES = {
    "control": lambda a: bench_control(),
    "perception": lambda a: bench_perception(frames=a.frames),
    "fill": lambda a: bench_fill(),
    "latency": lambda a: bench_latency(rates=a.rates, seconds=a.seconds),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="", help=f"comma-separated figures: {', '.join(FIGURES)}")
    parser.add_argument("--frames", type=int, default=300, help="frames for the in-process perception figure")
    parser.add_argument("--rates", default="30,60,120", help="offered camera rates (Hz) for the latency figure")
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per offered rate")
    # internal: the camera process of the latency figure
    parser.add_argument("--role", choices=["camera"], help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=30.0, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=128, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "camera":
        camera_process(args.prefix, args.rate, args.seconds, args.size)
        return
    args.rates = tuple(float(r) for r in args.rates.split(",") if r)
    wanted = [w for w in args.only.split(",") if w] or list(FIGURES)
    unknown = [w for w in wanted if w not in FIGURES]
    if unknown:
        parser.error(f"unknown figure(s) {unknown}; choose from {', '.join(FIGURES)}")
    for name in wanted:
        FIGURES[name](args)


if __name__ == "__main__":
    main()
