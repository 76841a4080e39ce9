"""A file of real frames with one injected bad frame per reason: each lands in quarantine.jsonl with its
reason, and no good frame is lost."""

from __future__ import annotations

import base64
import json

from foundation.data_prep.pipeline import run_prep

from foundation.data.codec import decode_frame
from foundation.data.dataset import open_dataset
from tests.conftest import FIXTURES

from .helpers import prep_config

GOOD = 30
CELL = 'Lattice="4 0 0 0 4 0 0 0 4"'
PROPS = "Properties=species:S:1:pos:R:3:forces:R:3"


def _bad(comment: str, atoms: str = "Cu 0 0 0 0.1 0 0\nCu 2 2 2 -0.1 0 0") -> str:
    return f'2\n{comment} pbc="T T T"\n{atoms}\n'


BAD = {
    "non_finite": _bad(f"{CELL} {PROPS} energy=nan"),
    "missing_label": _bad(f"{CELL} {PROPS}"),
    "force_too_large": _bad(f"{CELL} {PROPS} energy=-3.0", "Cu 0 0 0 1000 0 0\nCu 2 2 2 -1000 0 0"),
    "atoms_too_close": _bad(f"{CELL} {PROPS} energy=-3.0", "Cu 0 0 0 0 0 0\nCu 0.1 0 0 0 0 0"),
    "non_positive_volume": _bad(f'Lattice="4 0 0 4 0 0 0 0 4" {PROPS} energy=-3.0'),
    # volume 2e-6 A^3, just above the threshold: the pair searches would need ~1e25 image shifts at 5 A
    "cell_too_thin": _bad(f'Lattice="10 0 0 0 10 0 5 5 0.00000002" {PROPS} energy=-3.0'),
    "unknown_element": _bad(f"{CELL} {PROPS} energy=-3.0", "Xx 0 0 0 0 0 0\nCu 2 2 2 0 0 0"),
    "duplicate_frame_id": _bad(f"{CELL} {PROPS} energy=-3.0 frame_id=inject.xyz:3"),
    "parse_error": _bad(f"{CELL} {PROPS} energy=-3.0", "Cu 0 abc 0 0 0 0\nCu 2 2 2 0 0 0"),
    "shape_mismatch": _bad(
        f"{CELL} Properties=species:S:1:pos:R:3:forces:R:2 energy=-3.0",
        "Cu 0 0 0 0 0\nCu 2 2 2 0 0",
    ),
}


def _frames_text(path, count):
    lines, out, i = path.read_text().splitlines(keepends=True), [], 0
    for _ in range(count):
        n = int(lines[i])
        out.append("".join(lines[i : i + n + 2]))
        i += n + 2
    return out


def test_each_bad_frame_is_quarantined_with_its_reason(tmp_path):
    good = _frames_text(FIXTURES / "dft" / "alexandria-sample.xyz", GOOD)
    text = "".join(good) + "".join(BAD.values()) + good[0]  # the last frame repeats frame 0 exactly
    path = tmp_path / "inject.xyz"
    path.write_text(text)
    result = run_prep(prep_config([path], tmp_path / "out", container="both", shard_size=7))
    manifest = result.manifest
    assert manifest.quarantine["by_reason"] == {reason: 1 for reason in BAD}
    assert manifest.quarantine["total"] == len(BAD)
    assert manifest.dedup["duplicates"] == 1
    kept = {f.frame_id for f in open_dataset(tmp_path / "out", container="lmdb")}
    assert kept == {
        f"inject.xyz:{i}" for i in range(GOOD)
    }  # no good frame lost, the duplicate dropped

    lines = [
        json.loads(line)
        for line in (tmp_path / "out" / "quarantine.jsonl").read_text().splitlines()
    ]
    assert sorted(e["reason"] for e in lines) == sorted(BAD)
    for entry in lines:
        assert entry["file"] == "inject.xyz" and entry["message"]
        index = GOOD + list(BAD).index(entry["reason"])
        assert entry["record"] == str(index)
        if entry["reason"] == "parse_error":
            assert "abc" in entry["raw"] and entry["frame_id"] is None
        else:
            frame = decode_frame(
                base64.b64decode(entry["record_b64"])
            )  # the refused frame, inspectable
            assert frame.frame_id == entry["frame_id"]
    duplicate = json.loads((tmp_path / "out" / "duplicates.jsonl").read_text())
    assert (
        duplicate["record"] == str(GOOD + len(BAD))
        and duplicate["duplicate_of"]["frame_id"] == "inject.xyz:0"
    )


def test_stress_can_be_required(tmp_path):
    good = _frames_text(FIXTURES / "dft" / "alexandria-sample.xyz", 3)
    no_stress = _bad(f"{CELL} {PROPS} energy=-3.0")
    path = tmp_path / "s.xyz"
    path.write_text("".join(good) + no_stress)
    result = run_prep(
        prep_config([path], tmp_path / "out", required=["energy", "forces", "stress"])
    )
    assert result.manifest.quarantine["by_reason"] == {"missing_label": 1}
