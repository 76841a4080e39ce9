"""The periodic radius graph against ASE's and matscipy's neighbour lists: real DFT frames and hard synthetic cells."""

from __future__ import annotations

from pathlib import Path

import ase.io
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.neighborlist import neighbor_list as ase_neighbor_list
from matscipy.neighbours import neighbour_list as matscipy_neighbour_list

import foundation.data.graph as graph
from foundation.data.graph import edge_vectors, radius_graph_pbc
from tests.conftest import FIXTURES


def batch_tensors(structures: list[Atoms], dtype=torch.float64):
    positions = torch.tensor(np.concatenate([a.positions for a in structures]), dtype=dtype)
    cell = torch.tensor(np.stack([np.asarray(a.cell[:]) for a in structures]), dtype=dtype)
    pbc = torch.tensor(np.stack([a.pbc for a in structures]))
    natoms = torch.tensor([len(a) for a in structures])
    return positions, cell, pbc, torch.repeat_interleave(torch.arange(len(structures)), natoms)


class Graph:
    """Edges as rows (i, j, S0, S1, S2) in lexicographic order, with their distances."""

    def __init__(self, keys: np.ndarray, distances: np.ndarray):
        span = 2 * int(np.abs(keys[:, 2:]).max(initial=0)) + 1
        atoms = int(keys[:, :2].max(initial=0)) + 1
        flat = keys[:, 0] * atoms + keys[:, 1]
        for axis in (2, 3, 4):
            flat = flat * span + keys[:, axis] + span // 2
        order = np.argsort(flat, kind="stable")
        self.keys, self.distances = keys[order], distances[order]

    def as_dict(self) -> dict:
        return {
            (i, j, (s0, s1, s2)): d
            for (i, j, s0, s1, s2), d in zip(self.keys.tolist(), self.distances.tolist())
        }

    def __len__(self) -> int:
        return len(self.keys)


def ours(structures: list[Atoms], cutoff: float, dtype=torch.float64, max_neighbours=None) -> Graph:
    """Our graph for a batch, with global atom indices."""
    positions, cell, pbc, batch = batch_tensors(structures, dtype)
    edge_index, shifts = radius_graph_pbc(positions, cell, pbc, batch, cutoff, max_neighbours)
    assert edge_index.dtype == torch.long and shifts.dtype == dtype
    assert torch.equal(shifts, shifts.round())
    distance = edge_vectors(positions, cell, batch, edge_index, shifts).norm(dim=1)
    return Graph(torch.cat([edge_index.T, shifts.long()], dim=1).numpy(), distance.double().numpy())


def reference(structures: list[Atoms], cutoff: float, library=ase_neighbor_list) -> Graph:
    """ASE's (or matscipy's) neighbour list, frame by frame, with global atom indices."""
    keys, distances, offset = [], [], 0
    for atoms in structures:
        i, j, d, shifts = library("ijdS", atoms, cutoff)
        keys.append(np.column_stack([i + offset, j + offset, shifts]).astype(np.int64))
        distances.append(d)
        offset += len(atoms)
    return Graph(np.concatenate(keys), np.concatenate(distances))


def assert_same_graph(got: Graph, expected: Graph) -> None:
    if not np.array_equal(got.keys, expected.keys):
        extra = got.as_dict().keys() - expected.as_dict().keys()
        missing = expected.as_dict().keys() - got.as_dict().keys()
        pytest.fail(
            f"{len(extra)} extra edges, e.g. {sorted(extra)[:3]}; {len(missing)} missing, e.g. "
            f"{sorted(missing)[:3]}"
        )
    np.testing.assert_allclose(got.distances, expected.distances, rtol=0, atol=1e-10)


def read_all(directory: Path) -> list[Atoms]:
    return [
        atoms for path in sorted(directory.glob("*.xyz")) for atoms in ase.io.read(path, index=":")
    ]


@pytest.fixture(scope="module")
def real_structures() -> list[Atoms]:
    """The committed samples (tests/fixtures/dft): MPtrj, Alexandria and MPF frames of 1 to 158 atoms."""
    structures = read_all(FIXTURES / "dft")
    assert len(structures) > 300
    return structures


