"""python3 -m pagedkv.engine: the reference engine's demo (see docs/engine.md)."""

import sys

from .demo import main

if __name__ == "__main__":
    sys.exit(main())
