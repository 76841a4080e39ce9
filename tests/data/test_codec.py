import pickle
import struct
import zlib

import msgpack
import numpy as np
import pytest

from foundation.data.codec import MAGIC, RecordDecodeError, decode_frame, encode_frame
from foundation.data.schema import Frame, InvalidFrame

from .helpers import full_frame, minimal_frame


@pytest.mark.parametrize(
    "frame",
    [full_frame(0), full_frame(3, natoms=1), minimal_frame()],
    ids=["full", "one-atom", "minimal"],
)
def test_round_trip_is_bit_exact(frame):
    decoded = decode_frame(encode_frame(frame))
    assert decoded.same_as(frame)
    assert (
        decoded.properties["site_charges"].dtype == np.float32
        if "site_charges" in frame.properties
        else True
    )


def test_encoding_is_deterministic():
    assert encode_frame(full_frame(1)) == encode_frame(full_frame(1))


def test_same_as_detects_a_changed_bit():
    a, b = full_frame(2), full_frame(2)
    b.positions[0, 0] = np.nextafter(b.positions[0, 0], np.inf)
    assert not a.same_as(b)


def test_pickle_payload_is_refused_without_unpickling():
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickle executed')",))

    with pytest.raises(RecordDecodeError, match="pickle"):
        decode_frame(pickle.dumps(Boom()))
    with pytest.raises(RecordDecodeError, match="pickle"):
        decode_frame(pickle.dumps({"numbers": [1]}, protocol=0))


HEADER = 5  # schema version (uint8), CRC32 of the body (uint32 LE)


def _body(record: bytes) -> dict:
    return msgpack.unpackb(record[len(MAGIC) + HEADER :])


def _record(body: dict, version: int = 2) -> bytes:
    """Record bytes with a valid checksum (version 1: the old layout, no header)."""
    packed = msgpack.packb(body)
    return (
        MAGIC + packed
        if version == 1
        else MAGIC + struct.pack("<BI", version, zlib.crc32(packed)) + packed
    )


def test_record_layout_is_magic_header_then_body():
    record = encode_frame(full_frame())
    version, crc = struct.unpack_from("<BI", record, len(MAGIC))
    assert version == 2 and crc == zlib.crc32(record[len(MAGIC) + HEADER :])
    assert _body(record)["schema_version"] == 2


def test_a_flipped_bit_anywhere_in_the_body_is_a_checksum_error():
    frame = full_frame()
    record = bytearray(encode_frame(frame))
    at = bytes(record).index(frame.positions.tobytes()) + 17  # inside the positions array
    record[at] ^= 0x04
    with pytest.raises(RecordDecodeError, match="checksum mismatch .*: the record is corrupt"):
        decode_frame(bytes(record))
    with pytest.raises(RecordDecodeError, match="checksum mismatch"):  # the stored CRC itself
        decode_frame(encode_frame(frame)[:5] + b"\0\0\0\0" + encode_frame(frame)[9:])


def test_schema_1_records_without_a_checksum_are_still_read():
    frame = full_frame(4)
    body = _body(encode_frame(frame))
    body["schema_version"] = 1
    assert decode_frame(_record(body, version=1)).same_as(frame)


def test_unknown_or_inconsistent_schema_versions_are_refused():
    body = _body(encode_frame(minimal_frame()))
    with pytest.raises(RecordDecodeError, match="unknown schema version 99"):
        decode_frame(_record(body, version=99))
    with pytest.raises(RecordDecodeError, match="schema version 2 in the body, 1 in the header"):
        decode_frame(_record(body, version=1))
    body["schema_version"] = 99
    with pytest.raises(RecordDecodeError, match="unknown schema version 99"):
        decode_frame(_record(body))


def test_object_dtype_and_bad_shapes_are_refused():
    body = _body(encode_frame(minimal_frame()))
    body["positions"]["dtype"] = "|O"
    with pytest.raises(RecordDecodeError, match="forbidden dtype"):
        decode_frame(_record(body))
    body = _body(encode_frame(minimal_frame()))
    body["positions"]["shape"] = [4, 3]
    with pytest.raises(RecordDecodeError, match="does not match"):
        decode_frame(_record(body))


def test_garbage_and_truncated_records_are_refused():
    with pytest.raises(RecordDecodeError, match="not a foundation record"):
        decode_frame(b"hello world")
    with pytest.raises(RecordDecodeError, match="checksum mismatch"):
        decode_frame(encode_frame(full_frame())[:-7])
    with pytest.raises(RecordDecodeError, match="truncated record"):
        decode_frame(encode_frame(full_frame())[:7])


@pytest.mark.parametrize(
    "mutate,reason",
    [
        (lambda f: setattr(f, "forces", np.zeros((2, 3))), "shape_mismatch"),
        (lambda f: f.positions.__setitem__((0, 0), np.nan), "non_finite"),
        (lambda f: setattr(f, "energy", float("inf")), "non_finite"),
        (lambda f: f.numbers.__setitem__(0, 0), "unknown_element"),
        (lambda f: f.numbers.__setitem__(0, 200), "unknown_element"),
        (lambda f: setattr(f, "structure_id", ""), "missing_id"),
    ],
)
def test_validate_names_the_reason(mutate, reason):
    frame = full_frame()
    mutate(frame)
    with pytest.raises(InvalidFrame) as info:
        frame.validate()
    assert info.value.reason == reason


def test_frames_coerce_to_canonical_dtypes():
    frame = Frame(
        numbers=[1, 1],
        positions=np.zeros((2, 3), np.float32),
        cell=np.eye(3),
        pbc=[1, 0, 0],
        frame_id="a",
        structure_id="b",
    )
    assert (
        frame.numbers.dtype == np.int64
        and frame.positions.dtype == np.float64
        and frame.pbc.dtype == bool
    )
