"""`python -m detector ...` is the `detector` command, so that launchers which start a module
run the real CLI: `torchrun --nproc_per_node 2 -m detector train recipe.yaml`."""

import sys

from detector.cli import main

if __name__ == "__main__":
    sys.exit(main())
