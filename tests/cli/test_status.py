"""`foundation status` on a run directory's files alone (no cluster needed)."""

from __future__ import annotations

import json
import time

from foundation.cli.main import main


def test_status_reports_step_checkpoint_and_throughput(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "slurm").mkdir(parents=True)
    (run / "slurm" / "jobs.jsonl").write_text(
        json.dumps(
            {
                "job_id": "123",
                "kind": "train",
                "launcher": "submitit-local",
                "cluster": "local",
                "submitted_at": time.time(),
            }
        )
        + "\n"
    )
    (run / "slurm" / "123_0_result.pkl").write_bytes(b"")
    now = time.time()
    events = [
        {"kind": "train", "step": s, "time": now - 100 + s, "atoms_per_s": 500.0}
        for s in (10, 20, 30)
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    step = run / "checkpoints" / "step-00000030"
    step.mkdir(parents=True)
    (step / "state.json").write_text("{}")
    (run / "checkpoints" / "latest").write_text("step-00000030")
    assert main(["status", str(run)]) == 0
    out = capsys.readouterr().out
    assert "job 123" in out and "FINISHED" in out and "step 30" in out
    assert "step-00000030" in out and "500 atoms/s" in out and "1.00 steps/s" in out
