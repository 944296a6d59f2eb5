"""``python -m s2cv.register``: the ``s2cv register`` command (``s2cv/cli/register.py``).

``s2cv.register`` itself is the function ``s2cv.registration.register.register``; importing this module (an
old path: ``from s2cv.register import register``) keeps ``s2cv.register(...)`` callable.
"""
import sys

from s2cv.cli import callable_module
from s2cv.cli.register import main
from s2cv.registration.register import SAMPLES, register, sample_corner_error, sample_ground_truth  # noqa: F401 - the old import path

callable_module(__name__, register)

if __name__ == "__main__":
    sys.exit(main(prog="python -m s2cv.register"))
