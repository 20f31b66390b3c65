"""MuJoCo tasks by default (issue 11): listed, zoo settings, one update each, pictures or a note."""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest

from trpo_viz.trpo.config import (
    ACTION_DIMS,
    MUJOCO_ENVS,
    available_envs,
    default_config,
    defaults_note,
)
from trpo_viz.trpo.mujoco_render import (
    RenderUnavailable,
    _child_failure,
    render_states,
    render_unavailable_note,
)
from trpo_viz.trpo.rollout import is_mujoco, make_env

FIVE = ("Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "InvertedPendulum-v5", "Swimmer-v5")
NOTE_START = "This machine cannot render MuJoCo (no EGL or OSMesa): "

# rl-baselines3-zoo hyperparams/trpo.yml (commit 22e3ff2), copied by hand. The MuJoCo block
# (&mujoco-defaults = &pybullet-defaults, n_timesteps 1e6): normalize true, n_envs 2,
# batch_size 128, n_steps 1024, gamma 0.99, gae_lambda 0.95, sub_sampling_factor 1,
# cg_max_steps 25, cg_damping 0.1, n_critic_updates 20, learning_rate 1e-3; HalfCheetah
# target_kl 0.04, Swimmer gamma 0.9999. InvertedPendulum has no entry (the zoo's default:
# one env, sb3-contrib's TRPO defaults; 100k steps is our documented deviation from 1e6).
# Unnamed settings are sb3-contrib's defaults: target_kl 0.01, line search 0.8 × 10 tries,
# MlpPolicy [64, 64] tanh, log_std_init 0, normalize_advantage True.
_MUJOCO_BLOCK = dict(
    n_envs=2, total_timesteps=1_000_000, n_steps=1024, value_batch_size=128, gamma=0.99,
    gae_lambda=0.95, fvp_subsample=1.0, cg_max_steps=25, cg_damping=0.1, value_epochs=20,
    value_lr=1e-3, normalize_obs=True, normalize_reward=True, max_kl=0.01,
)
_SB3_DEFAULTS = dict(
    line_search_shrink=0.8, max_backtracks=9, hidden_sizes=(64, 64), activation="tanh",
    log_std_init=0.0, normalize_advantage=True, clip_obs=10.0, clip_reward=10.0,
)
ZOO = {
    "Hopper-v5": {**_SB3_DEFAULTS, **_MUJOCO_BLOCK},
    "Walker2d-v5": {**_SB3_DEFAULTS, **_MUJOCO_BLOCK},
    "HalfCheetah-v5": {**_SB3_DEFAULTS, **_MUJOCO_BLOCK, "max_kl": 0.04},
    "Swimmer-v5": {**_SB3_DEFAULTS, **_MUJOCO_BLOCK, "gamma": 0.9999},
    "InvertedPendulum-v5": {
        **_SB3_DEFAULTS, "n_envs": 1, "total_timesteps": 100_000, "n_steps": 2048,
        "value_batch_size": 128, "gamma": 0.99, "gae_lambda": 0.95, "fvp_subsample": 1.0,
        "cg_max_steps": 15, "cg_damping": 0.1, "value_epochs": 10, "value_lr": 1e-3,
        "normalize_obs": False, "normalize_reward": False, "max_kl": 0.01,
    },
}
TINY = dict(n_envs=1, n_steps=256, cg_max_steps=4, value_epochs=1, value_batch_size=128,
            total_timesteps=10_000)


def test_the_five_tasks_are_listed_and_are_mujoco():
    envs = available_envs()
    for env_id in FIVE:
        assert env_id in envs and env_id in MUJOCO_ENVS and is_mujoco(env_id)
    assert not is_mujoco("CartPole-v1") and not is_mujoco("NoSuchTask-v0")


@pytest.mark.parametrize("env_id", FIVE)
def test_default_config_is_the_zoo_config(env_id):
    """The zoo's settings, with target_kl and cg_damping times the action dimension d
    (read from the task itself): sb3-contrib's KL is a mean over action dimensions."""
    config = default_config(env_id)
    config.validate()
    with warnings.catch_warnings():  # HalfCheetah's model uses a deprecated attribute
        warnings.filterwarnings("ignore", message="MuJoCo: compiler attribute 'settotalmass'")
        env = make_env(env_id)
    try:
        d = env.action_space.shape[0]
    finally:
        env.close()
    zoo = dict(ZOO[env_id])
    zoo["max_kl"] = pytest.approx(d * zoo["max_kl"], rel=1e-12)
    zoo["cg_damping"] = pytest.approx(d * zoo["cg_damping"], rel=1e-12)
    actual = {name: getattr(config, name) for name in ZOO[env_id]}
    assert actual == zoo
    assert ACTION_DIMS.get(env_id, 1) == d


def test_the_translated_defaults_say_why():
    note = defaults_note("Hopper-v5")
    assert "δ = 0.03 and λ = 0.3" in note and "0.01 and 0.1 times the 3 action dimensions" in note
    assert "0.04 and 0.1 times the 6" in defaults_note("HalfCheetah-v5")
    assert defaults_note("InvertedPendulum-v5") is None and defaults_note("CartPole-v1") is None


def test_translated_settings_give_sb3_contribs_step():
    """sb3-contrib's update with KL/d: CG on (F/d + λ)s = g, scaled to sᵀ(F/d + λ)s = 2δ.
    Ours with d·δ and d·λ: (F + dλ)s = g, scaled to sᵀ(F + dλ)s = 2dδ. The same step,
    here with F explicit (float64) for a real Hopper policy on a batch of states."""
    from trpo_viz.trpo import TRPOTrainer
    from trpo_viz.trpo.fisher import ExactFisher

    config = default_config("Hopper-v5", **{**TINY, "hidden_sizes": (8,)})
    trainer = TRPOTrainer(config)
    try:
        rng = np.random.default_rng(0)
        obs = rng.standard_normal((64, trainer.observation_space.shape[0]))
        fisher = ExactFisher(trainer.policy).compute(obs)
        F = fisher.dense()
    finally:
        trainer.close()
    d, n = 3, len(F)
    g = rng.standard_normal(n)

    def step(matrix, max_kl):
        s = np.linalg.solve(matrix, g)
        return np.sqrt(2 * max_kl / (s @ matrix @ s)) * s

    sb3 = step(F / d + 0.1 * np.eye(n), 0.01)
    ours = step(F + config.cg_damping * np.eye(n), config.max_kl)
    np.testing.assert_allclose(ours, sb3, rtol=1e-9, atol=1e-12)
    untranslated = step(F + 0.1 * np.eye(n), 0.01)
    assert np.linalg.norm(untranslated - sb3) > 0.01 * np.linalg.norm(sb3)  # it matters


@pytest.fixture(scope="module")
def hopper():
    from trpo_viz.trpo import TRPOTrainer

    trainer = TRPOTrainer(default_config("Hopper-v5", **TINY))
    yield trainer
    trainer.close()


def _assert_finite_update(trainer):
    record = trainer.step()
    assert record.total_timesteps == TINY["n_steps"]
    assert record.step_status and record.cg_iterations >= 1
    numbers = [record.kl, record.surrogate_before, record.surrogate_after, record.gradient_norm,
               record.step_norm, record.entropy, record.value_loss, record.explained_variance,
               *record.cg_residuals]
    assert all(math.isfinite(x) for x in numbers), numbers
    assert 0 <= record.kl <= 1.5 * trainer.config.max_kl  # the line search keeps KL ≤ δ
    assert all(np.isfinite(p).all() for p in trainer._policy_numpy)
    return record


def test_one_update_on_hopper_is_finite(hopper):
    _assert_finite_update(hopper)


def test_one_update_on_inverted_pendulum_is_finite():
    from trpo_viz.trpo import TRPOTrainer

    trainer = TRPOTrainer(default_config("InvertedPendulum-v5", **TINY))
    try:
        record = _assert_finite_update(trainer)
        assert record.episode_returns  # the pole falls within 256 steps at first
    finally:
        trainer.close()


def test_hopper_rollout_renders_frames_or_says_why(hopper):
    try:
        frames = hopper.render_rollout(max_frames=6, size=(48, 64), every=2)  # states 0, 2, 4
    except RenderUnavailable as error:  # a machine without a working EGL or OSMesa
        note = str(error)
        assert note.startswith(NOTE_START)
        assert "killed by" not in note and "TensorFlow" not in note  # those are our bugs
        return
    assert 2 <= len(frames) <= 3
    for frame in frames:
        assert frame.dtype == np.uint8 and frame.shape == (48, 64, 3)
        assert frame.std() > 5  # a scene, not a blank image


def test_frames_show_the_states_they_were_given():
    """Two different states give different pictures; the same state, the same picture."""
    env = make_env("InvertedPendulum-v5")
    env.reset(seed=0)
    qpos = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.8]])  # the last one: pole tilted 0.8 rad
    qvel = np.zeros((3, 2))
    env.close()
    try:
        frames = render_states("InvertedPendulum-v5", qpos, qvel, size=(48, 64))
    except RenderUnavailable as error:
        pytest.skip(str(error))
    assert np.array_equal(frames[0], frames[1])
    assert np.abs(frames[0].astype(int) - frames[2]).sum() > 0


