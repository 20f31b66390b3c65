"""Reading untrusted files: bounded containers (zip, npz, JSON) and checks for JSON values.

Everything is bounded before it is parsed (a zip's directory and members, an npy's shape
read from its header, JSON nesting), so a hostile file can make loading neither slow nor
huge. The first problem found raises :class:`ArchiveError` with one plain sentence, e.g.
``not a trpo-viz run file: records.json, update 3: field 'kl' must be a finite number, got
'hello'``. What a saved run must contain is :mod:`trpo_viz.trpo.saved_run`.
"""

from __future__ import annotations

import io
import json
import math
import re
import struct
import zipfile
import zlib
from pathlib import Path
from typing import NoReturn

import numpy as np

try:  # a zip member may claim LZMA compression; its decoder raises its own error type
    from lzma import LZMAError
except ImportError:  # pragma: no cover - Python built without lzma
    LZMAError = OSError

PREFIX = "not a trpo-viz run file: "
MAX_UNPACKED_BYTES = 200 * 2**20  # all members of an archive together
MAX_MEMBER_BYTES = {
    "config.json": 64 * 2**10,
    "state.json": 64 * 2**10,
    "records.json": 64 * 2**20,
    "slices.npz": 64 * 2**20,
    "arrays.npz": 128 * 2**20,
}
RUN_FILES = ("config.json", "records.json")  # what a replay needs (plus slices.npz if present)
TRAINER_FILES = ("config.json", "records.json", "state.json", "arrays.npz")
MAX_LIST = 100_000  # entries of a JSON list checked by annotation
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.-]{0,64}")  # stop reasons, dtypes, modes (shown as text)


class ArchiveError(ValueError):
    """A saved run (zip, directory or one of its files) that this version cannot trust."""


WHOLE_FILE = "the file"  # ``where`` for the archive itself: "the file is not a zip archive"


def refuse(where: str, problem: str) -> NoReturn:
    """Raise the one-sentence :class:`ArchiveError` for ``where`` (a file, an update)."""
    raise ArchiveError(f"{PREFIX}{where}{' ' if where == WHOLE_FILE else ': '}{problem}")


def show(value) -> str:
    """A short JSON-ish rendering of an offending value for the message."""
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --- containers: zip, directory, npz --------------------------------------------------------


def _check_zip_directory(data: bytes, where: str, max_entries: int) -> None:
    """Bound a zip's central directory *before* :mod:`zipfile` parses it entry by entry.

    Mirrors zipfile's search for the end-of-central-directory record (and its zip64 form):
    without this, a 50 MiB file of empty entries costs seconds and hundreds of MiB to open.
    """
    at = data.rfind(b"PK\x05\x06", max(0, len(data) - 22 - 65535))
    if at < 0 or len(data) - at < 22:
        refuse(where, "is not a zip archive")
    entries, directory_bytes = struct.unpack_from("<HI", data, at + 10)
    if at >= 20 + 56 and data[at - 20 : at - 16] == b"PK\x06\x07":  # zip64 end record
        zip64 = at - 20 - 56
        if data[zip64 : zip64 + 4] != b"PK\x06\x06":
            refuse(where, "is not a readable zip archive (damaged zip64 record)")
        entries, directory_bytes = struct.unpack_from("<QQ", data, zip64 + 32)
    if entries > max_entries or directory_bytes > 512 * max_entries:
        refuse(where, f"has more entries than a run file can have ({max_entries})")


_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zlib.error,
    LZMAError,
    EOFError,
    OSError,
    NotImplementedError,  # an unsupported compression method
    RuntimeError,  # an encrypted member
    struct.error,
    ValueError,
)


