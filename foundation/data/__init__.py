"""Frame records, stores, manifests, periodic graphs and batches."""
