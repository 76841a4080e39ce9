"""foundation.data.pair_search: the counting helper the all-pairs search is built on (the search itself is tested
through radius_graph_pbc in tests/data/test_graph.py, against ASE and matscipy)."""

from __future__ import annotations

import pytest
import torch

from foundation.data.pair_search import owners


@pytest.mark.parametrize("counts", [[2, 0, 3, 1], [0, 0, 2], [3, 0, 0], [0], []])
def test_owners_expand_counts_with_zeros_anywhere(counts):
    count = torch.tensor(counts, dtype=torch.int32)
    owner, bounds = owners(count)
    expected = torch.repeat_interleave(
        torch.arange(len(counts)), torch.tensor(counts, dtype=torch.long)
    )
    assert owner.dtype == bounds.dtype == torch.int32
    assert owner.tolist() == expected.tolist()
    assert bounds.tolist() == [0] + torch.cumsum(torch.tensor(counts, dtype=torch.long), 0).tolist()
