"""A sweep's plan: a grid of settings × seeds, parsed and checked before anything starts.

A grid maps keys to lists of values, written ``key=v1,v2,…`` (one ``--grid`` per key on
the command line). The keys a grid may vary:

=================  ======================================================================
``max_kl``         δ, the trust-region radius on the mean KL (alias ``delta``)
``cg_max_steps``   conjugate-gradient iterations (alias ``cg_iterations``)
``cg_damping``     damping λ added to the Fisher (alias ``damping``)
``batch_size``     transitions per update, n_envs × n_steps (sets n_steps; must divide)
``variant``        the TRPO variant, only when :class:`TRPOConfig` has a ``variant`` field
=================  ======================================================================

Every setting (one value per key) runs once per seed: a trial. The plan is refused,
with a :class:`GridError` naming the problem, for an unknown key, a value that is not
a number of the key's type, a duplicate, a setting the trainer would refuse, or more
than :data:`MAX_TRIALS` trials. Nothing here imports Ray; checking a setting imports
the TRPO configuration (and with it TensorFlow).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from dataclasses import dataclass

MAX_TRIALS = 200  # settings × seeds in one sweep
MAX_VALUES = 16  # values of one grid key
MAX_SEEDS = 50
MAX_KEYS = 5
MAX_TEXT = 2000  # characters of one grid or --set argument

# key -> (type, what it is); "variant" is added only when TRPOConfig has the field.
_KEYS: dict[str, tuple[type, str]] = {
    "max_kl": (float, "δ, the trust-region radius on the mean KL"),
    "cg_max_steps": (int, "conjugate-gradient iterations"),
    "cg_damping": (float, "damping λ added to the Fisher"),
    "batch_size": (int, "transitions per update (n_envs × n_steps)"),
}
ALIASES = {"delta": "max_kl", "cg_iterations": "cg_max_steps", "damping": "cg_damping"}
# Fields with their own flags or that identify a trial: not settable through --set.
_NOT_SETTABLE = ("env_id", "seed", "total_timesteps")


class GridError(ValueError):
    """A grid, seed count or fixed setting that cannot run; the message says why."""


def has_variants() -> bool:
    """Whether this TRPOConfig has a ``variant`` field (the ablation variants exist)."""
    from trpo_viz.trpo.config import TRPOConfig

    return any(f.name == "variant" for f in dataclasses.fields(TRPOConfig))


def grid_keys() -> dict[str, tuple[type, str]]:
    """The keys a grid may vary now: key -> (type, description)."""
    keys = dict(_KEYS)
    if has_variants():
        keys["variant"] = (str, "the TRPO variant (ablation)")
    return keys


def parse_value(key: str, text: str, kind: type):
    """One grid or --set value of type ``kind``; GridError says what was expected."""
    text = text.strip()
    if kind is bool:
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise GridError(f"{key}: {text!r} is not true or false")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise GridError(f"{key}: {text!r} is not a whole number") from None
    if kind is float:
        try:
            value = float(text)
        except ValueError:
            raise GridError(f"{key}: {text!r} is not a number") from None
        if not math.isfinite(value):
            raise GridError(f"{key}: {text!r} is not a finite number")
        return value
    if kind is tuple:  # hidden layer sizes: 64x64
        try:
            sizes = tuple(int(part) for part in text.lower().split("x"))
        except ValueError:
            raise GridError(f"{key}: {text!r} is not layer sizes such as 64x64") from None
        return sizes
    if not text or len(text) > 40 or not all(c.isalnum() or c in "-_." for c in text):
        raise GridError(f"{key}: {text!r} is not a name (letters, digits, - _ .)")
    return text


def parse_grid(items: list[str] | tuple[str, ...]) -> dict[str, tuple]:
    """``["max_kl=0.001,0.01", "cg_damping=0.1"]`` -> ``{"max_kl": (0.001, 0.01), …}``."""
    keys = grid_keys()
    grid: dict[str, tuple] = {}
    for item in items:
        if len(item) > MAX_TEXT:
            raise GridError(f"a grid argument has at most {MAX_TEXT} characters")
        name, sep, values_text = item.partition("=")
        name = name.strip().lower().replace("-", "_")
        name = ALIASES.get(name, name)
        if not sep or not name:
            raise GridError(f"grid entries look like max_kl=0.001,0.01, got {item!r}")
        if name not in keys:
            raise GridError(_unknown_key(name, keys))
        if name in grid:
            raise GridError(f"grid key {name} is given twice")
        kind = keys[name][0]
        values = tuple(parse_value(name, v, kind) for v in values_text.split(","))
        if len(values) > MAX_VALUES:
            raise GridError(f"{name}: at most {MAX_VALUES} values, got {len(values)}")
        duplicates = sorted({str(v) for v in values if values.count(v) > 1})
        if duplicates:
            raise GridError(f"{name} lists {', '.join(duplicates)} more than once")
        grid[name] = values
    if len(grid) > MAX_KEYS:
        raise GridError(f"a grid varies at most {MAX_KEYS} keys")
    return grid


def _unknown_key(name: str, keys: dict) -> str:
    known = ", ".join(keys)
    if name == "variant":
        return ("unknown grid key 'variant': this trpo-viz has no TRPO variants yet "
                f"(TRPOConfig has no 'variant' field); grid keys: {known}")
    return f"unknown grid key {name!r}; grid keys: {known} (aliases: " + ", ".join(
        f"{a}={k}" for a, k in ALIASES.items()) + ")"


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict:
    """Fixed settings for every trial, ``["n_steps=128", "hidden_sizes=16"]`` -> dict."""
    from trpo_viz.trpo.config import TRPOConfig

    fields = {f.name: f for f in dataclasses.fields(TRPOConfig)}
    defaults = TRPOConfig()
    out: dict = {}
    for item in items:
        if len(item) > MAX_TEXT:
            raise GridError(f"a --set argument has at most {MAX_TEXT} characters")
        name, sep, text = item.partition("=")
        name = name.strip().lower().replace("-", "_")
        if not sep or name not in fields or name in _NOT_SETTABLE:
            settable = ", ".join(n for n in fields if n not in _NOT_SETTABLE)
            raise GridError(f"--set takes name=value with a name among: {settable}; "
                            f"got {item!r}")
        out[name] = parse_value(name, text, type(getattr(defaults, name)))
    return out


@dataclass(frozen=True)
class Trial:
    """One run of the sweep: a setting (one value per grid key) and a seed."""

    index: int
    setting: dict
    seed: int
    config: object  # TRPOConfig

    @property
    def key(self) -> str:
        """Identity within the sweep: the setting and the seed, as canonical JSON."""
        return trial_key(self.setting, self.seed)

    @property
    def label(self) -> str:
        return setting_label(self.setting)


def trial_key(setting: dict, seed: int) -> str:
    return json.dumps({"setting": setting, "seed": seed}, sort_keys=True)


def setting_label(setting: dict) -> str:
    """``max_kl=0.01 · cg_damping=0.1`` (``default`` for a grid with no keys)."""
    if not setting:
        return "default"
    return " · ".join(f"{k}={_show(v)}" for k, v in setting.items())


def _show(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep runs: a task, a budget per trial, a grid, seeds and fixed settings."""

    env_id: str
    total_timesteps: int
    grid: dict  # key -> tuple of values, in the order given
    seeds: tuple[int, ...]
    overrides: dict = dataclasses.field(default_factory=dict)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(self.grid)

    def settings(self) -> list[dict]:
        """Every combination of the grid's values, the first key varying slowest."""
        return [dict(zip(self.grid, values, strict=True))
                for values in itertools.product(*self.grid.values())]

    def trials(self) -> list[Trial]:
        out = []
        for setting in self.settings():
            for seed in self.seeds:
                out.append(Trial(len(out), setting, seed, self.config(setting, seed)))
        return out

    def config(self, setting: dict, seed: int):
        """The TRPOConfig of one trial: the task's defaults, --set, then the setting."""
        from trpo_viz.trpo.config import default_config

        values = dict(self.overrides)
        for key, value in setting.items():
            if key == "batch_size":
                n_envs = values.get("n_envs", default_config(self.env_id).n_envs)
                if value % n_envs:
                    raise GridError(f"batch_size {value} is not a multiple of n_envs = {n_envs}")
                values["n_steps"] = value // n_envs
            else:
                values[key] = value
        return default_config(self.env_id, seed=seed, total_timesteps=self.total_timesteps,
                              **values)