@pytest.fixture(scope="module")
def shared_structures(shared_data) -> list[Atoms]:
    """Every frame of ../shared/data/dft (over 3,000)."""
    structures = read_all(shared_data / "dft")
    assert len(structures) > 3000
    return structures


@pytest.fixture(params=["all_pairs", "cell_list"])
def search(request, monkeypatch):
    """Runs a test through both searches: all-pairs per structure, and the cell list (forced for every size)."""
    if request.param == "cell_list":
        monkeypatch.setattr(graph, "CELL_LIST_MIN_ATOMS", 1)
    return request.param


# --- real DFT frames -------------------------------------------------------------------------------------------------


def test_every_real_frame_matches_matscipy(real_structures):
    assert_same_graph(
        ours(real_structures, 6.0), reference(real_structures, 6.0, matscipy_neighbour_list)
    )


def test_every_real_frame_matches_ase(real_structures):
    # ASE's Python neighbour list costs ~5 ms per frame at 3 A (10x more at 5 A): all frames, first shells.
    assert_same_graph(ours(real_structures, 3.0), reference(real_structures, 3.0))


@pytest.mark.shared_data
def test_every_frame_of_the_shared_data_matches_matscipy_and_ase(shared_structures):
    assert_same_graph(
        ours(shared_structures, 6.0), reference(shared_structures, 6.0, matscipy_neighbour_list)
    )
    assert_same_graph(ours(shared_structures, 3.0), reference(shared_structures, 3.0))


def test_cell_list_and_small_chunks_give_the_same_graph_on_real_frames(
    real_structures, monkeypatch
):
    subset = real_structures
    expected = reference(subset, 5.0, matscipy_neighbour_list)
    monkeypatch.setattr(graph, "MAX_PAIRS_PER_CHUNK", 5000)
    assert_same_graph(ours(subset, 5.0), expected)
    monkeypatch.setattr(graph, "CELL_LIST_MIN_ATOMS", 1)
    assert_same_graph(ours(subset, 5.0), expected)


def test_large_supercell_uses_the_cell_list(real_structures):
    atoms = max(real_structures, key=len)
    atoms = atoms.repeat(int(np.ceil((graph.CELL_LIST_MIN_ATOMS / len(atoms)) ** (1 / 3))))
    atoms.rattle(0.05, seed=1)
    assert len(atoms) >= graph.CELL_LIST_MIN_ATOMS
    assert_same_graph(ours([atoms], 5.0), reference([atoms], 5.0, matscipy_neighbour_list))


def large_skewed_slab() -> Atoms:
    """1,100 atoms in a sheared cell periodic along a and b only, unwrapped (up to 15% off the cell), some exactly on
    its faces and two pairs at the same place."""
    rng = np.random.default_rng(6)
    cell = np.array([[30.0, 0.0, 0.0], [17.0, 26.0, 0.0], [6.0, -4.0, 16.0]])
    frac = rng.uniform(-0.15, 1.15, (1100, 3)) * [1, 1, 0.6]
    frac[:8, :2] = [[0, 0], [1, 0], [0, 1], [1, 1], [0, 0.5], [0.5, 1], [1, 0.25], [0.75, 0]]
    frac[8:10] = frac[10:12]
    return Atoms(
        numbers=rng.integers(1, 90, len(frac)),
        positions=frac @ cell,
        cell=cell,
        pbc=(True, True, False),
    )


def test_large_skewed_slab_matches_ase_in_blocks_and_capped(monkeypatch):
    atoms = large_skewed_slab()
    assert len(atoms) >= graph.CELL_LIST_MIN_ATOMS
    monkeypatch.setattr(graph, "MAX_PAIRS_PER_CHUNK", 8000)  # blocks of a few hundred atoms
    assert_same_graph(ours([atoms], 5.0), reference([atoms], 5.0))
    capped = ours([atoms], 5.0, max_neighbours=16)
    monkeypatch.setattr(graph, "CELL_LIST_MIN_ATOMS", 10**6)
    assert np.array_equal(
        capped.keys, ours([atoms], 5.0, max_neighbours=16).keys
    )  # as the all-pairs search


