"""Migration histories, one folder per database."""
