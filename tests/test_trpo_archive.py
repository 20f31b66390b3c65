"""Saved runs are validated on load: real archives round-trip, damaged ones are refused cleanly.

Every refusal is an :class:`ArchiveError` with one plain sentence; the fuzz test checks that
no mutation of a real archive gets through to the page as any other exception.
"""

import copy
import io
import json
import random
import shutil
import struct
import zipfile

import numpy as np
import pytest

from tests.stored_run import TrainedRun, train_stored_run
from trpo_viz.figures import trpo as figures
from trpo_viz.trpo import archive, saved_run
from trpo_viz.trpo.archive import PREFIX, ArchiveError
from trpo_viz.trpo.config import default_config
from trpo_viz.trpo.live import RunFile, RunLimitError, read_run_file
from trpo_viz.trpo.record import UpdateRecord
from trpo_viz.trpo.trainer import TRPOTrainer


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> TrainedRun:
    """Two updates of a small CartPole run, trained by the worker's loop into a real store."""
    config = default_config(
        "CartPole-v1", n_envs=2, n_steps=64, hidden_sizes=(8,), cg_max_steps=4, max_backtracks=3
    )
    return train_stored_run(config, tmp_path_factory.mktemp("archive-run"), updates=2)


@pytest.fixture(scope="module")
def saved(run) -> bytes:
    return run.archive  # export_run: what the library's download and `runs export` write


# --- helpers ----------------------------------------------------------------------------------


