"""`python -m trpo_viz train` stores its run (to open in the browser) and writes TensorBoard."""

from __future__ import annotations

import json

import numpy as np

from trpo_viz.cli import main as cli_main
from trpo_viz.runs.store import RunStore, default_db_path

TINY = ["--env", "CartPole-v1", "--steps", "512", "--n-steps", "128", "--hidden", "16",
        "--value-epochs", "1", "--eval-episodes", "1", "--no-progress"]


def test_train_stores_a_named_run_and_writes_tensorboard_scalars(tmp_path, capsys):
    logdir = tmp_path / "tb"
    assert cli_main(["train", *TINY, "--name", "before the talk", "--logdir", str(logdir)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["status"] == "finished" and result["updates"] == 2
    with RunStore(default_db_path()) as store:
        info = store.run(result["run_id"])
        records = store.records(info.id)
        assert (info.name, info.source, info.status) == ("before the talk", "cli", "finished")
        assert [r.update for r in records] == [0, 1]
        assert sorted(store.slices(info.id)) == [0, 1]  # the browser can show every slice
        assert store.checkpoint(info.id)[0] == 1
    import tensorflow as tf

    scalars: dict[str, list[tuple[int, float]]] = {}
    for path in logdir.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                number = float(tf.make_ndarray(value.tensor))
                scalars.setdefault(value.tag, []).append((event.step, number))
                assert value.metadata.plugin_data.plugin_name == "scalars"
    assert {"trust_region/kl", "cg/final_residual", "line_search/backtracks",
            "policy/entropy", "value/explained_variance"} <= set(scalars)
    assert [step for step, _ in scalars["trust_region/kl"]] == [256, 512]
    kls = [value for _, value in scalars["trust_region/kl"]]
    np.testing.assert_allclose(kls, [r.kl for r in records], rtol=1e-6)


def test_train_refuses_a_bad_name_before_training(capsys):
    assert cli_main(["train", *TINY, "--name", "   "]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --name")
