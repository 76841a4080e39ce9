"""`foundation prep` from the command line: help, errors naming the file, a small run with its summary."""

from __future__ import annotations

import pytest

from foundation.cli.main import main


def test_help_lists_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["prep", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "foundation prep" in text and "--container" in text and "examples:" in text


def test_an_unreadable_input_is_an_error_naming_the_file(tmp_path, capsys):
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x89PNG not frames")
    assert main(["prep", str(garbage), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "garbage.bin" in capsys.readouterr().err


def test_a_foreign_output_directory_is_refused(tmp_path, capsys):
    frames = tmp_path / "f.xyz"
    frames.write_text(
        '1\nLattice="3 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3:forces:R:3 energy=-1 pbc="T T T"\n'
        "H 0 0 0 0 0 0\n"
    )
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert main(["prep", str(frames), "--out", str(tmp_path / "busy"), "--no-progress"]) == 2
    assert "not a `foundation prep` output" in capsys.readouterr().err


def test_a_small_run_prints_its_summary(tmp_path, capsys):
    frames = tmp_path / "f.xyz"
    frame = (
        '2\nLattice="3 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3:forces:R:3 energy={e} pbc="T T T" '
        "structure_id=s{i}\nH 0 0 0 0 0 0\nO 1.5 1.5 {z} 0 0 0\n"
    )
    frames.write_text(
        "".join(frame.format(e=-1.0 - i, z=1.0 + 0.01 * i, i=i) for i in range(20))
    )  # a material id per frame: one composition would put every frame in one split
    code = main(
        [
            "prep",
            str(frames),
            "--out",
            str(tmp_path / "out"),
            "--no-progress",
            "--split",
            "train=0.5,test=0.5",
            "--container",
            "wds",
            "--require",
            "energy",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "20 frames read" in out and "kept 20" in out and "elements (2): H O" in out
    assert "wds: 2 shards" in out  # one per split


def test_group_rules_and_caps_come_from_the_command_line(tmp_path, capsys):
    frames = tmp_path / "md.xyz"
    frame = (
        '2\nLattice="3 0 0 0 3 0 0 0 3" Properties=species:S:1:pos:R:3:forces:R:3 energy={e} pbc="T T T" '
        "source={src}\nH 0 0 0 0 0 0\nO 1.5 1.5 {z} 0 0 0\n"
    )
    frames.write_text(
        "".join(
            frame.format(e=-1.0 - i, z=1.0 + 0.01 * i, src="A" if i % 2 else "B") for i in range(8)
        )
    )
    args = ["prep", str(frames), "--out", str(tmp_path / "out"), "--no-progress"]
    assert main([*args, "--group-by", "composition", "--group-by-source", "A=id"]) == 0
    config = (tmp_path / "out" / "prep_config.yaml").read_text()
    assert "group_by: composition" in config and "A: id" in config
    capsys.readouterr()
    capped = ["prep", str(frames), "--out", str(tmp_path / "capped"), "--max-atoms", "1"]
    assert main(capped) == 2
    assert "record 0: 2 atoms announced, more than max_atoms 1" in capsys.readouterr().err
    bad = ["prep", str(frames), "--out", str(tmp_path / "x"), "--group-by-source", "A"]
    assert main(bad) == 2
    assert "--group-by-source 'A' must look like NAME=VALUE" in capsys.readouterr().err
