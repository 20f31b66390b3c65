"""The TRPO page's settings form: task and hyperparameters as typed, never clamped.

Number fields have no min/max: Streamlit would keep its last valid value when a typed one
is out of range. Every typed value reaches :func:`~trpo_viz.trpo.live.config_from_form`,
which applies it exactly or refuses it with a message naming the field and its range.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from app_parts import plain
from trpo_viz.trpo.config import (
    FVP_DTYPES,
    available_envs,
    default_config,
    defaults_note,
    mujoco_unavailable_reason,
)
from trpo_viz.trpo.live import (
    FORM_LABELS,
    FORM_RANGES,
    MAX_BATCH,
    MAX_HIDDEN,
    MAX_LAYERS,
    config_from_form,
    form_differences,
    parse_hidden_sizes,
)
from trpo_viz.trpo.variants import VARIANTS

VARIANT_NAMES = {"trpo": "TRPO", "npg": "npg (no line search)",
                 "no-kl-check": "no-kl-check (line search ignores the KL)",
                 "gradient": "gradient (no Fisher)",
                 "vanilla-pg": "vanilla-pg (no trust region)"}


@dataclass(frozen=True)
class Settings:
    """What the form holds: the task, the hidden-sizes text and every other value as typed."""

    env_id: str
    hidden: str
    values: dict

    def config(self):
        """The run config these settings ask for (FormError/RunLimitError if refused)."""
        return config_from_form(self.env_id, hidden_sizes=parse_hidden_sizes(self.hidden),
                                **self.values)

    def differences(self, config) -> list[str]:
        """The form's labels whose values differ from ``config`` (the task first)."""
        task = ["Task"] if self.env_id != config.env_id else []
        try:
            hidden = parse_hidden_sizes(self.hidden)
        except ValueError:
            return [*task, FORM_LABELS["hidden_sizes"]]
        return [*task, *form_differences(config, dict(self.values, hidden_sizes=hidden))]


BATCHES = (256, 512, 1024, 2048, 4096, MAX_BATCH)  # the "Steps per update" choices
CG_STEPS, SHRINK, BACKTRACKS = (1, 50), (0.1, 0.95), (0, 20)  # the sliders' ranges
FORM_START = "trpo_form_start"  # the config a fresh form starts from (None: task defaults)


def fits_form(config, envs) -> bool:
    """Whether every value of ``config`` can be shown by the form's widgets (sliders and
    choices have fixed ranges; a run made by the CLI or imported may lie outside them)."""
    return (config.env_id in envs and CG_STEPS[0] <= config.cg_max_steps <= CG_STEPS[1]
            and SHRINK[0] <= config.line_search_shrink <= SHRINK[1]
            and BACKTRACKS[0] <= config.max_backtracks <= BACKTRACKS[1]
            and config.batch_size in BATCHES
            and config.variant in VARIANTS and config.fvp_dtype in FVP_DTYPES)


def form_start(info, envs):
    """What the form starts from when this session draws it afresh: the shown run's own
    settings (a reload, a second tab or a link to a Hopper run shows Hopper's δ, not
    CartPole's defaults), or the task's defaults when no run is shown or the run's values
    do not fit the widgets. Kept for the session, so the form never jumps while in use."""
    if "trpo_env" not in st.session_state:  # the form is not on screen yet in this session
        config = info.config if info is not None else None
        st.session_state[FORM_START] = config if config is not None and fits_form(
            config, envs) else None
    return st.session_state.get(FORM_START)


def range_help(name: str, text: str) -> str:
    lo, hi = FORM_RANGES[name]
    return f"{text} From {lo:g} to {hi:g}; other values are refused, never replaced."


