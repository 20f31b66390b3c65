"""Stored runs to and from the zip archive (the export/import format of downloads and --save).

The archive is the one :meth:`TRPOTrainer.to_bytes` writes (config.json, records.json,
state.json, arrays.npz) plus ``slices.npz`` (every update's trust-region slice, keys
``"<update>/<array>"``). Importing validates the whole file before anything is written.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np

from trpo_viz.runs.store import RunStore
from trpo_viz.runs.validate import slice_from_npz, slice_to_npz


def export_run(store: RunStore, run_id: str) -> bytes:
    """The stored run as one zip archive (the trainer state when it has a checkpoint)."""
    info = store.run(run_id)
    records = store.records(run_id)
    files = {
        "config.json": json.dumps(json.loads(info.config_json), indent=1).encode(),
        "records.json": json.dumps([r.to_dict() for r in records]).encode(),
    }
    saved = store.checkpoint(run_id)
    if saved is not None and saved[0] == len(records) - 1:
        with zipfile.ZipFile(io.BytesIO(saved[1])) as checkpoint:
            for name in ("state.json", "arrays.npz"):
                files[name] = checkpoint.read(name)
    arrays = {}
    for update, data in store.slices(run_id).items():
        if update >= len(records):
            continue
        for key, value in slice_from_npz(data, records[update]).items():
            if key == "accepted":
                value = np.asarray(value if value is not None else [np.nan, np.nan], np.float64)
            arrays[f"{update}/{key}"] = np.asarray(value)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    files["slices.npz"] = buffer.getvalue()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def import_run(store: RunStore, data: bytes, name: str | None = None) -> str:
    """A new stored run from an archive; the file is validated first, nothing half-written."""
    from trpo_viz.trpo.live import read_run_file

    run = read_run_file(data)  # validates config, records and slices (raises ValueError)
    checkpoint = _checkpoint_from_archive(data) if run.records else None
    config = run.config
    run_id = store.create_run(config, name=name or f"{config.env_id} seed {config.seed} "
                              "(imported)", source="import", status="imported")
    try:
        last = len(run.records) - 1
        for record in run.records:
            plane = run.slices.get(record.update)
            store.append_update(run_id, record,
                                None if plane is None else slice_to_npz(plane),
                                checkpoint if record.update == last else None)
        store.set_status(run_id, "paused" if checkpoint is not None else "imported")
    except BaseException:
        store.delete(run_id)
        raise
    return run_id


def _checkpoint_from_archive(data: bytes) -> bytes | None:
    """config.json, state.json and arrays.npz as a checkpoint, if the archive has them."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = set(archive.namelist())
        needed = ("config.json", "state.json", "arrays.npz")
        if not set(needed) <= names:
            return None
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as checkpoint:
            for name in needed:
                checkpoint.writestr(name, archive.read(name))
    return out.getvalue()
