"""``python -m s2cv``: the ``s2cv`` command (``s2cv/cli/main.py``, also the console script)."""
import sys

from s2cv.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
