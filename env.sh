# Activate the workspace: `source env.sh` from the repository root.
# Puts the venv, the colcon install space and the `arm` command on the current shell.
_ARM_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
if [ ! -f "$_ARM_ROOT/.venv/bin/activate" ] || [ ! -f "$_ARM_ROOT/install/setup.bash" ]; then
    echo "env.sh: workspace not built yet; run 'make setup' in $_ARM_ROOT first" >&2
    return 1 2>/dev/null || exit 1
fi
source "$_ARM_ROOT/.venv/bin/activate"
source "$_ARM_ROOT/install/setup.bash"
export PATH="$_ARM_ROOT/install/arm_bringup/lib/arm_bringup:$PATH"
# Headless rendering: EGL (Mesa) unless the user chose otherwise (osmesa also works).
export MUJOCO_GL="${MUJOCO_GL:-egl}"
export PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-$MUJOCO_GL}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
unset _ARM_ROOT