def test_max_neighbours_keeps_the_nearest_on_real_frames(real_structures):
    subset, k = real_structures, 12
    full = ours(subset, 6.0).as_dict()
    capped = ours(subset, 6.0, max_neighbours=k).as_dict()
    assert capped.keys() <= full.keys()
    by_atom: dict[int, list] = {}
    for key, d in full.items():
        by_atom.setdefault(key[0], []).append((d, key in capped))
    for edges in by_atom.values():
        kept = [d for d, keep in edges if keep]
        dropped = [d for d, keep in edges if not keep]
        assert len(kept) == min(k, len(edges))
        assert not dropped or max(kept) <= min(dropped) + 1e-9


def test_float32_differs_only_at_the_cutoff(real_structures):
    subset, cutoff = real_structures, 5.0
    exact, single = (
        ours(subset, cutoff).as_dict(),
        ours(subset, cutoff, dtype=torch.float32).as_dict(),
    )
    for key in exact.keys() ^ single.keys():
        assert abs(exact.get(key, single.get(key)) - cutoff) < 1e-4
    assert len(exact.keys() ^ single.keys()) < 1e-4 * len(exact)


# --- synthetic cells -------------------------------------------------------------------------------------------------


def tiny_cell() -> Atoms:
    """Two atoms in a cell far smaller than the cutoff: many images on every axis."""
    return Atoms("CO", positions=[[0.1, 0.2, 0.3], [0.9, 0.7, 0.4]], cell=[1.3, 1.6, 1.1], pbc=True)


def skewed_cell() -> Atoms:
    """A strongly sheared triclinic cell, with atoms left outside it (unwrapped)."""
    rng = np.random.default_rng(0)
    cell = np.array([[4.0, 0.0, 0.0], [3.7, 1.5, 0.0], [-3.1, 2.9, 1.8]])
    return Atoms("Si5", positions=rng.uniform(-3, 9, (5, 3)), cell=cell, pbc=True)


def slab() -> Atoms:
    rng = np.random.default_rng(1)
    cell = np.array([[3.0, 0.0, 0.0], [1.2, 2.8, 0.0], [0.3, 0.4, 15.0]])
    return Atoms(
        "Cu6", positions=rng.uniform(0, 3, (6, 3)) + [0, 0, 6], cell=cell, pbc=(True, True, False)
    )


def wire() -> Atoms:
    rng = np.random.default_rng(2)
    return Atoms(
        "C4",
        positions=rng.uniform(0, 3, (4, 3)),
        cell=[[2.2, 0.5, 0], [0, 9, 0], [0, 0, 9]],
        pbc=(True, False, False),
    )


def molecule() -> Atoms:
    rng = np.random.default_rng(3)
    return Atoms("CH4OH2", positions=rng.normal(size=(8, 3)) * 2.0, pbc=False)  # zero cell


def nonperiodic_z_in_a_sheet() -> Atoms:
    """Periodic along a and c only (the non-periodic axis is the middle one)."""
    rng = np.random.default_rng(4)
    return Atoms(
        "N3",
        positions=rng.uniform(0, 4, (3, 3)),
        cell=[[2.5, 0, 0], [0, 0, 0], [0.7, 0, 2.1]],
        pbc=(True, False, True),
    )


SYNTHETIC = {
    "tiny_cell": tiny_cell,
    "skewed_cell": skewed_cell,
    "slab": slab,
    "wire": wire,
    "molecule": molecule,
    "sheet_without_b": nonperiodic_z_in_a_sheet,
}


@pytest.mark.parametrize("name", SYNTHETIC)
def test_synthetic_structure_matches_ase(name, search):
    atoms = SYNTHETIC[name]()
    got = ours([atoms], 4.5)
    assert_same_graph(got, reference([atoms], 4.5))
    assert len(got), "every synthetic case has edges"


def random_structure(rng: np.random.Generator) -> Atoms:
    """A random cell (lengths 1-8 A, any shear), random periodicity, 1-12 atoms anywhere near it."""
    cell = np.diag(rng.uniform(1.0, 8.0, 3)) + np.triu(rng.uniform(-4, 4, (3, 3)), 1)
    cell = cell[rng.permutation(3)] if rng.random() < 0.5 else cell
    if np.linalg.det(cell) < 0:
        cell[0] *= -1
    positions = rng.uniform(-0.5, 1.5, (rng.integers(1, 13), 3)) @ cell
    return Atoms(
        numbers=rng.integers(1, 90, len(positions)),
        positions=positions,
        cell=cell,
        pbc=rng.random(3) < 0.7,
    )