def read_zip(data: bytes, required=RUN_FILES, optional=("slices.npz",)) -> dict[str, bytes]:
    """The named members of a zip archive, each within its size limit."""
    _check_zip_directory(data, WHOLE_FILE, max_entries=64)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = {info.filename: info for info in archive.infolist()}
            missing = [name for name in required if name not in infos]
            if missing:
                refuse(WHOLE_FILE, f"has no {' and no '.join(missing)} (is it a saved run?)")
            if sum(info.file_size for info in infos.values()) > MAX_UNPACKED_BYTES:
                refuse(WHOLE_FILE, f"unpacks to more than {MAX_UNPACKED_BYTES // 2**20} MiB")
            files = {}
            for name in (*required, *optional):
                if name in infos:
                    _check_size(name, infos[name].file_size)
                    with archive.open(infos[name]) as member:
                        files[name] = member.read(MAX_MEMBER_BYTES[name] + 1)
                    _check_size(name, len(files[name]))
    except ArchiveError:
        raise
    except _ZIP_ERRORS as error:
        refuse(WHOLE_FILE, f"cannot be read as a zip archive ({short(error)})")
    return files


def read_dir(path, names=TRAINER_FILES) -> dict[str, bytes]:
    """The named files of a saved-run directory, each within its size limit."""
    files = {}
    for name in names:
        file = Path(path) / name
        if not file.is_file():
            refuse(str(path), f"{name} is missing")
        _check_size(name, file.stat().st_size)
        files[name] = file.read_bytes()
        _check_size(name, len(files[name]))
    return files


def _check_size(name: str, size: int) -> None:
    if size > MAX_MEMBER_BYTES[name]:
        refuse(name, f"is larger than {MAX_MEMBER_BYTES[name] // 2**10} KiB")


def short(error: Exception) -> str:
    """An exception's message, shortened for a one-line refusal."""
    text = str(error) or type(error).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def read_npz(raw: bytes, where: str, max_arrays: int) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz``: plain numbers only (in native byte order), each no larger
    than its stored bytes.

    Each npy header is read first: its shape and dtype must fit the member's declared size
    (numpy would otherwise allocate the claimed shape before reading a byte of data).
    """
    _check_zip_directory(raw, where, max_arrays)
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as npz:
            infos = npz.infolist()
            if sum(info.file_size for info in infos) > MAX_UNPACKED_BYTES:
                refuse(where, f"unpacks to more than {MAX_UNPACKED_BYTES // 2**20} MiB")
            for info in infos:
                name = info.filename
                if not name.endswith(".npy") or name[:-4] in arrays:
                    refuse(where, f"unexpected entry {show(name)}")
                with npz.open(info) as member:
                    arrays[name[:-4]] = _read_npy(member, info.file_size, f"{where}: {name[:-4]}")
    except ArchiveError:
        raise
    except _ZIP_ERRORS as error:
        refuse(where, f"cannot be read as npz ({short(error)})")
    return arrays


def _read_npy(member, stored_bytes: int, where: str) -> np.ndarray:
    """One ``.npy`` stream: the header is checked before any data is read or allocated."""
    version = np.lib.format.read_magic(member)
    if version not in ((1, 0), (2, 0)):
        refuse(where, f"unsupported npy version {version}")
    read_header = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
    shape, fortran_order, dtype = read_header(member)
    if dtype.kind not in "biuf" or dtype.names or dtype.shape:
        refuse(where, f"arrays must hold numbers, not {dtype}")
    size = math.prod(shape) * dtype.itemsize
    if size > stored_bytes:
        refuse(where, f"shape {shape} does not fit its data")
    data = member.read(size)
    if len(data) != size:
        refuse(where, "the data ends early")
    array = np.frombuffer(bytearray(data), dtype).reshape(
        shape, order="F" if fortran_order else "C"
    )
    return array.astype(dtype.newbyteorder("="), copy=False)


def load_json(raw: bytes, name: str):
    """Strict JSON from UTF-8 bytes: no NaN/Infinity literals, bounded nesting."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        refuse(name, "is not UTF-8 text")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        refuse(name, "is nested too deeply")
    except ValueError as error:  # JSONDecodeError; an integer of over 4300 digits
        refuse(name, f"is not valid JSON ({short(error)})")


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


