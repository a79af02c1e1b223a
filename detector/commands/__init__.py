"""Sub-commands of the `detector` CLI, one module each (see detector/cli.py)."""
