"""`foundation demo` end to end at toy size: needs no shared data and no download."""

import json
import re
import signal
import subprocess
import sys
import time

from foundation.cli.main import main

ARGS = [
    "--frames",
    "80",
    "--steps",
    "6",
    "--workers",
    "1",
    "--task-structures",
    "25",
    "--finetune-epochs",
    "3",
]


def test_demo_runs_every_stage_and_says_where_the_report_is(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), *ARGS]) == 0
    printed = capsys.readouterr().out
    assert f"report:  {out / 'eval' / 'report.html'}" in printed and "relaxed with FIRE" in printed
    manifest = json.loads((out / "data" / "manifest.json").read_text())
    assert {s["container"] for s in manifest["shards"]} == {"lmdb", "wds"}
    results = json.loads((out / "eval" / "results.json").read_text())
    assert not results["missing_units"]
    tasks = {t["name"]: t for t in results["tasks"]}
    assert {t["kind"] for t in tasks.values()} == {"property", "dcdft_eos", "zeroshot"}
    # the downstream task lies inside the pre-training domain: the teacher's bulk modulus of its own alloys,
    # as a learning curve with both arms, the probe, baselines and a verdict per size
    curve = tasks["teacher_bulk_modulus"]
    assert (
        list(curve["by_size"]) == ["12", "all"]
        and curve["baselines"]["12"]["mean"]["mae"]["count"] == 6
    )
    assert {(c["treatment"], c["size"]) for c in curve["comparisons"]} == {
        (arm, size) for arm in ("pretrained", "probe_pretrained") for size in (12, None)
    }
    assert (
        sum("teacher_bulk_modulus n=12: pretrained" in line for line in printed.splitlines()) == 1
    )
    # zero-shot bulk moduli only for crystals of the pre-training elements; the rest out of domain, not failed
    eos = tasks["dcdft_eos_zeroshot"]["units"][0]
    elements = {"Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt"}  # the EMT teacher's
    assert {r["id"] for r in eos["predictions"]} | {f["id"] for f in eos["failures"]} <= elements
    assert len(eos["out_of_domain"]) == 71 - len(elements) and "Fe" in eos["out_of_domain"]
    assert (out / "release" / "SHA256SUMS").is_file() and (
        out / "release" / "model.safetensors"
    ).is_file()
    # a rerun resumes: the finished training run and eval units are kept
    assert main(["demo", "--out", str(out), *ARGS]) == 0
    assert re.search(r"(\d+) units \(\1 already done\)", capsys.readouterr().err)


def test_demo_stopped_in_pretraining_exits_75_and_evaluates_nothing(tmp_path):
    """SIGTERM during pre-training checkpoints and stops the demo (exit 75, rerun to resume): the partial
    checkpoint is neither evaluated nor released."""
    out = tmp_path / "demo"
    args = [a if a != "6" else "5000" for a in ARGS]
    proc = subprocess.Popen(
        [sys.executable, "-m", "foundation.cli.main", "demo", "--out", str(out), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    metrics = out / "pretrain" / "metrics.jsonl"
    deadline = time.monotonic() + 600
    while not (metrics.is_file() and metrics.stat().st_size > 0) and proc.poll() is None:
        assert time.monotonic() < deadline, "pre-training never logged a step"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    printed, _ = proc.communicate(timeout=600)
    assert proc.returncode == 75, printed
    assert "run the same command again to resume" in printed
    assert not (out / "eval").exists() and not (out / "release").exists()
