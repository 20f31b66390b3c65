"""Pictures of MuJoCo tasks, drawn in a process of their own that never imports TensorFlow.

Why a process of its own: TensorFlow loads its bundled LLVM with global symbols
(``RTLD_GLOBAL``), and Mesa's software OpenGL (llvmpipe, what EGL and OSMesa use on a
machine without a GPU driver) resolves *its* LLVM calls to TensorFlow's copy and crashes
(SIGSEGV in ``mjr_makeContext``) - which would kill the trainer with it. So the trainer
steps the episode itself (physics needs no OpenGL), keeps MuJoCo's state (qpos, qvel)
after every step, and :func:`render_states` has a child Python draw those states. A
child that cannot render (no EGL or OSMesa, a crash, a timeout) becomes
:class:`RenderUnavailable`, whose message is the note to show instead; training goes on.

The child runs ``_child_main``: arguments on the command line, the states as an ``.npy``
pair on stdin, the frames ([T, H, W, 3] uint8) as ``.npy`` on stdout.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from trpo_viz.trpo.rollout import is_mujoco, route_mujoco_warnings

# MUJOCO_GL values MuJoCo can render with (trpo_viz sets "disable" when neither libEGL nor
# libOSMesa loads: see trpo_viz._headless_rendering_defaults).
MUJOCO_RENDERERS = ("egl", "osmesa", "glfw")
DEFAULT_SIZE = (480, 480)  # (height, width): gymnasium's MuJoCo default
_CAUSE_CHARS = 240  # the cause's share of a note (the run store keeps 500 characters)
_ERROR_MARK = "RENDER-ERROR: "
_ERROR_EXIT = 3


class RenderUnavailable(RuntimeError):
    """The task cannot be rendered on this machine; ``str(error)`` is the note to show.

    Training is unaffected: only the pictures of the policy acting are missing.
    """


def render_unavailable_note(env_id: str, cause: str) -> str:
    """The note shown in place of a rollout that could not be rendered (≤ 500 characters)."""
    cause = " ".join(cause.split())[:_CAUSE_CHARS].rstrip(". ")
    if is_mujoco(env_id):
        return (
            f"This machine cannot render MuJoCo (no EGL or OSMesa): {cause}. Training is not "
            "affected. To see the policy act, install libEGL (Debian/Ubuntu: libegl1) or "
            "OSMesa (libosmesa6) and restart with MUJOCO_GL=egl (or osmesa)."
        )
    return f"{env_id} cannot be rendered on this machine: {cause}. Training is not affected."


def check_backend(env_id: str) -> None:
    """Raise :class:`RenderUnavailable` at once when ``MUJOCO_GL`` cannot render at all."""
    backend = os.environ.get("MUJOCO_GL", "")
    if backend not in MUJOCO_RENDERERS:
        raise RenderUnavailable(
            render_unavailable_note(env_id, f"MUJOCO_GL={backend or '(unset)'}")
        )


def render_states(
    env_id: str, qpos: np.ndarray, qvel: np.ndarray, size=None, timeout: float | None = None
) -> list[np.ndarray]:
    """Frames (uint8 [H, W, 3]) of ``env_id`` in each state (qpos [T, nq], qvel [T, nv]).

    Drawn by a child process (see the module docstring) at ``size`` (height, width;
    gymnasium's 480 × 480 by default) with the task's own camera. Raises
    :class:`RenderUnavailable` when the child cannot draw them.
    """
    check_backend(env_id)
    height, width = DEFAULT_SIZE if size is None else (int(size[0]), int(size[1]))
    timeout = 60.0 + 2.0 * len(qpos) if timeout is None else timeout
    states = io.BytesIO()
    np.save(states, np.asarray(qpos, np.float64))
    np.save(states, np.asarray(qvel, np.float64))
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
    command = [
        sys.executable, "-c", "from trpo_viz.trpo.mujoco_render import _child_main; _child_main()",
        env_id, str(height), str(width),
    ]
    backend = os.environ.get("MUJOCO_GL")
    try:
        done = subprocess.run(
            command, input=states.getvalue(), capture_output=True, env=env, timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RenderUnavailable(
            render_unavailable_note(
                env_id, f"MUJOCO_GL={backend}: drawing {len(qpos)} frames took over {timeout:.0f} s"
            )
        ) from None
    if done.returncode != 0:
        raise RenderUnavailable(
            render_unavailable_note(env_id, f"MUJOCO_GL={backend}: {_child_failure(done)}")
        )
    frames = np.load(io.BytesIO(done.stdout), allow_pickle=False)
    return list(frames)


def _child_failure(done: subprocess.CompletedProcess) -> str:
    """What went wrong in the child, in one line."""
    stderr = done.stderr.decode("utf-8", errors="replace")
    for line in stderr.splitlines():
        if line.startswith(_ERROR_MARK):
            return line[len(_ERROR_MARK):]
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        return f"the rendering process was killed by {name}"
    last = stderr.strip().splitlines()[-1:] or ["no message"]
    return f"the rendering process exited with status {done.returncode}: {last[0]}"


def _child_main() -> None:
    """Entry point of the rendering process: draw the states on stdin, frames to stdout."""
    env_id, height, width = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    try:
        data = io.BytesIO(sys.stdin.buffer.read())
        qpos = np.load(data, allow_pickle=False)
        qvel = np.load(data, allow_pickle=False)
        frames = _draw(env_id, qpos, qvel, height, width)
    except Exception as error:  # noqa: BLE001 - reported to the parent as one line
        message = " ".join(f"{type(error).__name__}: {error}".split())
        print(f"{_ERROR_MARK}{message}", file=sys.stderr, flush=True)
        sys.exit(_ERROR_EXIT)
    out = io.BytesIO()
    np.save(out, frames)
    sys.stdout.buffer.write(out.getvalue())
    sys.stdout.buffer.flush()


def _draw(env_id: str, qpos, qvel, height: int, width: int) -> np.ndarray:
    import gymnasium as gym

    if "tensorflow" in sys.modules:
        raise RuntimeError("the rendering process loaded TensorFlow (see the module docstring)")
    route_mujoco_warnings()
    env = gym.make(env_id, render_mode="rgb_array", height=height, width=width)
    try:
        env.reset(seed=0)
        env.render()  # creates the viewer (and the OpenGL context): fails here if it can't
        _plain_scene(env)
        frames = np.zeros((len(qpos), height, width, 3), np.uint8)
        for t in range(len(qpos)):
            env.unwrapped.set_state(qpos[t], qvel[t])
            frame = env.render()
            if frame is None:
                raise RuntimeError("the environment returned no frame")
            frames[t] = frame
    finally:
        env.close()
    return frames


def _plain_scene(env) -> None:
    """No shadows or floor reflections: 4-5× faster in software OpenGL (llvmpipe: 50-65 ms
    instead of 220-350 ms a 240 × 160 frame, measured on the 2-core dev box), and hardly
    visible at thumbnail size. The scene belongs to gymnasium's private viewer (created by
    the first render); where that is not found (another gymnasium) frames keep both."""
    import mujoco

    try:
        scene = env.unwrapped.mujoco_renderer._get_viewer("rgb_array").scn
    except AttributeError:
        return
    scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
    scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
