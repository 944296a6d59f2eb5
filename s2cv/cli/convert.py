"""``s2cv convert SRC -o OUT.pt`` (or ``python -m s2cv.convert``): XFeat's released weights -> an s2cv checkpoint.

The result loads like any s2cv model (``S2Net_create(model=OUT)``, ``s2cv train --init OUT``,
``s2cv export OUT``); the zoo's ``xfeat`` is this conversion of the authors' file (Apache-2.0).
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

from s2cv.models.checkpoint import convert_released


def build_parser(prog: str = "s2cv convert") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("src", type=Path, help="XFeat's released state dict (xfeat.pt)")
    p.add_argument("-o", "--output", "--out", dest="out", type=Path, required=True, help="s2cv checkpoint to write")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "s2cv convert") -> int:
    p = build_parser(prog)
    args = p.parse_args(argv)
    if not args.src.is_file():
        p.error(f"{args.src} not found")
    print(f"wrote {convert_released(args.src, args.out)}")
    return 0