def build_spec(env_id: str, total_timesteps: int | None, grid: dict, seeds: int,
               first_seed: int = 0, overrides: dict | None = None) -> SweepSpec:
    """A checked plan: every trial's configuration is valid and within the trainer's limits."""
    from trpo_viz.trpo.config import available_envs, default_config
    from trpo_viz.trpo.limits import RunLimitError, check_limits

    _check_env(env_id, available_envs())
    if not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
        raise GridError(f"seeds must be between 1 and {MAX_SEEDS}, got {seeds}")
    if not isinstance(first_seed, int) or not 0 <= first_seed < 2**31 - MAX_SEEDS:
        raise GridError(f"the first seed must be a non-negative integer, got {first_seed}")
    if total_timesteps is None:
        total_timesteps = default_config(env_id).total_timesteps
    if not isinstance(total_timesteps, int) or total_timesteps < 1:
        raise GridError(f"steps must be a positive whole number, got {total_timesteps}")
    overrides = dict(overrides or {})
    clash = sorted(set(overrides) & set(grid) | ({"n_steps"} & set(overrides)
                                                  if "batch_size" in grid else set()))
    if clash:
        raise GridError(f"{', '.join(clash)} is both fixed (--set) and varied by the grid")
    count = math.prod(len(v) for v in grid.values()) * seeds
    if count > MAX_TRIALS:
        raise GridError(f"the grid has {count} trials (settings × seeds); a sweep runs at "
                        f"most {MAX_TRIALS}")
    spec = SweepSpec(env_id, total_timesteps, dict(grid),
                     tuple(range(first_seed, first_seed + seeds)), overrides)
    for setting in spec.settings():
        try:
            check_limits(spec.config(setting, first_seed))
        except (ValueError, RunLimitError, TypeError) as error:
            where = "" if not setting else f" ({setting_label(setting)})"
            raise GridError(f"{error}{where}") from None
    return spec


def _check_env(env_id: str, tuned: list[str]) -> None:
    import gymnasium as gym

    if not isinstance(env_id, str) or len(env_id) > 100:
        raise GridError("the task must be a gymnasium id such as CartPole-v1")
    try:
        gym.spec(env_id)
    except Exception:  # noqa: BLE001 - gymnasium raises several error types for unknown ids
        raise GridError(f"unknown task {env_id!r} (tuned: {', '.join(tuned)})") from None
