"""Readers bound the memory an input can take: each case runs in a subprocess whose address space is capped a
little above what its imports took (RLIMIT_AS), with inputs that would need far more if read whole."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PREAMBLE = """
import resource
from foundation.cli.predict import iter_frames
from foundation.data_prep.pipeline import run_prep
from foundation.data_prep.config import PrepConfig
from foundation.data_prep.readers import ReaderError
from tests.data_prep.helpers import read_records

vm = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0]) * 1024
resource.setrlimit(resource.RLIMIT_AS, (vm + {headroom}, vm + {headroom}))
"""
FRAME = (
    '2\nLattice="4 0 0 0 4 0 0 0 4" Properties=species:S:1:pos:R:3:forces:R:3 energy={e} '
    'structure_id={s} pbc="T T T"\nH 0 0 0 0 0 0\nO 1.5 1.5 {z} 0 0 0\n'
)


def run_bounded(body: str, headroom_mb: int) -> str:
    """Run `body` in a fresh Python under the address-space cap; return its stdout (a MemoryError fails)."""
    code = PREAMBLE.format(headroom=headroom_mb << 20) + textwrap.dedent(body)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_gzip_frame_of_ten_million_atoms_is_quarantined_without_being_held(tmp_path):
    path = tmp_path / "huge.xyz.gz"
    atoms = 10_000_000  # 140 MB of atom lines, ~0.2 MB compressed; held as lines they take ~500 MB
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(FRAME.format(e=-1.0, s="a", z=1.5).encode())
        fh.write(f"{atoms}\nProperties=species:S:1:pos:R:3:forces:R:3 energy=-1\n".encode())
        for _ in range(atoms // 1_000_000):
            fh.write(b"H 0 0 0 0 0 0\n" * 1_000_000)
        fh.write(FRAME.format(e=-2.0, s="b", z=1.7).encode())
    out = run_bounded(
        f"""
        r = run_prep(PrepConfig(inputs=["{path}"], out="{tmp_path / "out"}", progress=False,
                                split={{"train": 1.0}}))
        print(r.report.records, r.report.kept, r.report.quarantined)
        """,
        headroom_mb=200,
    )
    assert out.split(None, 2) == ["3", "2", "{'too_large': 1}\n"]
    line = (tmp_path / "out" / "quarantine.jsonl").read_text()
    assert json.loads(line)["message"] == f"{atoms} atoms announced, more than max_atoms 100000"


@pytest.fixture
def nul_file(tmp_path) -> Path:
    """6 GB of NUL bytes without a newline, sparse (no disk used)."""
    path = tmp_path / "zeros.xyz"
    with open(path, "wb") as fh:
        fh.truncate(6 << 30)
    return path


def test_a_file_of_nul_bytes_is_refused_at_its_first_line(nul_file, tmp_path):
    out = run_bounded(
        f"""
        for fmt in ("extxyz", "vasp-outcar"):
            try:
                run_prep(PrepConfig(inputs=["{nul_file}"], out="{tmp_path}/out-" + fmt, format=fmt,
                                    progress=False))
            except ReaderError as exc:
                print("prep", fmt, exc)
        for fmt in ("extxyz", "ase"):
            try:
                list(iter_frames(["{nul_file}"], fmt))
            except ReaderError as exc:
                print("predict", fmt, exc)
        """,
        headroom_mb=200,
    )
    lines = out.splitlines()
    assert len(lines) == 4
    assert lines[0].startswith(
        f"prep extxyz {nul_file}: line 1: expected the atom count of frame 0"
    )
    assert lines[1] == (
        f"prep vasp-outcar {nul_file}: line 1 is longer than max_line_bytes 1048576 bytes; not a text "
        "file of this format?"
    )
    assert lines[2].startswith(f"predict extxyz {nul_file}: line 1: expected the atom count")
    assert lines[3].startswith(
        f"predict ase {nul_file}: 6442450944 bytes, more than max_record_bytes"
    )


def test_a_json_entry_over_the_byte_cap_is_skipped_without_being_held(tmp_path):
    path = tmp_path / "alexandria_000.json.gz"
    small = {
        "@class": "ComputedStructureEntry",
        "energy": -10.0,
        "structure": {
            "lattice": {"matrix": [[4, 0, 0], [0, 4, 0], [0, 0, 4]]},
            "sites": [
                {"species": [{"element": "Na", "occu": 1}], "abc": [0, 0, 0]},
                {"species": [{"element": "Cl", "occu": 1}], "abc": [0.5, 0.5, 0.5]},
            ],
        },
        "data": {"mat_id": "m1", "forces": [[0, 0, 0], [0, 0, 0]]},
    }
    with gzip.open(path, "wb", compresslevel=1) as fh:
        fh.write(b'{"entries": [' + json.dumps(small).encode() + b', {"pad": "')
        for _ in range(100):  # a 100 MB string: ijson held it (and its buffers) whole
            fh.write(b"x" * (1 << 20))
        fh.write(b'"}, ' + json.dumps({**small, "data": {"mat_id": "m2"}}).encode() + b"]}")
    out = run_bounded(
        f"""
        records = read_records("{path}", "alexandria", max_record_bytes=8 << 20)
        print([(r.where, r.reason if r.frame is None else "frame") for r in records])
        """,
        headroom_mb=150,
    )
    assert out.strip() == "[(0, 'frame'), (1, 'too_large'), (2, 'frame')]"
