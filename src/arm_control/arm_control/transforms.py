"""Small rotation helpers. Quaternions are xyzw (ROS order) unless a name says wxyz (MuJoCo)."""
import numpy as np


def quat_xyzw_to_mat(q) -> np.ndarray:
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def mat_to_quat_xyzw(R) -> np.ndarray:
    """Unit quaternion xyzw with w >= 0 (one canonical sign, as ARM's action space uses)."""
    R = np.asarray(R, dtype=np.float64)
    t = np.trace(R)
    if t > 0:
        s = 2.0 * np.sqrt(t + 1.0)
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s]
    else:
        i = int(np.argmax(np.diag(R)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * np.sqrt(max(1.0 + R[i, i] - R[j, j] - R[k, k], 1e-12))
        q = [0.0, 0.0, 0.0, (R[k, j] - R[j, k]) / s]
        q[i] = 0.25 * s
        q[j] = (R[j, i] + R[i, j]) / s
        q[k] = (R[k, i] + R[i, k]) / s
    q = np.array(q)
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def rotation_error(R_target, R) -> np.ndarray:
    """Axis-angle vector (world frame) rotating R onto R_target."""
    E = R_target @ R.T
    angle = np.arccos(np.clip((np.trace(E) - 1.0) / 2.0, -1.0, 1.0))
    if angle < 1e-9:
        return np.zeros(3)
    axis = np.array([E[2, 1] - E[1, 2], E[0, 2] - E[2, 0], E[1, 0] - E[0, 1]])
    n = np.linalg.norm(axis)
    if n < 1e-9:  # angle close to pi: take the axis from the symmetric part
        w, v = np.linalg.eigh((E + E.T) / 2.0)
        axis = v[:, np.argmax(w)]
        return axis * angle
    return axis / n * angle


def pose_to_matrix(pose7) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = quat_xyzw_to_mat(pose7[3:7])
    T[:3, 3] = pose7[:3]
    return T


def top_down_quat(yaw: float = 0.0) -> np.ndarray:
    """Gripper pointing straight down (tool z = -world z), rotated by yaw about world z."""
    c, s = np.cos(yaw), np.sin(yaw)
    R = np.array([[c, s, 0.0], [s, -c, 0.0], [0.0, 0.0, -1.0]])
    return mat_to_quat_xyzw(R)


#: the gripper's axes as columns of its TCP rotation: the fingers close along the tool's y axis;
#: its x axis runs along the width of the finger pads
ACROSS_FINGERS, ALONG_PADS = 1, 0


def gripper_offsets(offset_xyz, quat_xyzw) -> np.ndarray:
    """A world offset seen from a gripper pose: (across the fingers, along the pads, height)."""
    R = quat_xyzw_to_mat(quat_xyzw)
    d = np.asarray(offset_xyz, dtype=np.float64)
    return np.array([d @ R[:, ACROSS_FINGERS], d @ R[:, ALONG_PADS], d[2]])


def slerp_xyzw(q0, q1, t: float) -> np.ndarray:
    """Spherical linear interpolation between unit quaternions (shortest arc)."""
    q0, q1 = np.asarray(q0, dtype=np.float64), np.asarray(q1, dtype=np.float64)
    d = float(np.dot(q0, q1))
    if d < 0:
        q1, d = -q1, -d
    if d > 0.9995:
        q = q0 + t * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = np.arccos(d)
    return (np.sin((1 - t) * theta) * q0 + np.sin(t * theta) * q1) / np.sin(theta)