def unpack(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def pack(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def npz_arrays(raw: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def npz_bytes(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def with_json(data: bytes, name: str, mutate) -> bytes:
    """The archive with ``name`` parsed, changed by ``mutate(doc)`` (in place or returned)."""
    files = unpack(data)
    doc = json.loads(files[name])
    changed = mutate(doc)
    files[name] = json.dumps(doc if changed is None else changed).encode()
    return pack(files)


def with_slices(data: bytes, mutate) -> bytes:
    files = unpack(data)
    arrays = npz_arrays(files["slices.npz"])
    mutate(arrays)
    files["slices.npz"] = npz_bytes(arrays)
    return pack(files)


def refusal(load, data) -> str:
    with pytest.raises(ArchiveError) as caught:
        load(data)
    message = str(caught.value)
    assert message.startswith(PREFIX) and "\n" not in message
    return message


def page_summary(latest: UpdateRecord, record: UpdateRecord, n: int) -> str:
    """The f-strings pages/trpo.py formats for the shown and the inspected update."""
    return (
        f"**Update {latest.update + 1}** of {n} · {latest.total_timesteps:,} timesteps\n"
        f"- δ = {record.max_kl:g}, KL of the step = {record.kl:.3g}\n"
        f"- CG: {record.cg_iterations} iterations, {record.cg_stop_reason}\n"
        f"- sᵀFs = {record.sFs:.3g}, step scale β = {record.step_scale:.3g}\n"
        f"- backtracks: {record.backtracks}, "
        + ("accepted" if record.accepted else "**rejected: θ restored**")
        + f"\n- surrogate: expected {record.expected_improvement * record.step_fraction:.3g}, "
        f"actual {record.actual_improvement:.3g}\n"
        f"- entropy {record.entropy:.3g}, explained variance {record.explained_variance:.2f}"
    )


def render(replay: RunFile) -> None:
    """Everything talk mode draws for every update of a replayed run."""
    records = replay.records
    figures.learning_curve_figure(records)
    figures.trust_region_history_figure(records)
    for record in records:
        figures.cg_residuals_figure(record)
        figures.line_search_figure(record)
        page_summary(records[-1], record, len(records))
        json.dumps(record.metrics())
        plane = replay.slices.get(record.update)
        if plane is not None:
            figures.trust_region_slice_figure(plane)


# --- real archives load -----------------------------------------------------------------------


def test_a_saved_run_replays_and_renders(run, saved):
    replay = read_run_file(saved)
    assert [r.to_dict() for r in replay.records] == [r.to_dict() for r in run.records]
    assert replay.config == run.config
    assert sorted(replay.slices) == sorted(run.slices) == [0, 1]
    for update, plane in run.slices.items():
        for key in saved_run.SLICE_KEYS:
            if key == "accepted":
                assert replay.slices[update][key] == plane[key]
            else:
                np.testing.assert_array_equal(replay.slices[update][key], plane[key])
    render(replay)


def test_a_saved_trainer_loads_from_zip_and_directory(run, saved):
    for loaded in (TRPOTrainer.from_bytes(saved), TRPOTrainer.load(run.saved)):
        try:
            assert [r.to_dict() for r in loaded.records] == [r.to_dict() for r in run.records]
            assert loaded.total_timesteps == run.total_timesteps
            for mine, theirs in zip(loaded.policy.params, run.params, strict=True):
                np.testing.assert_array_equal(mine.numpy(), theirs)
            assert loaded.rng.bit_generator.state == run.rng_state
        finally:
            loaded.close()


def test_fields_added_since_the_first_format_are_optional(saved):
    """An archive of the first format (no newer optional fields) loads with their defaults."""
    data = with_json(
        saved,
        "records.json",
        lambda records: [
            {k: v for k, v in r.items() if k in saved_run.RECORD_FIELDS} for r in records
        ],
    )
    data = with_json(
        data,
        "config.json",
        lambda config: {k: v for k, v in config.items() if k in saved_run.REQUIRED_CONFIG_KEYS},
    )
    replay = read_run_file(data)
    defaults = UpdateRecord(update=0, total_timesteps=0)
    for record in replay.records:
        for name in set(vars(record)) - set(saved_run.RECORD_FIELDS):
            assert getattr(record, name) == getattr(defaults, name)
    render(replay)


def test_nan_where_it_is_legitimate_is_accepted(saved):
    def blank(records):
        records[1]["explained_variance"] = None
        records[1]["sFs"] = None
        records[1]["cg_residuals"][-1] = None
        records[1]["candidates"][-1]["kl"] = None

    replay = read_run_file(with_json(saved, "records.json", blank))
    assert np.isnan(replay.records[1].explained_variance)
    assert np.isnan(replay.records[1].cg_residuals[-1])
    render(replay)


def test_one_record_can_be_checked_on_its_own(run):
    """For stores that keep records one by one (the same rules as records.json)."""
    data = json.loads(json.dumps(run.records[1].to_dict()))
    assert saved_run.parse_record(data, 1).to_dict() == run.records[1].to_dict()
    with pytest.raises(ArchiveError, match="update 3: field 'update' must be 2"):
        saved_run.parse_record(data, 2)


# --- each documented rule refuses with its message -----------------------------------------


def _set(path, value):
    def mutate(doc):
        *parents, last = path
        target = doc
        for key in parents:
            target = target[key]
        if value is _DELETE:
            del target[last]
        else:
            target[last] = value

    return mutate


_DELETE = object()

RECORD_CASES = [
    ((1, "kl"), "hello", "records.json, update 2: field 'kl' must be a finite number, got 'hello'"),
    ((1, "candidates"), _DELETE, "records.json, update 2: field 'candidates' is missing"),
    ((1, "kl"), None, "field 'kl' must be a finite number, got null"),
    ((1, "update"), 5, "field 'update' must be 1"),
    ((1, "total_timesteps"), 1, "less than the update before's"),
    ((1, "cg_iterations"), True, "field 'cg_iterations' must be an integer, got true"),
    ((1, "backtracks"), 1.0, "field 'backtracks' must be an integer, got 1.0"),
    ((1, "step_fraction"), 1e300, "field 'step_fraction' must be in [0, 1]"),
    ((1, "accepted_index"), 4, "field 'accepted_index' must lie in [0, 3], got 4"),
    ((1, "cg_residuals"), [], "'cg_residuals' must have cg_iterations + 1"),
    ((1, "cg_curvatures"), [1.0] * 20, "'cg_curvatures' must have"),
    ((1, "episode_returns"), "12", "field 'episode_returns' must be a list, got '12'"),
    ((1, "episode_lengths"), [], "differ in length"),
    ((1, "candidates"), [], "'candidates' must have 1 to 1001 entries, got 0"),
    ((1, "candidates", 0), 3, "field 'candidates[0]' must be a JSON object, got 3"),
    ((1, "candidates", 0, "kl"), _DELETE, "field 'candidates[0].kl' is missing"),
    ((1, "candidates", 0, "fraction"), 0, "'candidates[0].fraction' must be positive"),
    ((1, "cg_stop_reason"), "![](http://x/y.png)", "'cg_stop_reason' must be a short name"),
    ((1, "entropy"), [], "field 'entropy' must be a number or null, got a list"),
    ((1, "wall_s"), -1, "field 'wall_s' must be in [0, inf]"),
    ((1,), 3, "records.json, update 2: must be a JSON object, got 3"),
]


@pytest.mark.parametrize("path, value, message", RECORD_CASES)
def test_a_bad_record_is_refused_with_one_message(saved, path, value, message):
    text = refusal(read_run_file, with_json(saved, "records.json", _set(path, value)))
    assert message in text


def test_records_must_agree_on_the_accepted_step(saved):
    def flip(records):
        records[0]["accepted"] = not records[0]["accepted"]

    assert "disagree" in refusal(read_run_file, with_json(saved, "records.json", flip))


CONFIG_CASES = [
    (("max_kl",), -1, "config.json: max_kl must be positive"),
    (("max_kl",), "0.01", "field 'max_kl' must be a finite number, got '0.01'"),
    (("bogus",), 1, "config.json: unknown setting 'bogus'"),
    (("gamma",), _DELETE, "config.json: setting 'gamma' is missing"),
    (("hidden_sizes",), [0], "field 'hidden_sizes[0]' must lie in [1, 4096], got 0"),
    (("hidden_sizes",), "64,64", "field 'hidden_sizes' must be a list"),
    (("env_id",), "os:Foo-v0", "field 'env_id' must be a gymnasium id"),
    (("n_envs",), 10**9, "field 'n_envs' must lie in [1, 256]"),
    (("normalize_obs",), 1, "field 'normalize_obs' must be true or false, got 1"),
    (("activation",), "gelu", "config.json: activation must be 'tanh' or 'relu'"),
]


@pytest.mark.parametrize("path, value, message", CONFIG_CASES)
def test_a_bad_config_is_refused_with_one_message(saved, path, value, message):
    assert message in refusal(read_run_file, with_json(saved, "config.json", _set(path, value)))


def _rename(old, new):
    return lambda arrays: arrays.update({new: arrays.pop(old)})


SLICE_CASES = [
    (_rename("0/alphas", "x/alphas"), "slices.npz: entry 'x/alphas' is not"),
    (_rename("0/alphas", "7/alphas"), "slices.npz: entry '7/alphas' is not"),
    (_rename("0/alphas", "00/alphas"), "slices.npz: entry '00/alphas' is not"),
    (lambda a: a.pop("0/kl"), "slices.npz, update 1: array 'kl' is missing"),
    (lambda a: a.update({"0/improvement": np.zeros((3, 3))}), "'improvement' must have shape"),
    (
        lambda a: a.update({"1/alphas": np.full(17, np.nan)}),
        "update 2: array 'alphas' must be finite",
    ),
    (lambda a: a.update({"0/alphas": np.zeros(1)}), "array 'alphas' must be a list of 2 to 257"),
    (lambda a: a.update({"0/candidates": np.zeros((4, 2), int)}), "must hold float32 or float64"),
    (lambda a: a.update({"0/candidates": np.zeros((9, 2))}), "'candidates' must have shape (4, 2)"),
    (lambda a: a.update({"0/max_kl": np.float64(-1)}), "max_kl must be positive"),
    (lambda a: a.update({"0/extra": np.zeros((4, 4, 4))}), "'extra' has an unexpected shape"),
]


@pytest.mark.parametrize("mutate, message", SLICE_CASES)
def test_a_bad_slice_is_refused_with_one_message(saved, mutate, message):
    assert message in refusal(read_run_file, with_slices(saved, mutate))


def test_a_slice_must_agree_with_its_record_on_the_accepted_step(run, saved):
    accepted = run.records[0].accepted
    replaced = np.array([np.nan, np.nan]) if accepted else np.array([0.5, 0.0])
    data = with_slices(saved, lambda a: a.update({"0/accepted": replaced}))
    assert "array 'accepted' must be" in refusal(read_run_file, data)


def test_pickled_arrays_are_refused_before_numpy_reads_them(saved):
    files = unpack(saved)
    buffer = io.BytesIO()
    np.savez(buffer, **{"0/alphas": np.array([{"a": 1}], dtype=object)})
    files["slices.npz"] = buffer.getvalue()
    assert "arrays must hold numbers, not object" in refusal(read_run_file, pack(files))


def test_an_npy_header_claiming_a_huge_shape_is_refused_before_allocation(saved):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
    )
    npz = io.BytesIO()
    with zipfile.ZipFile(npz, "w") as zf:
        zf.writestr("0/alphas.npy", header.getvalue() + b"\0" * 64)
    files = unpack(saved)
    files["slices.npz"] = npz.getvalue()
    assert "does not fit its data" in refusal(read_run_file, pack(files))


# --- trainer archives --------------------------------------------------------------------------


def _with_arrays(data, mutate):
    files = unpack(data)
    arrays = npz_arrays(files["arrays.npz"])
    mutate(arrays)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    files["arrays.npz"] = buffer.getvalue()
    return pack(files)


TRAINER_CASES = [
    (
        lambda d: _with_arrays(d, lambda a: a.pop("policy/0")),
        "arrays.npz: array 'policy/0' is missing",
    ),
    (
        lambda d: _with_arrays(d, lambda a: a.update({"policy/0": np.zeros((3, 3), np.float32)})),
        "array 'policy/0' must be float32 (4, 8) for this config's networks, got float32 (3, 3)",
    ),
    (
        lambda d: _with_arrays(d, lambda a: a.update({"policy/1": np.full(8, np.nan, np.float32)})),
        "array 'policy/1' must be finite",
    ),
    (
        lambda d: _with_arrays(d, lambda a: a.update({"junk": np.zeros(1)})),
        "unexpected array 'junk'",
    ),
    (
        lambda d: with_json(d, "state.json", _set(("total_timesteps",), "x")),
        "state.json: field 'total_timesteps' must be an integer, got 'x'",
    ),
    (
        lambda d: with_json(d, "state.json", _set(("rng_state",), {"bit_generator": "MT19937"})),
        "state.json: rng_state is not a PCG64 state",
    ),
    (
        lambda d: with_json(d, "config.json", _set(("env_id",), "NoSuchTask-v0")),
        "config.json: environment 'NoSuchTask-v0' cannot be made here",
    ),
]


@pytest.mark.parametrize("mutate, message", TRAINER_CASES)
def test_a_bad_trainer_archive_is_refused_with_one_message(saved, mutate, message):
    assert message in refusal(TRPOTrainer.from_bytes, mutate(saved))


def test_a_directory_with_a_missing_file_is_refused(run, tmp_path):
    shutil.copytree(run.saved, tmp_path / "run")
    (tmp_path / "run" / "state.json").unlink()
    assert "state.json is missing" in refusal(TRPOTrainer.load, tmp_path / "run")


# --- containers: not a zip, a foreign zip, bombs, encodings -----------------------------------


@pytest.mark.parametrize("data", [b"not a zip", b"", bytes(range(256)) * 10])
def test_a_file_that_is_not_a_zip_is_refused(data):
    message = refusal(read_run_file, data)
    assert "the file is not a zip archive" in message


def test_a_zip_of_something_else_is_refused_and_is_still_a_run_limit_error():
    with pytest.raises(RunLimitError, match="the file has no config.json and no records.json"):
        read_run_file(pack({"hello.txt": b"hi"}))


def test_a_zip_bomb_member_is_refused_by_its_size():
    bomb = pack({"config.json": b"{}", "records.json": b" " * (65 * 2**20)})
    assert len(bomb) < 2**20
    assert "records.json: is larger than 65536 KiB" in refusal(read_run_file, bomb)


def test_archives_unpacking_to_too_much_are_refused(monkeypatch, saved):
    monkeypatch.setattr(archive, "MAX_UNPACKED_BYTES", 2**20)
    files = unpack(saved) | {"padding": b"\0" * 2**20}
    assert "unpacks to more than 1 MiB" in refusal(read_run_file, pack(files))


def test_a_member_that_lies_about_its_size_is_refused(saved):
    files = unpack(saved)
    files["records.json"] = b" " * 2**20 + files["records.json"]
    data = bytearray(pack(files))
    # Declare 10 bytes uncompressed in both the local and the central header.
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = -1
        while (at := data.find(signature, at + 1)) >= 0:
            name_at = at + (30 if signature == b"PK\x03\x04" else 46)
            if bytes(data[name_at : name_at + 12]) == b"records.json":
                data[at + offset : at + offset + 4] = (10).to_bytes(4, "little")
    assert "cannot be read as a zip archive" in refusal(read_run_file, bytes(data))


def test_a_zip_with_too_many_entries_is_refused_before_it_is_parsed(saved):
    files = unpack(saved) | {f"e{i}": b"" for i in range(100)}
    assert "has more entries than a run file can have" in refusal(read_run_file, pack(files))


def test_a_zip64_directory_claiming_a_million_entries_is_refused_before_it_is_parsed():
    entries, directory_bytes = 10**6, 46 * 10**6
    zip64_end = struct.pack(
        "<4sQ2H2I4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, entries, entries, directory_bytes, 0
    )
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, 0, 1)
    end = struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    message = refusal(read_run_file, zip64_end + locator + end)
    assert "has more entries than a run file can have" in message


@pytest.mark.parametrize(
    "name, raw, message",
    [
        ("config.json", '{"seed": 1}'.encode("utf-16"), "config.json: is not UTF-8 text"),
        ("config.json", b'{"env_id": "caf\xe9"}', "config.json: is not UTF-8 text"),
        ("records.json", b"[" * 100_000, "records.json: is nested too deeply"),
        ("config.json", b'{"seed": ' + b"9" * 5000 + b"}", "config.json: is not valid JSON"),
        ("config.json", b'{"max_kl": NaN}', "is not valid JSON (NaN is not a JSON value)"),
        ("records.json", b"[1e999]", "records.json, update 1: must be a JSON object, got inf"),
        ("records.json", b"", "records.json: is not valid JSON"),
    ],
)
def test_json_that_is_not_plain_json_is_refused(saved, name, raw, message):
    files = unpack(saved) | {name: raw}
    assert message in refusal(read_run_file, pack(files))


# --- fuzz: random deletions, type swaps and truncations of a real archive --------------------

JUNK = [
    "hello", "", None, [], [1, "x"], {}, {"a": None}, True, False, 0, -1, 3.5, 10**30, 2**64,
    1e308, -1e308, float("nan"), "x" * 5000, [[[[]]]], "![](http://x/y.png)",
]  # fmt: skip


def _paths(node, path=()):
    yield path
    children = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, child in children:
        yield from _paths(child, (*path, key))


def mutate_json(doc, rng: random.Random):
    doc = copy.deepcopy(doc)
    path = rng.choice(list(_paths(doc)))
    if not path:
        return rng.choice(JUNK), "replace the whole document"
    *parents, last = path
    parent = doc
    for key in parents:
        parent = parent[key]
    target = parent[last]
    op = rng.choice(["delete", "swap", "swap", "truncate", "junk key"])
    if op == "delete":
        del parent[last]
    elif op == "truncate" and isinstance(target, list):
        del target[rng.randrange(len(target) + 1) :]
    elif op == "junk key" and isinstance(target, dict):
        target[rng.choice(["junk", "kl", "update", "0"])] = copy.deepcopy(rng.choice(JUNK))
    else:
        op = "swap"
        parent[last] = copy.deepcopy(rng.choice(JUNK))
    return doc, f"{op} at {path}"


def mutate_slices(arrays: dict, rng: random.Random) -> str:
    name = rng.choice(sorted(arrays))
    update, key = name.split("/")
    op = rng.choice(["delete", "rename", "reshape", "dtype", "nan", "inf", "empty", "big"])
    if op == "delete":
        del arrays[name]
    elif op == "rename":
        arrays[
            rng.choice(["x", "-1", "99", "01", update]) + "/" + rng.choice(["alphas", "zz", ""])
        ] = arrays.pop(name)
    elif op == "reshape":
        arrays[name] = np.zeros(rng.choice([(), (1,), (2,), (3, 3), (17,), (17, 17), (2, 2, 2)]))
    elif op == "dtype":
        arrays[name] = np.asarray(arrays[name]).astype(
            rng.choice([np.int64, np.bool_, np.float16, np.complex64])
        )
    elif op in ("nan", "inf"):
        arrays[name] = np.full(np.shape(arrays[name]), np.nan if op == "nan" else np.inf)
    elif op == "empty":
        arrays[name] = np.zeros((0,) * max(1, np.ndim(arrays[name])))
    else:
        arrays[name] = np.zeros(300)
    return f"{op} {name}"


def test_fuzzed_archives_either_load_and_render_or_are_refused(saved):
    rng = random.Random(20240607)
    files = unpack(saved)
    docs = {name: json.loads(files[name]) for name in ("config.json", "records.json")}
    slices = npz_arrays(files["slices.npz"])
    outcomes = {"loaded": 0, "refused": 0}
    for trial in range(200):
        mutated, what = dict(files), []
        for _ in range(rng.choice([1, 1, 1, 2])):
            target = rng.choices(["records.json", "config.json", "slices.npz"], [6, 2, 2])[0]
            if target == "slices.npz":
                arrays = npz_arrays(mutated["slices.npz"])
                what.append(f"slices.npz: {mutate_slices(arrays, rng)}")
                mutated["slices.npz"] = npz_bytes(arrays)
            else:
                doc, change = mutate_json(json.loads(mutated[target]), rng)
                what.append(f"{target}: {change}")
                mutated[target] = json.dumps(doc).encode()
        try:
            replay = read_run_file(pack(mutated))
            render(replay)
        except ArchiveError as error:
            assert str(error).startswith(PREFIX)
            outcomes["refused"] += 1
        except Exception as error:  # noqa: BLE001 - the failure names the mutation
            pytest.fail(f"trial {trial} ({'; '.join(what)}): {type(error).__name__}: {error}")
        else:
            outcomes["loaded"] += 1
    assert docs and slices  # the originals were parsed
    assert outcomes["loaded"] > 10 and outcomes["refused"] > 80, outcomes


def test_corrupted_bytes_are_refused_or_load(saved):
    """Random byte flips and truncations of the zip itself: refused cleanly, or harmless."""
    rng = random.Random(7)
    for trial in range(60):
        data = bytearray(saved)
        if rng.random() < 0.2:
            del data[rng.randrange(len(data)) :]
        else:
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            render(read_run_file(bytes(data)))
        except ArchiveError as error:
            assert str(error).startswith(PREFIX)
        except Exception as error:  # noqa: BLE001 - the failure names the trial
            pytest.fail(f"trial {trial}: {type(error).__name__}: {error}")
