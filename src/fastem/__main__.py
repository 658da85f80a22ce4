"""``python -m fastem``: the same command line as the ``fastem`` script."""
import sys

from fastem.cli import main

if __name__ == "__main__":
    sys.exit(main())
