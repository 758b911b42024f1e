"""Reading and writing .safetensors files with NumPy only.

The format: an 8-byte little-endian header length N, N bytes of JSON
({name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}),
then the data area, where each tensor's little-endian bytes lie at [begin, end)
relative to the start of the area. The reference implementation requires the tensors
to tile the data area exactly (no gaps, no overlaps, nothing after the last one); this
reader checks the same, so a file it accepts is one `safetensors` accepts.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Mapping

import numpy as np

HEADER_LENGTH_BYTES = 8
MAX_HEADER_BYTES = 100_000_000  # the reference's limit, against absurd lengths
METADATA_KEY = "__metadata__"

# Format name -> little-endian NumPy dtype. BF16 has no NumPy dtype: it is read as
# uint16 and widened to float32 (its upper 16 bits) after loading.
DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}
# The reference writer's order: wider dtypes first, in this order within a width.
_WRITE_ORDER = ("U64", "I64", "F64", "F32", "U32", "I32", "BF16", "F16", "U16", "I16",
                "I8", "U8", "BOOL")
_SAVE_NAMES: dict[np.dtype, str] = {
    np.dtype(kind): name for kind, name in (
        ("f8", "F64"), ("f4", "F32"), ("f2", "F16"), ("i8", "I64"), ("i4", "I32"),
        ("i2", "I16"), ("i1", "I8"), ("u8", "U64"), ("u4", "U32"), ("u2", "U16"),
        ("u1", "U8"), ("?", "BOOL"))}


def load_safetensors(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """(tensors, metadata). Arrays are writable views into one buffer read in a single
    call; BF16 tensors come back as float32."""
    path = Path(path)
    with open(path, "rb") as f:
        file_size = os.fstat(f.fileno()).st_size
        prefix = f.read(HEADER_LENGTH_BYTES)
        if len(prefix) < HEADER_LENGTH_BYTES:
            raise ValueError(f"{path}: {file_size} bytes, too short for the "
                             f"{HEADER_LENGTH_BYTES}-byte header length")
        header_length = int.from_bytes(prefix, "little")
        if header_length > file_size - HEADER_LENGTH_BYTES or header_length > MAX_HEADER_BYTES:
            raise ValueError(f"{path}: header length {header_length} (bytes 0..7) goes beyond "
                             f"the file's {file_size} bytes")
        header_bytes = f.read(header_length)
        data = bytearray(file_size - HEADER_LENGTH_BYTES - header_length)
        if f.readinto(data) != len(data):
            raise ValueError(f"{path}: file shrank while being read")
    entries, metadata = _parse_header(path, header_bytes)
    data_start = HEADER_LENGTH_BYTES + header_length
    _check_tiling(path, entries, len(data), data_start)

    tensors = {}
    for name, (dtype_name, shape, begin, end) in entries.items():
        dtype = DTYPES[dtype_name]
        array = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=begin)
        array = array.reshape(shape)
        if not array.flags.aligned:
            array = array.copy()  # a writer that did not align; views would be slow
        if dtype_name == "BF16":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        elif dtype_name == "BOOL" and array.view(np.uint8).max(initial=0) > 1:
            raise ValueError(f"{path}: tensor {name!r} (BOOL, bytes {data_start + begin}.."
                             f"{data_start + end}) holds a byte other than 0 or 1")
        tensors[name] = array
    return tensors, metadata


def _parse_header(path: Path, header_bytes: bytes):
    """{name: (dtype, shape, begin, end)} and the metadata, every field checked."""
    try:
        header = json.loads(header_bytes.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: header is not UTF-8 (byte {HEADER_LENGTH_BYTES + error.start})"
                         ) from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: header is not valid JSON (byte "
                         f"{HEADER_LENGTH_BYTES + error.pos}: {error.msg})") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: header is a JSON {type(header).__name__}, not an object")

    metadata = header.pop(METADATA_KEY, {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise ValueError(f"{path}: {METADATA_KEY} must map strings to strings")

    entries = {}
    for name, entry in header.items():
        where = f"{path}: tensor {name!r}"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: header entry is not an object")
        missing = {"dtype", "shape", "data_offsets"} - entry.keys()
        if missing:
            raise ValueError(f"{where}: header entry lacks {sorted(missing)}")
        dtype_name, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype_name not in DTYPES:
            raise ValueError(f"{where}: unknown or unsupported dtype {dtype_name!r} "
                             f"(supported: {', '.join(DTYPES)})")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise ValueError(f"{where}: shape {shape!r} is not a list of non-negative integers")
        if not isinstance(offsets, list) or len(offsets) != 2 \
                or not all(_is_count(o) for o in offsets) or offsets[0] > offsets[1]:
            raise ValueError(f"{where}: data_offsets {offsets!r} is not [begin, end] with "
                             "0 <= begin <= end")
        begin, end = offsets
        expected = math.prod(shape) * DTYPES[dtype_name].itemsize
        if end - begin != expected:
            raise ValueError(f"{where}: shape {shape} of {dtype_name} needs {expected} bytes, "
                             f"but data_offsets {offsets} span {end - begin}")
        entries[name] = (dtype_name, tuple(shape), begin, end)
    return entries, metadata


def _check_tiling(path: Path, entries, data_size: int, data_start: int) -> None:
    """Tensors must cover the data area exactly once, in some order."""
    position, previous = 0, None
    for name, (_, _, begin, end) in sorted(entries.items(), key=lambda item: item[1][2:]):
        if end > data_size:
            raise ValueError(f"{path}: tensor {name!r} data_offsets [{begin}, {end}] reach "
                             f"beyond the data area of {data_size} bytes (file byte "
                             f"{data_start + end})")
        if begin < position:
            raise ValueError(f"{path}: tensor {name!r} data_offsets [{begin}, {end}] overlap "
                             f"tensor {previous!r}, which ends at {position}")
        if begin > position:
            raise ValueError(f"{path}: gap of {begin - position} unused bytes before tensor "
                             f"{name!r} (data offset {position})")
        position, previous = end, name
    if position != data_size:
        raise ValueError(f"{path}: {data_size - position} bytes after the last tensor are "
                         f"not described by the header (data offset {position})")


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def save_safetensors(path: str | Path, tensors: Mapping[str, np.ndarray],
                     metadata: Mapping[str, str] | None = None) -> None:
    """Write tensors contiguously, widest dtypes first then by name (so that every tensor
    starts aligned to its element size), after a header padded with spaces to a
    multiple of 8 bytes: the reference writer's layout, byte for byte. The file is written beside its
    destination and renamed, so an interrupted save never leaves a truncated file."""
    path = Path(path)
    if metadata is not None and not (isinstance(metadata, Mapping) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())):
        raise TypeError(f"{path}: metadata must map strings to strings")
    arrays = {}
    for name, array in tensors.items():
        if not isinstance(name, str) or not name or name == METADATA_KEY:
            raise ValueError(f"{path}: {name!r} cannot be a tensor name")
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{path}: tensor {name!r} is a {type(array).__name__}, "
                            "not a numpy.ndarray")
        dtype_name = _SAVE_NAMES.get(array.dtype.newbyteorder("="))
        if dtype_name is None:
            raise ValueError(f"{path}: tensor {name!r} has dtype {array.dtype}, which "
                             f"cannot be saved (supported: {', '.join(_SAVE_NAMES.values())})")
        arrays[name] = (dtype_name, np.asarray(array, dtype=DTYPES[dtype_name], order="C"))

    order = sorted(arrays, key=lambda name: (_WRITE_ORDER.index(arrays[name][0]), name))
    header: dict = {METADATA_KEY: dict(metadata)} if metadata else {}
    offset = 0
    for name in order:
        dtype_name, array = arrays[name]
        header[name] = {"dtype": dtype_name, "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    header_bytes = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    header_bytes += b" " * (-len(header_bytes) % 8)

    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as f:
        f.write(len(header_bytes).to_bytes(HEADER_LENGTH_BYTES, "little"))
        f.write(header_bytes)
        for name in order:
            f.write(arrays[name][1].reshape(-1).view(np.uint8).data)
    os.replace(partial, path)