def settings_form(info) -> Settings:
    """The "Task and hyperparameters" expander (open while no run is shown)."""
    envs = available_envs()
    missing_mujoco = mujoco_unavailable_reason()
    start = form_start(info, envs)
    with st.expander("Task and hyperparameters", expanded=info is None):
        if info is not None:
            st.caption("These settings apply to a new run: press **New run**, then **Start**.")
        env_id = st.selectbox("Task", envs, key="trpo_env",
                              index=envs.index(start.env_id) if start is not None else 0)
        if missing_mujoco:
            st.caption(plain(f"MuJoCo tasks (Hopper-v5, …) are not listed: {missing_mujoco}."))
        defaults = start if start is not None and start.env_id == env_id else default_config(env_id)
        if (note := defaults_note(env_id)) is not None:
            st.caption(plain(note))
        c1, c2, c3, c4 = st.columns(4)
        max_kl = c1.number_input(
            "δ (max KL)",
            value=defaults.max_kl,
            step=0.001,
            format="%g",
            key=f"trpo_max_kl_{env_id}",
            help=range_help("max_kl", "Trust-region radius on the mean KL(π_old ‖ π)."),
        )
        cg_steps = c2.slider("CG iterations", *CG_STEPS, defaults.cg_max_steps,
                             key=f"trpo_cg_{env_id}")
        cg_damping = c3.number_input(
            "CG damping λ",
            value=defaults.cg_damping,
            step=0.001,
            format="%g",
            key=f"trpo_damping_{env_id}",
            help=range_help("cg_damping", "Added to the Fisher: CG solves (F + λI) s = g."),
        )
        seed = c4.number_input(
            "Seed", value=start.seed if start is not None else 0, step=1, key="trpo_seed",
            help=range_help("seed", "Random seed."),
        )
        c1, c2, c3, c4 = st.columns(4)
        shrink = c1.slider(
            "Line-search shrink", *SHRINK, defaults.line_search_shrink,
            key=f"trpo_shrink_{env_id}",
        )
        backtracks = c2.slider(
            "Max backtracks", *BACKTRACKS, defaults.max_backtracks, key=f"trpo_backtracks_{env_id}"
        )
        batch = c3.select_slider(
            "Steps per update", BATCHES,
            defaults.batch_size if defaults.batch_size in BATCHES else 1024,
            key=f"trpo_batch_{env_id}",
        )
        hidden = c4.text_input(
            "Hidden sizes",
            ", ".join(map(str, defaults.hidden_sizes)),
            key="trpo_hidden",
            help=f"Comma-separated layer sizes, e.g. 64, 64: at most {MAX_LAYERS} layers of "
            f"{MAX_HIDDEN} units.",
        )
        c1, c2, c3, c4 = st.columns(4)
        gamma = c1.number_input(
            "γ (discount)",
            value=defaults.gamma,
            step=0.001,
            format="%g",
            key=f"trpo_gamma_{env_id}",
            help=range_help("gamma", "Discount factor; 1 is undiscounted."),
        )
        lam = c2.number_input(
            "λ (GAE)",
            value=defaults.gae_lambda,
            step=0.01,
            format="%g",
            key=f"trpo_lambda_{env_id}",
            help=range_help("gae_lambda", "0: one-step TD advantages; 1: Monte Carlo returns."),
        )
        total_timesteps = c3.number_input(
            "Total timesteps",
            value=defaults.total_timesteps,
            step=10_000,
            key=f"trpo_total_{env_id}",
            help=range_help(
                "total_timesteps",
                "Training stops at the first update that reaches it (updates are whole batches).",
            ),
        )
        fvp_dtype = c4.selectbox(
            "FVP/CG precision",
            FVP_DTYPES,
            index=FVP_DTYPES.index(defaults.fvp_dtype),
            key="trpo_fvp_dtype",
            help="float64 computes the Fisher-vector products and CG in float64 (slower), so "
            "the CG residual curve follows exact-arithmetic CG further than float32 can.",
        )
        c1, c2, c3 = st.columns([2, 1, 2], vertical_alignment="bottom")
        variant = c1.selectbox(
            "Variant", VARIANTS, key="trpo_variant", format_func=lambda v: VARIANT_NAMES[v],
            index=VARIANTS.index(start.variant) if start is not None else 0,
            help="Which pieces of TRPO each update keeps: switch one off to show what it is "
            "for. npg: no line search; no-kl-check: the line search ignores the KL; gradient: "
            "the plain gradient instead of the natural one; vanilla-pg: a fixed learning rate "
            "and no trust region. Nothing is tuned to make TRPO look good.",
        )
        pg_lr = c2.number_input(
            "Learning rate (vanilla-pg)", value=defaults.pg_lr, step=0.1, format="%g",
            key="trpo_pg_lr", disabled=variant != "vanilla-pg",
            help=range_help("pg_lr", "vanilla-pg's step Δ = lr · g (other variants ignore it)."),
        )
        exact_fisher = c3.checkbox(
            "Exact Fisher beside CG", value=start is not None and start.exact_fisher,
            key="trpo_exact_fisher",
            help="Each update also builds the Fisher F exactly (float64, from per-sample "
            "Jacobians), solves (F + λI) s* = g and records CG's error against s* at every "
            "iteration and F's eigenvalues. A diagnostic: it changes no step. Allowed for "
            "small policies only (it costs about 0.25 s per update on CartPole's 64×64).",
        )
    n_envs = defaults.n_envs
    return Settings(env_id, hidden, dict(
        seed=int(seed), max_kl=float(max_kl), cg_max_steps=int(cg_steps),
        cg_damping=float(cg_damping), line_search_shrink=float(shrink),
        max_backtracks=int(backtracks), n_envs=n_envs, n_steps=max(1, batch // n_envs),
        gamma=float(gamma), gae_lambda=float(lam), total_timesteps=int(total_timesteps),
        fvp_dtype=fvp_dtype, variant=variant, pg_lr=float(pg_lr),
        exact_fisher=bool(exact_fisher),
    ))
