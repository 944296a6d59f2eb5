"""``python -m s2cv.evaluate``: the ``s2cv evaluate`` command (``s2cv/cli/evaluate.py``)."""
import sys

from s2cv.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m s2cv.evaluate"))
