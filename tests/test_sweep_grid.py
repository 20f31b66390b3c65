"""Sweep grids: parsing, checking, the trial plan, and the CLI's refusals (no Ray here)."""

from __future__ import annotations

import dataclasses

import pytest

from trpo_viz.sweep import command, engine, grid
from trpo_viz.sweep.grid import GridError, build_spec, parse_grid, parse_overrides
from trpo_viz.trpo.config import TRPOConfig

TINY = ["n_steps=128", "n_envs=2", "hidden_sizes=16", "value_epochs=1"]


def test_a_grid_parses_in_order_with_aliases():
    parsed = parse_grid(["max_kl=0.001,0.01", "cg_iterations=5,10", "damping=0.1"])
    assert parsed == {"max_kl": (0.001, 0.01), "cg_max_steps": (5, 10), "cg_damping": (0.1,)}
    assert list(parsed) == ["max_kl", "cg_max_steps", "cg_damping"]


def test_the_plan_is_the_product_of_settings_and_seeds():
    spec = build_spec("CartPole-v1", 512, parse_grid(["max_kl=0.01,0.05", "batch_size=256,512"]),
                      3, first_seed=7, overrides=parse_overrides(TINY[1:]))
    trials = spec.trials()
    assert len(trials) == 2 * 2 * 3
    assert [t.seed for t in trials[:3]] == [7, 8, 9]
    assert trials[0].setting == {"max_kl": 0.01, "batch_size": 256}
    assert trials[-1].setting == {"max_kl": 0.05, "batch_size": 512}
    config = trials[-1].config
    assert (config.max_kl, config.n_envs * config.n_steps, config.seed) == (0.05, 512, 9)
    assert config.total_timesteps == 512 and config.hidden_sizes == (16,)
    assert len({t.key for t in trials}) == len(trials)
    assert trials[0].label == "max_kl=0.01 · batch_size=256"


@pytest.mark.parametrize(
    "items, message",
    [
        (["learning_rate=0.1"], "unknown grid key 'learning_rate'"),
        (["max_kl"], "look like max_kl=0.001,0.01"),
        (["max_kl=0.01,abc"], "'abc' is not a number"),
        (["max_kl=nan"], "not a finite number"),
        (["cg_max_steps=2.5"], "not a whole number"),
        (["max_kl=0.01,0.01"], "more than once"),
        (["max_kl=0.1", "delta=0.2"], "given twice"),
        (["max_kl=" + ",".join(str(i + 1) for i in range(17))], "at most 16 values"),
    ],
)
def test_bad_grids_are_refused_with_the_reason(items, message):
    with pytest.raises(GridError, match=message):
        parse_grid(items)


def test_variant_becomes_a_grid_key_when_the_config_has_the_field(monkeypatch):
    """Checked dynamically: a TRPOConfig with a ``variant`` field makes it a grid key."""
    fields = dataclasses.fields(TRPOConfig)
    fake = type("Field", (), {"name": "variant"})()
    monkeypatch.setattr(grid.dataclasses, "fields", lambda cls: (*fields, fake))
    assert grid.has_variants()
    assert parse_grid(["variant=plain,no_line_search"]) == {"variant": ("plain",
                                                                        "no_line_search")}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(env_id="NoSuchTask-v0"), "unknown task 'NoSuchTask-v0'"),
        (dict(seeds=0), "seeds must be between 1 and"),
        (dict(total_timesteps=0), "steps must be a positive"),
        (dict(grid={"max_kl": (0.01, -0.1)}), "max_kl must be positive.*max_kl=-0.1"),
        (dict(grid={"batch_size": (255,)}), "not a multiple of n_envs"),
        (dict(grid={"max_kl": tuple(0.001 * (i + 1) for i in range(16))}, seeds=13),
         "208 trials.*at most 200"),
        (dict(overrides={"max_kl": 0.1}, grid={"max_kl": (0.01,)}), "both fixed"),
        (dict(total_timesteps=10**9), "total timesteps are limited"),
    ],
)
def test_plans_that_cannot_run_are_refused(kwargs, message):
    args = dict(env_id="CartPole-v1", total_timesteps=512, grid={}, seeds=2)
    args.update(kwargs)
    with pytest.raises(GridError, match=message):
        build_spec(args.pop("env_id"), args.pop("total_timesteps"), args.pop("grid"),
                   args.pop("seeds"), overrides=args.pop("overrides", None))


def test_fixed_settings_are_typed_and_limited_to_config_fields():
    assert parse_overrides(["n_steps=128", "hidden_sizes=32x32", "normalize_obs=true"]) == {
        "n_steps": 128, "hidden_sizes": (32, 32), "normalize_obs": True}
    for bad, message in [("seed=3", "--set takes"), ("n_steps=many", "not a whole number"),
                         ("hidden_sizes=a,b", "layer sizes"), ("nothing", "--set takes")]:
        with pytest.raises(GridError, match=message):
            parse_overrides([bad])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--grid", "learning_rate=0.1"], "unknown grid key 'learning_rate'"),
        (["--grid", "max_kl=0.01,x"], "'x' is not a number"),
        (["--grid", "max_kl=" + ",".join(f"0.0{i}" for i in range(1, 10)),
          "--grid", "cg_damping=0.1,0.2,0.3", "--seeds", "8"], "216 trials"),
        (["--env", "Nope-v9"], "unknown task"),
        (["--address", "not an address"], "HOST:PORT"),
        (["--address", "host:99999"], "HOST:PORT"),
        (["--workers", "0"], "--workers must be at least 1"),
        (["--seeds", "x"], "invalid int value"),
        (["--sweep-id", "../etc"], "not a sweep id"),
        (["--grid", "variant=trpo,bogus"], "variant must be one of"),
    ],
)
def test_the_cli_refuses_bad_input_with_one_line_before_anything_starts(
        argv, message, tmp_path, capsys, monkeypatch):
    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started for a refused sweep")

    monkeypatch.setattr(engine, "connect", no_ray)
    db = tmp_path / "runs.sqlite3"
    assert command.main(["--db", str(db), "--steps", "512", *argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
    assert captured.out == ""
    assert not db.exists()  # nothing stored


def test_python_m_trpo_viz_sweep_refuses_with_one_line(tmp_path, capsys, monkeypatch):
    """The same refusal through the project's CLI entry point (``python -m trpo_viz``)."""
    from trpo_viz.cli import main as cli_main

    monkeypatch.setattr(engine, "connect", lambda *a, **k: pytest.fail("Ray was started"))
    db = tmp_path / "runs.sqlite3"
    assert cli_main(["sweep", "--db", str(db), "--grid", "nope=1", "--seeds", "2"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown grid key 'nope'"), lines
    assert cli_main(["sweep", "--seeds"]) == 2  # argparse's own error: one line too
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not db.exists()


def test_variants_are_a_grid_key():
    """The ablation variants (TRPOConfig.variant) sweep like any other setting."""
    assert "variant" in grid.grid_keys()
    spec = build_spec("CartPole-v1", 2048, parse_grid(["variant=trpo,npg,vanilla-pg"]), 2)
    variants = sorted({t.config.variant for t in spec.trials()})
    assert variants == ["npg", "trpo", "vanilla-pg"] and len(spec.trials()) == 6
