"""``python -m s2cv.calibrate``: the ``s2cv calibrate`` command (``s2cv/cli/calibrate.py``).

``s2cv.calibrate`` itself is the function ``s2cv.registration.calibrate.calibrate``; importing this module (an
old path: ``from s2cv.calibrate import calibrate``) keeps ``s2cv.calibrate(...)`` callable.
"""
import sys

from s2cv.cli import callable_module
from s2cv.cli.calibrate import main
from s2cv.registration.calibrate import calibrate  # noqa: F401 - the old import path

callable_module(__name__, calibrate)

if __name__ == "__main__":
    sys.exit(main(prog="python -m s2cv.calibrate"))
