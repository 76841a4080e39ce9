"""Model size bounds (foundation/models/limits.py): every shipped config is inside them, and a config beyond
them is refused before anything is allocated, proved in a process whose address space is capped."""

from __future__ import annotations

import json

import pytest

from foundation.config import ConfigError
from foundation.models import build_potential, resolve_model_config
from foundation.models.config import available_models
from foundation.models.limits import MAX_PARAMETERS
from foundation.models.potential import parameter_count
from tests.memory_limit import run_capped

BUILD = (
    "import json, sys; from foundation.models import build_potential; "
    "build_potential(json.loads(sys.argv[1]), sys.argv[2:])"
)


@pytest.mark.parametrize("name", available_models())
def test_every_shipped_config_is_inside_the_bounds(name):
    assert parameter_count(resolve_model_config(name)) <= MAX_PARAMETERS


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("backbone.hidden=16384", "backbone.hidden: 16384 is more than 8192"),
        ("backbone.layers=1000000", "backbone.layers: 1000000 is more than 64"),
        ("backbone.cutoff=100", "backbone.cutoff: 100.0 A is beyond"),
        ("backbone.cutoff=1e6", "backbone.cutoff: 1000000.0 A is beyond"),
        ("backbone.cutoff=.nan", "backbone.cutoff: nan A is beyond"),
        ("backbone.hidden=4096", "has 1,487,732,878 parameters, more than 1,000,000,000"),
    ],
)
def test_a_model_beyond_the_bounds_is_refused_before_it_is_built(override, message):
    with pytest.raises(ConfigError, match=message):
        build_potential("scalable-xl", [override])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("backbone.hidden=0", "backbone.hidden must be >= 1, got 0"),
        ("backbone.layers=-1", "backbone.layers must be >= 1, got -1"),
        ("backbone.num_radial=1", "backbone.num_radial must be >= 2, got 1"),
        ("backbone.cutoff=-5", "backbone.cutoff must be > 0"),
    ],
)
def test_a_model_below_the_smallest_sizes_is_refused_with_its_field(override, message):
    with pytest.raises(ConfigError, match=message):
        build_potential("scalable-xs", [override])


@pytest.mark.parametrize(
    "override", ["backbone.hidden=16384", "backbone.layers=1000000", "backbone.hidden=4096"]
)
def test_the_refusal_allocates_nothing(override):
    """Under a 2 GB address-space cap the refusal is a ConfigError; building the model (4 GB and more, or a
    million layers) would end in a MemoryError."""
    config = json.dumps({"backbone": {"name": "painn", "hidden": 1024, "layers": 8}})
    done = run_capped(["-c", BUILD, config, override])
    assert done.returncode == 1 and "refused before building" in done.stderr, done.stderr[-2000:]
    assert "MemoryError" not in done.stderr and "allocate" not in done.stderr
    small = run_capped(["-c", BUILD, config])  # the same process builds the 94M-parameter model
    assert small.returncode == 0, small.stderr[-2000:]
