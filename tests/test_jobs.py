"""The local runner of workloads: items in this process or in spawned workers, results in item order, a
failing or vanishing item recorded while the others go on, afterok/afterany follow-ups."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from foundation.jobs import ItemFailed, Workload, WorkloadFailed, run_items, run_workload


def square_and_pid(x: int) -> tuple[int, int]:
    """Module-level (spawned workers import it): 3 raises, 5 ends its process without a word."""
    if x == 3:
        raise ValueError("three is refused")
    if x == 5:
        os._exit(7)
    return x * x, os.getpid()


def stop_at_two(x: int) -> dict:
    """A Resumable's summary: the item 2 is told to stop before it finishes."""
    return {"item": x, "stopped": x == 2}


def collect(results: list, out: str) -> str:
    Path(out).write_text(repr(results))
    return "report"


def test_in_process_results_keep_item_order_and_failures_are_recorded():
    results, failures = run_items(square_and_pid, [0, 1, 2, 3, 4], progress=False)
    assert [r[0] for r in results if r] == [0, 1, 4, 16] and results[3] is None
    assert [name for name, _ in failures] == ["3"] and "three is refused" in failures[0][1]
    assert {r[1] for r in results if r} == {os.getpid()}
    with pytest.raises(ValueError, match="three is refused"):
        run_items(square_and_pid, [0, 3, 4], keep_going=False, progress=False)


def test_workers_take_items_one_after_another_and_a_dead_one_is_replaced():
    items = list(range(9))
    results, failures = run_items(
        square_and_pid, items, workers=2, progress=False, label=lambda x: f"item {x}"
    )
    assert [r[0] if r else None for r in results] == [0, 1, 4, None, 16, None, 36, 49, 64]
    assert sorted(name for name, _ in failures) == ["item 3", "item 5"]
    assert "exited with code 7" in dict(failures)["item 5"]
    pids = {r[1] for r in results if r}
    assert (
        os.getpid() not in pids and 2 <= len(pids) <= 3
    )  # two workers, one more after item 5 killed its own
    isolated, _ = run_items(square_and_pid, [0, 1, 2, 4], workers=2, isolate=True, progress=False)
    assert len({r[1] for r in isolated}) == 4  # a fresh process for every item
    with pytest.raises(ItemFailed, match="three is refused"):
        run_items(square_and_pid, [0, 3, 4], workers=2, keep_going=False, progress=False)


def test_a_batch_runs_its_follow_up_as_its_condition_says(tmp_path):
    out = str(tmp_path / "report.txt")
    anyway = Workload(
        name="demo",
        folder=tmp_path,
        task=square_and_pid,
        items=[1, 3],
        then=collect,
        then_args=(["done"], out),
        condition="afterany",
    )
    done = run_workload(anyway, progress=False)
    assert (
        done.final == "report" and Path(out).read_text() == "['done']" and len(done.failures) == 1
    )
    strict = Workload(
        name="demo",
        folder=tmp_path,
        task=square_and_pid,
        items=[1, 3],
        then=collect,
        then_args=(["never"], str(tmp_path / "never.txt")),
    )
    with pytest.raises(WorkloadFailed, match="1 of 2 items failed"):
        run_workload(strict, progress=False)
    assert not (tmp_path / "never.txt").exists()


def test_an_item_stopped_on_request_ends_the_batch_without_its_follow_up(tmp_path):
    out = tmp_path / "report.txt"
    workload = Workload(
        name="demo",
        folder=tmp_path,
        task=stop_at_two,
        items=[1, 2, 3],
        then=collect,
        then_args=(["done"], str(out)),
        condition="afterany",
    )
    result = run_workload(workload, progress=False)
    assert result.stopped and result.final is None and not out.exists()
    assert result.results == [{"item": 1, "stopped": False}, {"item": 2, "stopped": True}, None]
    finished = run_workload(
        Workload(
            name="demo",
            folder=tmp_path,
            task=stop_at_two,
            items=[1, 3],
            then=collect,
            then_args=(["done"], str(out)),
            condition="afterany",
        ),
        progress=False,
    )
    assert not finished.stopped and finished.final == "report" and out.exists()
