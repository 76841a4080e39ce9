import pickle

import msgpack
import numpy as np
import pytest

from foundation.data.codec import MAGIC, RecordDecodeError, decode_frame, encode_frame
from foundation.data.schema import Frame, InvalidFrame

from .helpers import full_frame, minimal_frame


@pytest.mark.parametrize("frame", [full_frame(0), full_frame(3, natoms=1), minimal_frame()], ids=["full", "one-atom", "minimal"])
def test_round_trip_is_bit_exact(frame):
    decoded = decode_frame(encode_frame(frame))
    assert decoded.same_as(frame)
    assert decoded.properties["site_charges"].dtype == np.float32 if "site_charges" in frame.properties else True


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


def test_unknown_schema_version_is_refused():
    body = msgpack.unpackb(encode_frame(minimal_frame())[len(MAGIC):])
    body["schema_version"] = 99
    with pytest.raises(RecordDecodeError, match="unknown schema version 99"):
        decode_frame(MAGIC + msgpack.packb(body))


def test_object_dtype_and_bad_shapes_are_refused():
    body = msgpack.unpackb(encode_frame(minimal_frame())[len(MAGIC):])
    body["positions"]["dtype"] = "|O"
    with pytest.raises(RecordDecodeError, match="forbidden dtype"):
        decode_frame(MAGIC + msgpack.packb(body))
    body = msgpack.unpackb(encode_frame(minimal_frame())[len(MAGIC):])
    body["positions"]["shape"] = [4, 3]
    with pytest.raises(RecordDecodeError, match="does not match"):
        decode_frame(MAGIC + msgpack.packb(body))


def test_garbage_and_truncated_records_are_refused():
    with pytest.raises(RecordDecodeError, match="not a foundation record"):
        decode_frame(b"hello world")
    with pytest.raises(RecordDecodeError, match="malformed"):
        decode_frame(encode_frame(full_frame())[:-7])


@pytest.mark.parametrize("mutate,reason", [
    (lambda f: setattr(f, "forces", np.zeros((2, 3))), "shape_mismatch"),
    (lambda f: f.positions.__setitem__((0, 0), np.nan), "non_finite"),
    (lambda f: setattr(f, "energy", float("inf")), "non_finite"),
    (lambda f: f.numbers.__setitem__(0, 0), "unknown_element"),
    (lambda f: f.numbers.__setitem__(0, 200), "unknown_element"),
    (lambda f: setattr(f, "structure_id", ""), "missing_id"),
])
def test_validate_names_the_reason(mutate, reason):
    frame = full_frame()
    mutate(frame)
    with pytest.raises(InvalidFrame) as info:
        frame.validate()
    assert info.value.reason == reason


def test_frames_coerce_to_canonical_dtypes():
    frame = Frame(numbers=[1, 1], positions=np.zeros((2, 3), np.float32), cell=np.eye(3), pbc=[1, 0, 0],
                  frame_id="a", structure_id="b")
    assert frame.numbers.dtype == np.int64 and frame.positions.dtype == np.float64 and frame.pbc.dtype == bool