@pytest.mark.parametrize("seed", range(4))
def test_random_cells_match_ase(seed, search):
    rng = np.random.default_rng(seed)
    structures = [random_structure(rng) for _ in range(12)]
    cutoff = float(rng.uniform(2.0, 7.0))
    assert_same_graph(ours(structures, cutoff), reference(structures, cutoff))


def test_tiny_cell_has_self_images_and_no_self_edge():
    got = ours([tiny_cell()], 4.5).as_dict()
    assert any(i == j for i, j, _ in got) and (0, 0, (0, 0, 0)) not in got
    assert len(got) > 200


def test_distinct_atoms_at_the_same_place_are_neighbours_as_in_ase(search):
    atoms = Atoms(
        "Cu2", positions=[[0.5, 0.6, 0.7], [0.5, 0.6, 0.7]], cell=[3.0, 3.2, 3.4], pbc=True
    )
    got = ours([atoms], 4.0)
    assert_same_graph(got, reference([atoms], 4.0))
    assert (0, 1, (0, 0, 0)) in got.as_dict() and (0, 0, (0, 0, 0)) not in got.as_dict()


def test_mixed_batch_equals_each_structure_alone(search):
    structures = [f() for f in SYNTHETIC.values()] * 2
    assert_same_graph(ours(structures, 4.5), reference(structures, 4.5))


def test_edges_come_in_both_directions():
    got = ours([skewed_cell(), slab()], 4.5).as_dict()
    assert all((j, i, tuple(-s for s in shift)) in got for i, j, shift in got)


def simple_cubic(repeat: int) -> Atoms:
    return Atoms("Po", positions=[[0, 0, 0]], cell=[2.0, 2.0, 2.0], pbc=True).repeat(repeat)


@pytest.mark.parametrize("repeat,k", [(1, 8), (1, 6), (2, 10), (2, 19)])
def test_max_neighbours_breaks_exact_ties_by_j_then_shift(repeat, k, search):
    atoms = simple_cubic(repeat)  # exact ties: 6 neighbours at 2.0, 12 at 2.83, 8 at 3.46
    full = reference([atoms], 3.7).as_dict()
    expected = set()
    for i in range(len(atoms)):
        edges = sorted((d, j, s) for (a, j, s), d in full.items() if a == i)
        expected |= {(i, j, s) for _, j, s in edges[:k]}
    got = ours([atoms], 3.7, max_neighbours=k)
    assert set(got.as_dict()) == expected
    assert np.array_equal(ours([atoms], 3.7, max_neighbours=k).keys, got.keys)  # deterministic


def test_max_neighbours_larger_than_degree_changes_nothing():
    assert np.array_equal(
        ours([skewed_cell()], 4.0, max_neighbours=10_000).keys, ours([skewed_cell()], 4.0).keys
    )


def test_edges_are_in_lexicographic_order_with_cell_list_structures_inside_the_batch(monkeypatch):
    structures = [tiny_cell(), simple_cubic(3), skewed_cell(), molecule(), simple_cubic(3), slab()]
    monkeypatch.setattr(
        graph, "CELL_LIST_MIN_ATOMS", 20
    )  # the two 27-atom cubes take the cell list
    monkeypatch.setattr(graph, "MAX_PAIRS_PER_CHUNK", 70)  # and the small ones several chunks
    positions, cell, pbc, batch = batch_tensors(structures)
    edge_index, shifts = radius_graph_pbc(positions, cell, pbc, batch, 4.0)
    keys = torch.cat([edge_index.T, shifts.long()], dim=1).numpy()
    assert np.array_equal(Graph(keys, np.zeros(len(keys))).keys, keys)
    assert_same_graph(ours(structures, 4.0), reference(structures, 4.0))


