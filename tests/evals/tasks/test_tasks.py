"""Task loaders: the real Matbench dielectric file and folds (a 60-structure sample in tests/fixtures, the whole
file in ../shared/data), ASE's dcdft, prepared-dataset property tasks, folds."""

import gzip
import json

import numpy as np
import pytest
from foundation.evals.tasks.common import kfold, restrict, subset_indices
from foundation.evals.tasks.dcdft import load_dcdft_task
from foundation.evals.tasks.matbench import frame_from_structure_dict, load_matbench
from foundation.evals.tasks.property import load_property_task

from tests.conftest import FIXTURES

SAMPLE = FIXTURES / "matbench"


@pytest.fixture(scope="module")
def dielectric_sample():
    return load_matbench(
        SAMPLE / "matbench_dielectric.json.gz", SAMPLE / "matbench_v0.1_dielectric_folds.json"
    )


@pytest.fixture(scope="module")
def dielectric(shared_data):
    root = shared_data / "matbench"
    return load_matbench(
        root / "matbench_dielectric.json.gz", root / "matbench_v0.1_dielectric_folds.json"
    )


@pytest.mark.shared_data
def test_matbench_dielectric_and_official_folds(dielectric, shared_data):
    task = dielectric
    assert task.name == "matbench_dielectric" and task.property == "n" and len(task.frames) == 4764
    assert len(task.folds) == 5
    tests = np.concatenate([te for _, te in task.folds])
    assert np.array_equal(np.sort(tests), np.arange(4764))  # every structure is tested exactly once
    for train, test in task.folds:
        assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 4764
    folds = json.loads(
        (shared_data / "matbench" / "matbench_v0.1_dielectric_folds.json").read_text()
    )
    first_test = folds["splits"]["matbench_dielectric"]["fold_0"]["test"]
    assert [task.frames[i].structure_id for i in task.folds[0][1]] == first_test
    assert task.targets.min() >= 1.0  # a refractive index
    assert all(len(v) == 64 for v in task.provenance.values())


def test_matbench_sample_keeps_the_official_fold_of_each_structure(dielectric_sample):
    task = dielectric_sample
    assert task.name == "matbench_dielectric" and task.property == "n" and len(task.frames) == 60
    tests = np.concatenate([te for _, te in task.folds])
    assert len(task.folds) == 5 and np.array_equal(np.sort(tests), np.arange(60))
    folds = json.loads((SAMPLE / "matbench_v0.1_dielectric_folds.json").read_text())["splits"][
        "matbench_dielectric"
    ]
    for k, (train, test) in enumerate(task.folds):
        assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == 60
        assert [task.frames[i].structure_id for i in test] == folds[f"fold_{k}"]["test"]
    assert task.targets.min() >= 1.0  # a refractive index


def test_matbench_structure_matches_pymatgen():
    from pymatgen.core import Structure

    body = json.load(gzip.open(SAMPLE / "matbench_dielectric.json.gz", "rt"))
    for record_id, (struct, _) in list(zip(body["index"], body["data"]))[:20]:
        frame = frame_from_structure_dict(struct, record_id, "mb")
        ref = Structure.from_dict(struct)
        np.testing.assert_allclose(frame.positions, ref.cart_coords, atol=1e-8)
        np.testing.assert_allclose(frame.cell, ref.lattice.matrix)
        assert frame.numbers.tolist() == [s.specie.Z for s in ref]


def test_matbench_bad_record_is_named(tmp_path):
    body = json.load(gzip.open(SAMPLE / "matbench_dielectric.json.gz", "rt"))
    body = {"index": body["index"][:6], "columns": body["columns"], "data": body["data"][:6]}
    folds = {
        "splits": {
            "matbench_dielectric": {
                "fold_0": {"train": body["index"][:4], "test": body["index"][4:]}
            },
            "matbench_jdft2d": {"fold_0": {"train": ["x"], "test": ["y"]}},
        }
    }  # several tasks, one file
    (tmp_path / "folds.json").write_text(json.dumps(folds))
    path = tmp_path / "matbench_dielectric.json"
    path.write_text(json.dumps(body))
    assert len(load_matbench(path, tmp_path / "folds.json").frames) == 6
    body["data"][3][0]["sites"][0]["species"] = [
        {"element": "Na", "occu": 0.5},
        {"element": "K", "occu": 0.5},
    ]
    path.write_text(json.dumps(body))
    with pytest.raises(
        ValueError, match=r"matbench_dielectric.json: record mb-dielectric-0004: .*disordered"
    ):
        load_matbench(path, tmp_path / "folds.json")
    body["data"][3][0]["sites"][0]["species"] = [{"element": "Na", "occu": 1}]
    path.write_text(json.dumps(body))
    folds["splits"]["matbench_dielectric"]["fold_0"]["test"].append("mb-dielectric-9999")
    (tmp_path / "folds.json").write_text(json.dumps(folds))
    with pytest.raises(ValueError, match="absent from the task file, e.g. 'mb-dielectric-9999'"):
        load_matbench(path, tmp_path / "folds.json")


def test_subset_keeps_fold_roles(dielectric_sample):
    small = restrict(dielectric_sample, subset_indices(len(dielectric_sample.frames), 30, seed=1))
    assert len(small.frames) == 30 and len(small.folds) == 5
    ids = [f.structure_id for f in small.frames]
    original_test = {
        dielectric_sample.frames[i].structure_id for i in dielectric_sample.folds[2][1]
    }
    assert {ids[i] for i in small.folds[2][1]} == original_test & set(ids)


def test_dcdft_task_has_71_crystals_with_wien2k_moduli():
    task = load_dcdft_task(num_folds=5)
    assert len(task.frames) == 71 and task.unit == "GPa"
    cu = next(f for f in task.frames if f.structure_id == "Cu")
    assert cu.properties["bulk_modulus"] == pytest.approx(141.335)
    assert sum(len(te) for _, te in task.folds) == 71


def test_kfold_groups_stay_together():
    groups = [f"g{i // 3}" for i in range(30)]
    folds = kfold(30, 4, seed=0, groups=groups)
    for train, test in folds:
        assert not {groups[i] for i in train} & {groups[i] for i in test}
    assert np.array_equal(np.sort(np.concatenate([te for _, te in folds])), np.arange(30))
    assert [te.tolist() for _, te in kfold(30, 4, 0, groups)] == [
        te.tolist() for _, te in folds
    ]  # deterministic


def test_property_task_from_prepared_dataset(tmp_path):
    from ase.build import bulk

    from foundation.data.ase_convert import frame_from_atoms
    from foundation.data.writer import write_dataset

    frames = [
        frame_from_atoms(
            bulk("Cu", a=3.5 + 0.01 * i),
            frame_id=f"f{i}",
            structure_id=f"s{i // 2}",
            properties={"gap": float(i)},
        )
        for i in range(12)
    ]
    write_dataset(tmp_path / "ds", {"train": frames[:8], "test": frames[8:]})
    task = load_property_task(tmp_path / "ds", "gap", num_folds=3)
    assert len(task.frames) == 12 and sorted(task.targets.tolist()) == list(map(float, range(12)))
    with pytest.raises(ValueError, match="frame f0 has no property 'band'"):
        load_property_task(tmp_path / "ds", "band")
