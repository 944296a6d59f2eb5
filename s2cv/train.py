"""``python -m s2cv.train``: the ``s2cv train`` command (``s2cv/cli/train.py``)."""
import sys

from s2cv.cli.train import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m s2cv.train"))
