"""Record encoding without pickle: a magic prefix, a header (schema version, CRC32 of the body), then one msgpack
map of plain values.

Arrays travel as {"dtype", "shape", "data"} with dtypes from a closed allow-list and raw little-endian bytes,
so decoding a record from a stranger runs no code. The checksum is verified on every decode, so a flipped bit in
a shard is an error naming the record, not a silently wrong label. Schema 1 records (no header, no checksum) are
still read. The same bytes are an LMDB value and a WebDataset sample.
"""

from __future__ import annotations

import math
import struct
import zlib
from typing import Any

import msgpack
import numpy as np

from foundation.data.schema import ARRAY_DTYPES, READABLE_SCHEMA_VERSIONS, SCHEMA_VERSION, Frame
from foundation.errors import UserError

MAGIC = b"FNDR"
_ALLOWED_DTYPES = {
    name: np.dtype(name) for name in ("<f8", "<f4", "<i8", "<i4", "|b1", "|u1", "<u2", "<i2")
}
_ARRAY_FIELDS = tuple(ARRAY_DTYPES)
_SCALAR_FIELDS = ("energy", "frame_id", "structure_id", "source")
_PICKLE_PREFIXES = (b"\x80", b"(", b"c__builtin__", b"ccopy_reg")
_HEADER = struct.Struct("<BI")  # schema version, CRC32 of the msgpack body
_MSGPACK_MAP_STARTS = frozenset(range(0x80, 0x90)) | {
    0xDE,
    0xDF,
}  # what a schema-1 record has after MAGIC


class RecordDecodeError(UserError, ValueError):
    """Bytes that are not a valid foundation record (wrong magic, unknown schema, malformed, or a pickle)."""


def _pack_array(a: np.ndarray) -> dict[str, Any]:
    a = np.ascontiguousarray(a)
    dtype = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
    if dtype.str not in _ALLOWED_DTYPES:
        raise TypeError(
            f"array dtype {a.dtype} cannot be stored; allowed: {sorted(_ALLOWED_DTYPES)}"
        )
    return {
        "dtype": dtype.str,
        "shape": list(a.shape),
        "data": a.astype(dtype, copy=False).tobytes(),
    }


def _unpack_array(d: Any, name: str) -> np.ndarray:
    if not isinstance(d, dict) or set(d) != {"dtype", "shape", "data"}:
        raise RecordDecodeError(f"field {name!r} is not an encoded array")
    dtype, shape, data = d["dtype"], d["shape"], d["data"]
    if dtype not in _ALLOWED_DTYPES or not isinstance(data, bytes) or not isinstance(shape, list):
        raise RecordDecodeError(
            f"field {name!r} has a forbidden dtype or malformed payload ({dtype!r})"
        )
    dt = _ALLOWED_DTYPES[dtype]
    if not all(isinstance(s, int) and s >= 0 for s in shape) or math.prod(
        shape
    ) * dt.itemsize != len(data):
        raise RecordDecodeError(
            f"field {name!r}: shape {shape} does not match {len(data)} bytes of {dtype}"
        )
    return np.frombuffer(data, dtype=dt).reshape(shape).copy()