def test_a_renderer_that_fails_in_its_process_becomes_the_note(hopper, monkeypatch):
    """Forced failure: the rendering child's EGL refuses PYOPENGL_PLATFORM=osmesa."""
    monkeypatch.setenv("MUJOCO_GL", "egl")
    monkeypatch.setenv("PYOPENGL_PLATFORM", "osmesa")
    with pytest.raises(RenderUnavailable) as caught:
        hopper.render_rollout(max_frames=3)
    note = str(caught.value)
    assert note.startswith(NOTE_START + "MUJOCO_GL=egl: ImportError: Cannot use EGL")
    assert "Training is not affected" in note and len(note) <= 500


def test_no_backend_is_the_note_without_a_process(hopper, monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "disable")
    with pytest.raises(RenderUnavailable, match="^" + re.escape(NOTE_START) + "MUJOCO_GL=disable"):
        hopper.render_rollout(max_frames=3)


def test_a_crashed_renderer_is_named():
    crashed = subprocess.CompletedProcess([], -11, b"", b"")
    assert _child_failure(crashed) == "the rendering process was killed by SIGSEGV"
    note = render_unavailable_note("Hopper-v5", "x" * 2000)
    assert note.startswith(NOTE_START) and len(note) <= 500
    assert render_unavailable_note("CartPole-v1", "no pygame").startswith(
        "CartPole-v1 cannot be rendered on this machine: no pygame"
    )


