"""data_prep: raw DFT outputs -> validated, deduplicated, split, sharded datasets (`foundation prep`)."""