def _pack_property(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return {"array": _pack_array(v)}
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return float(v)
    if isinstance(v, str):
        return v
    raise TypeError(f"property value of type {type(v).__name__} cannot be stored")


def _unpack_property(name: str, v: Any) -> Any:
    if isinstance(v, dict):
        if set(v) != {"array"}:
            raise RecordDecodeError(f"property {name!r} is malformed")
        return _unpack_array(v["array"], f"properties.{name}")
    if not isinstance(v, (bool, int, float, str)):
        raise RecordDecodeError(f"property {name!r} has unsupported type {type(v).__name__}")
    return v


def encode_frame(frame: Frame) -> bytes:
    """Encode a frame into record bytes (deterministic: same frame, same bytes)."""
    body: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    for name in _ARRAY_FIELDS:
        value = getattr(frame, name)
        if value is not None:
            body[name] = _pack_array(value)
    for name in _SCALAR_FIELDS:
        value = getattr(frame, name)
        if value is not None:
            body[name] = value
    body["properties"] = {k: _pack_property(frame.properties[k]) for k in sorted(frame.properties)}
    packed = msgpack.packb(body, use_bin_type=True)
    return MAGIC + _HEADER.pack(SCHEMA_VERSION, zlib.crc32(packed)) + packed


def _checked_body(buf: bytes) -> tuple[int, bytes]:
    """(schema version, msgpack body) of record bytes that start with MAGIC; verifies the body's CRC32."""
    rest = buf[len(MAGIC) :]
    if rest[:1] and rest[0] in _MSGPACK_MAP_STARTS:
        return 1, rest  # schema 1: no header, no checksum
    if len(rest) < _HEADER.size:
        raise RecordDecodeError(f"truncated record ({len(buf)} bytes)")
    version, stored = _HEADER.unpack_from(rest)
    if version not in READABLE_SCHEMA_VERSIONS or version < 2:  # schema 1 has no header
        raise RecordDecodeError(
            f"unknown schema version {version} (this build reads {READABLE_SCHEMA_VERSIONS})"
        )
    body = rest[_HEADER.size :]
    actual = zlib.crc32(body)
    if actual != stored:
        raise RecordDecodeError(
            f"checksum mismatch (stored CRC32 {stored:08x}, computed {actual:08x}): "
            "the record is corrupt"
        )
    return version, body


def decode_frame(buf: bytes | memoryview) -> Frame:
    """Decode record bytes into a Frame; raise RecordDecodeError for anything that is not this encoding."""
    buf = bytes(buf)
    if not buf.startswith(MAGIC):
        if buf.startswith(_PICKLE_PREFIXES):
            raise RecordDecodeError(
                "payload looks like a Python pickle; foundation never unpickles records"
            )
        raise RecordDecodeError(f"not a foundation record (starts with {buf[:8]!r})")
    header_version, packed = _checked_body(buf)
    try:
        body = msgpack.unpackb(
            packed, raw=False, strict_map_key=True, use_list=True, ext_hook=_refuse_ext
        )
    except RecordDecodeError:
        raise
    except Exception as exc:  # msgpack raises several types for malformed input
        raise RecordDecodeError(f"malformed record body: {exc}") from None
    if not isinstance(body, dict):
        raise RecordDecodeError("record body is not a map")
    version = body.pop("schema_version", None)
    if version not in READABLE_SCHEMA_VERSIONS:
        raise RecordDecodeError(
            f"unknown schema version {version!r} (this build reads {READABLE_SCHEMA_VERSIONS})"
        )
    if version != header_version:
        raise RecordDecodeError(
            f"schema version {version!r} in the body, {header_version} in the header"
        )
    unknown = set(body) - set(_ARRAY_FIELDS) - set(_SCALAR_FIELDS) - {"properties"}
    if unknown:
        raise RecordDecodeError(f"unknown record fields {sorted(unknown)}")
    kwargs: dict[str, Any] = {n: _unpack_array(body[n], n) for n in _ARRAY_FIELDS if n in body}
    for name in _SCALAR_FIELDS:
        if name in body:
            kwargs[name] = body[name]
    props = body.get("properties", {})
    if not isinstance(props, dict):
        raise RecordDecodeError("properties is not a map")
    kwargs["properties"] = {k: _unpack_property(k, v) for k, v in props.items()}
    missing = {"numbers", "positions", "cell", "pbc", "frame_id", "structure_id"} - set(kwargs)
    if missing:
        raise RecordDecodeError(f"record lacks required fields {sorted(missing)}")
    return Frame(**kwargs)


def _refuse_ext(code: int, data: bytes) -> None:
    raise RecordDecodeError(f"msgpack extension type {code} is not part of the record encoding")