def _python(code: str, **env) -> str:
    environ = {k: v for k, v in os.environ.items() if k not in env and k != "MUJOCO_GL"}
    environ.update({k: v for k, v in env.items() if v is not None})
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environ, timeout=120, check=True)
    return done.stdout.strip()


def test_importing_trpo_viz_sets_headless_defaults_and_keeps_the_users():
    code = "import os, trpo_viz; print(os.environ['MUJOCO_GL'], os.environ['SDL_VIDEODRIVER'])"
    backend, sdl = _python(code, SDL_VIDEODRIVER=None).split()
    assert sdl == "dummy" and backend in ("egl", "osmesa", "disable")
    assert _python(code, MUJOCO_GL="osmesa", SDL_VIDEODRIVER="x11") == "osmesa x11"


def test_a_mujoco_that_cannot_import_leaves_classic_control():
    """MUJOCO_GL=bogus makes ``import mujoco`` raise RuntimeError: no crash, no MuJoCo task."""
    out = _python(
        "from trpo_viz.trpo.config import available_envs, mujoco_unavailable_reason as why; "
        "print(available_envs()); print(why())",
        MUJOCO_GL="bogus",
    ).splitlines()
    assert out[0] == str(["CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCarContinuous-v0"])
    assert out[1].startswith("MuJoCo could not be imported (MUJOCO_GL=bogus): RuntimeError")


class _Unrenderable:
    def render_rollout(self, max_frames, size=None, every=1):
        raise RenderUnavailable(render_unavailable_note("Hopper-v5", "MUJOCO_GL=disable"))


def test_the_worker_stores_the_note_and_latest_rollout_returns_it(tmp_path):
    from trpo_viz.runs.store import RunStore
    from trpo_viz.runs.worker import _store_rollout, latest_rollout

    store = RunStore(tmp_path / "runs.db")
    try:
        run_id = store.create_run(default_config("Hopper-v5", **TINY), source="cli")
        assert latest_rollout(store, run_id) is None
        _store_rollout(store, run_id, _Unrenderable(), 9)
        rollout = latest_rollout(store, run_id)
        assert rollout.update == 9 and rollout.gif is None
        assert rollout.note.startswith(NOTE_START + "MUJOCO_GL=disable")
        store.put_media(run_id, "rollout", 19, b"GIF89a")  # a later picture wins
        assert latest_rollout(store, run_id).gif == b"GIF89a"
        assert latest_rollout(store, run_id).note is None
    finally:
        store.close()


def test_mujoco_warnings_go_to_python_not_to_a_log_file(tmp_path, monkeypatch):
    """HalfCheetah's model warns (deprecated settotalmass) on every make with mujoco 4."""
    monkeypatch.chdir(tmp_path)
    with pytest.warns(RuntimeWarning, match="^MuJoCo: .*settotalmass"):
        make_env("HalfCheetah-v5").close()
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()
