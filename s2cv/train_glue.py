"""``python -m s2cv.train_glue``: the ``s2cv train-glue`` command (``s2cv/cli/train_glue.py``)."""
import sys

from s2cv.cli.train_glue import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m s2cv.train_glue"))
