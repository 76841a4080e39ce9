# The two commands of the README, and the pieces they are made of.
PYTHON ?= python3

.PHONY: install install-dev demo test bench

install:            ## install foundation into the current Python (torch pinned: never replaced)
	bash scripts/install.sh

install-dev: install ## + test and benchmark dependencies, and the system packages the tests use
	bash scripts/install.sh dev
	bash scripts/system-deps.sh

demo: install       ## the built-in default: synth frames, shard, pre-train, fine-tune, report, release
	foundation demo

test: install-dev   ## lint and format check (ruff), then the whole test suite (starts the local Slurm cluster when root)
	$(PYTHON) -m ruff check . && $(PYTHON) -m ruff format --check .
	$(PYTHON) -m pytest

bench: install-dev  ## every CPU benchmark (+ the bench extra: MACE, vesin); figures go to docs/benchmarks.md by hand
	bash scripts/install.sh dev,bench
	for b in $(filter-out bench/gpu.py bench/revisions.py,$(wildcard bench/*.py)); do OMP_NUM_THREADS=1 $(PYTHON) $$b || exit 1; done
