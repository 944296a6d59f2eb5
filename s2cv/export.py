"""``python -m s2cv.export``: the ``s2cv export`` command (``s2cv/cli/export.py``)."""
import sys

from s2cv.cli.export import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m s2cv.export"))
