"""`foundation demo` end to end at toy size: needs no shared data and no download."""

import json

from foundation.cli.main import main


def test_demo_runs_every_stage_and_says_where_the_report_is(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--frames", "80", "--steps", "6", "--workers", "1"]) == 0
    printed = capsys.readouterr().out
    assert f"report:  {out / 'eval' / 'report.html'}" in printed and "relaxed with FIRE" in printed
    manifest = json.loads((out / "data" / "manifest.json").read_text())
    assert {s["container"] for s in manifest["shards"]} == {"lmdb", "wds"}
    results = json.loads((out / "eval" / "results.json").read_text())
    assert not results["missing_units"]
    assert {t["kind"] for t in results["tasks"]} == {"dcdft_finetune", "dcdft_eos", "zeroshot"}
    assert (out / "release" / "SHA256SUMS").is_file() and (out / "release" / "model.safetensors").is_file()
    # a rerun resumes: the finished training run and eval units are kept
    assert main(["demo", "--out", str(out), "--frames", "80", "--steps", "6", "--workers", "1"]) == 0
    assert "6 units (6 already done)" in capsys.readouterr().err
