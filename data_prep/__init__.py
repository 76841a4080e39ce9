"""data_prep: raw DFT outputs -> validated, deduplicated, split, sharded datasets (`foundation prep`);
`prep_objects` does the same for in-memory Atoms / Structures / entries."""

from foundation.data_prep.objects import prep_objects

__all__ = ["prep_objects"]
