"""The project's YAML configs, installed as the package `foundation.configs` (pyproject.toml maps it to this
folder, which stays the source of truth). Look them up with foundation.resources, never by a path relative to a
module file: an installed wheel has no repository around it."""
