"""A trainer's state without its records: what a stored run needs to resume.

The run store keeps every update's record in its own rows; a checkpoint adds the rest
of what :meth:`TRPOTrainer.to_bytes` writes (config, state.json, arrays.npz), so a
checkpoint per update costs the weights, not the whole history.
"""

from __future__ import annotations

import io
import json
import zipfile

from trpo_viz.trpo.record import UpdateRecord

STATE_FILES = ("config.json", "state.json", "arrays.npz")


def checkpoint_bytes(trainer) -> bytes:
    """config.json, state.json and arrays.npz of ``trainer`` as one zip (no records)."""
    files = trainer._state_files(records=False)  # the store holds the records
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name in STATE_FILES:
            archive.writestr(name, files[name])
    return buffer.getvalue()


def restore_trainer(checkpoint: bytes, records: list[UpdateRecord]):
    """A trainer from :func:`checkpoint_bytes` and the run's stored records."""
    from trpo_viz.trpo.trainer import TRPOTrainer

    with zipfile.ZipFile(io.BytesIO(checkpoint)) as archive:
        files = {name: archive.read(name) for name in STATE_FILES}
    files["records.json"] = json.dumps([r.to_dict() for r in records]).encode()
    return TRPOTrainer._from_state_files(files)
