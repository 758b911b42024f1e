"""TensorBoard event files written by hand: no torch, no tensorflow, no protobuf.

    writer = EventFileWriter("checkpoints/run/tensorboard")
    writer.add_scalars(step=10, scalars={"val_accuracy": 0.5, "seconds/step": 1.2})
    writer.close()

A file `events.out.tfevents.TIME.HOST.PID.N` is a sequence of records: the payload's
length (uint64, little-endian), the masked CRC32C of those 8 bytes (uint32), the payload,
the masked CRC32C of the payload. Each payload is a serialized `Event` protobuf: wall_time
(double, field 1), step (int64, field 2), and either file_version (string, field 3; the
first event of a file, "brain.Event:2") or summary (message, field 5: repeated Value,
field 1, each a tag (string, field 1) and simple_value (float, field 2)).
"""
from __future__ import annotations

import itertools
import os
import socket
import struct
import time

# ----------------------------------------------------------------------------- CRC32C


def _crc32c_table() -> tuple:
    """The byte table of CRC32C (Castagnoli), reflected polynomial 0x82F63B78."""
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC32C_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC32C of `data`: crc32c(b"123456789") == 0xE3069283."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The CRC as TFRecord stores it: rotated right by 15 bits plus a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# ----------------------------------------------------------------------------- protobuf

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


def varint(n: int) -> bytes:
    """Base-128 varint; a negative int64 as its 64-bit two's complement (10 bytes)."""
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def field_int64(field: int, n: int) -> bytes:
    return _key(field, _VARINT) + varint(n)


def field_double(field: int, x: float) -> bytes:
    return _key(field, _FIXED64) + struct.pack("<d", x)


def field_float(field: int, x: float) -> bytes:
    return _key(field, _FIXED32) + struct.pack("<f", x)


def field_bytes(field: int, data: bytes | str) -> bytes:
    """A string, bytes or an embedded message (length-delimited)."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return _key(field, _BYTES) + varint(len(data)) + data


def event(wall_time: float, step: int, file_version: str | None = None, scalars: dict | None = None) -> bytes:
    """A serialized `Event`: the file's version line, or a summary of scalar values."""
    out = field_double(1, wall_time) + field_int64(2, step)
    if file_version is not None:
        out += field_bytes(3, file_version)
    if scalars:
        values = b"".join(field_bytes(1, field_bytes(1, tag) + field_float(2, value))
                          for tag, value in scalars.items())
        out += field_bytes(5, values)
    return out


def record(payload: bytes) -> bytes:
    """One TFRecord: length, its masked CRC, the payload, its masked CRC."""
    length = struct.pack("<Q", len(payload))
    return (length + struct.pack("<I", masked_crc32c(length)) + payload
            + struct.pack("<I", masked_crc32c(payload)))


# ----------------------------------------------------------------------------- files

_FILE_NUMBER = itertools.count()   # two writers of one process in one second get distinct files


class EventFileWriter:
    """A new events file in `folder` (made if missing); each call appends and flushes."""

    def __init__(self, folder: str):
        os.makedirs(folder, exist_ok=True)
        name = (f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}."
                f"{os.getpid()}.{next(_FILE_NUMBER)}")
        self.path = os.path.join(folder, name)
        self._file = open(self.path, "ab")
        self._write(event(time.time(), 0, file_version="brain.Event:2"))

    def add_scalars(self, step: int, scalars: dict, wall_time: float | None = None) -> None:
        self._write(event(time.time() if wall_time is None else wall_time, step, scalars=scalars))

    def _write(self, payload: bytes) -> None:
        self._file.write(record(payload))
        self._file.flush()

    def close(self) -> None:
        self._file.close()
