"""``python -m s2cv.build_engine``: the ``s2cv build-engine`` command (``s2cv/cli/build_engine.py``)."""
import sys

from s2cv.cli.build_engine import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m s2cv.build_engine"))