# --- values -----------------------------------------------------------------------------------


def integer(lo: int, hi: int):
    """An int (not a bool) in [lo, hi]."""

    def check(value, where, field):
        if isinstance(value, bool) or not isinstance(value, int):
            refuse(where, f"field {field!r} must be an integer, got {show(value)}")
        if not lo <= value <= hi:
            refuse(where, f"field {field!r} must lie in [{lo}, {hi}], got {show(value)}")
        return value

    check.bounds = (lo, hi)  # for list_of's fast path
    return check


def _to_float(value, where, field, kind) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        refuse(where, f"field {field!r} must be {kind}, got {show(value)}")
    try:
        return float(value)
    except OverflowError:  # an integer beyond float range
        return math.inf if value > 0 else -math.inf


def finite(lo: float = -math.inf, hi: float = math.inf, positive: bool = False):
    """A number that must be finite (ints are accepted and become floats)."""

    def check(value, where, field):
        x = _to_float(value, where, field, "a finite number")
        if not math.isfinite(x):
            refuse(where, f"field {field!r} must be a finite number, got {show(value)}")
        if not lo <= x <= hi or (positive and not x > 0):
            bounds = "positive" if positive else f"in [{lo:g}, {hi:g}]"
            refuse(where, f"field {field!r} must be {bounds}, got {show(value)}")
        return x

    return check


def nullable(value, where, field):
    """A number where NaN/±Inf are legitimate (saved as null); non-finite values become NaN."""
    if value is None:
        return math.nan
    x = _to_float(value, where, field, "a number or null")
    return x if math.isfinite(x) else math.nan


def boolean(value, where, field):
    """true or false (not 0 or 1)."""
    if not isinstance(value, bool):
        refuse(where, f"field {field!r} must be true or false, got {show(value)}")
    return value


def text(pattern: re.Pattern, what: str):
    """A string matching ``pattern`` in full (bounded by the pattern)."""

    def check(value, where, field):
        if not isinstance(value, str) or not pattern.fullmatch(value):
            refuse(where, f"field {field!r} must be {what}, got {show(value)}")
        return value

    return check


identifier = text(_IDENTIFIER, "a short name (letters, digits, _.-)")


def list_of(item, max_len: int, min_len: int = 0):
    """A list of min_len … max_len entries, each checked by ``item``."""

    def check(value, where, field):
        if not isinstance(value, list):
            refuse(where, f"field {field!r} must be a list, got {show(value)}")
        if not min_len <= len(value) <= max_len:
            refuse(
                where, f"field {field!r} must have {min_len} to {max_len} entries, got {len(value)}"
            )
        # The common cases without a call per element:
        if item is nullable and all(type(x) is float and math.isfinite(x) for x in value):
            return list(value)
        lo, hi = getattr(item, "bounds", (1, 0))
        if all(type(x) is int and lo <= x <= hi for x in value):
            return list(value)
        return [item(x, where, f"{field}[{i}]") for i, x in enumerate(value)]

    return check


def by_annotation(annotation: str):
    """A check for a dataclass field this module has no explicit rule for (added later)."""
    base = annotation.replace(" ", "")
    optional = base.endswith("|None")
    base = base.removesuffix("|None")
    check = {
        "int": integer(-(2**63), 2**63 - 1),
        "float": nullable,
        "bool": boolean,
        "str": identifier,
        "list[float]": list_of(nullable, MAX_LIST),
        "list[int]": list_of(integer(-(2**63), 2**63 - 1), MAX_LIST),
    }.get(base, scalar)
    if optional:  # e.g. float | None: None stays None (the dataclass's "not recorded")
        return lambda value, where, field: None if value is None else check(value, where, field)
    return check


def scalar(value, where, field):
    """Any JSON scalar (for an annotation this version does not know how to check)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return nullable(value, where, field)
    return identifier(value, where, field)
