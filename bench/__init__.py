"""make bench: the performance benchmark (see bench/__main__.py and the README)."""