@pytest.mark.parametrize("expected", [0, 6000, 10**6])
def test_the_graph_does_not_depend_on_the_estimate_of_its_size(
    real_structures, monkeypatch, expected
):
    # 0: the buffers grow part after part; 6000: ~10% room left over (5,768 edges); 10^6: far too large, copied out
    batch = batch_tensors(real_structures[:40])
    edge_index, shifts = radius_graph_pbc(*batch, 5.0)
    monkeypatch.setattr(graph, "MAX_PAIRS_PER_CHUNK", 2000)
    monkeypatch.setattr(graph, "_expected_edges", lambda *args: expected)
    got_index, got_shifts = radius_graph_pbc(*batch, 5.0)
    assert got_index.is_contiguous() and got_shifts.is_contiguous()
    assert torch.equal(got_index, edge_index) and torch.equal(got_shifts, shifts)


def test_edge_vectors_are_differentiable_in_positions_and_cell():
    structures = [skewed_cell(), slab()]
    positions, cell, pbc, batch = batch_tensors(structures)
    edge_index, shifts = radius_graph_pbc(positions, cell, pbc, batch, 3.5)
    positions.requires_grad_(True)
    cell.requires_grad_(True)

    def energy(p, c):  # a smooth pair energy of the edge vectors
        return torch.exp(-edge_vectors(p, c, batch, edge_index, shifts).pow(2).sum(dim=1)).sum()

    assert torch.autograd.gradcheck(energy, (positions, cell))


def test_graph_is_built_without_gradients_on_inputs_that_require_them():
    positions, cell, pbc, batch = batch_tensors([skewed_cell()])
    edge_index, shifts = radius_graph_pbc(positions.requires_grad_(True), cell, pbc, batch, 4.0)
    assert not shifts.requires_grad and not edge_index.requires_grad


def test_empty_batch_and_isolated_atom():
    positions, cell, pbc, batch = batch_tensors([Atoms("H", positions=[[0, 0, 0]])])
    edge_index, shifts = radius_graph_pbc(positions, cell, pbc, batch, 5.0)
    assert edge_index.shape == (2, 0) and shifts.shape == (0, 3)


def test_bad_inputs_are_refused():
    positions, cell, pbc, batch = batch_tensors([skewed_cell(), slab()])
    with pytest.raises(ValueError, match="non-decreasing"):
        radius_graph_pbc(positions, cell, pbc, batch.flip(0), 4.0)
    with pytest.raises(ValueError, match="degenerate cell"):
        radius_graph_pbc(positions, torch.zeros_like(cell), pbc, batch, 4.0)
    with pytest.raises(ValueError, match="cutoff"):
        radius_graph_pbc(positions, cell, pbc, batch, 0.0)


def test_a_cell_too_thin_for_the_cutoff_is_refused_before_any_search():
    # a square lattice in a badly skewed basis: plane spacing 4e-5 A along a, ~250,000 image shifts per axis
    skewed = Atoms(
        "Cu", positions=[[0, 0, 0]], cell=[[4, 0, 0], [400_000, 4, 0], [0, 0, 4]], pbc=True
    )
    positions, cell, pbc, batch = batch_tensors([simple_cubic(2), skewed])
    with pytest.raises(ValueError, match=r"structure 1: cell too thin for the cutoff: 5 A"):
        radius_graph_pbc(positions, cell, pbc, batch, 5.0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_graph_equals_cpu_graph(real_structures):
    """Both searches on the GPU: the all-pairs one (synthetic and real small cells) and the cell list (a large
    skewed slab), edge for edge and in the same order as on the CPU."""
    structures = (
        [f() for f in SYNTHETIC.values()]
        + [simple_cubic(3)]
        + real_structures
        + [large_skewed_slab()]
    )
    positions, cell, pbc, batch = batch_tensors(structures)
    cpu = radius_graph_pbc(positions, cell, pbc, batch, 4.5, max_neighbours=12)
    gpu = radius_graph_pbc(
        positions.cuda(), cell.cuda(), pbc.cuda(), batch.cuda(), 4.5, max_neighbours=12
    )
    assert (
        gpu[0].is_cuda and torch.equal(gpu[0].cpu(), cpu[0]) and torch.equal(gpu[1].cpu(), cpu[1])
    )
