"""``python -m s2cv.convert``: the ``s2cv convert`` command (``s2cv/cli/convert.py``)."""
import sys

from s2cv.cli.convert import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m s2cv.convert"))
