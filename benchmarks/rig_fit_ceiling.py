"""Are the rig's correct matches there, and does the robust fit find them?

For each ``rig`` variant pair of ``rig_variants.py`` (same pairs, rolls and thermal-corner error),
the pair is matched at the rig's true ratio (2x) at three splits (the finer image shrunk, both
meeting halfway, the coarser enlarged) and the matches are fitted three ways: MAGSAC++ alone with
``register``'s effort (``THOROUGH``), ``register``'s fit (``fit_transform(thorough=True)``: MAGSAC++
and the similarity-seeded refit), and least squares on the matches within 3 thermal px of the truth
(what the correct matches alone would give: the fit's ceiling). Fits only, no verdict or predicted
error. Counts are pairs within 10 thermal px.

    python benchmarks/rig_fit_ceiling.py --data ../shared/data/roadscene --split val --draws 4 --out docs/eval/rig-fit-ceiling-val
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import cv2
import numpy as np

from s2cv.registration import search
from s2cv.registration.geometry import MAGSAC, THOROUGH, fit_transform, least_squares, mutual_nn_matches, warp_points
from s2cv.registration.register import for_detector

sys.path.insert(0, str(Path(__file__).parent))
from rig_variants import rig_pairs_main, thermal_corner_errors  # noqa: E402

SPLITS = (0.0, 0.5, 1.0)
RATIO = 2.0
CORRECT_PX = 3.0  # thermal px


def fits_of(det, a2: np.ndarray, b2: np.ndarray, H: np.ndarray, S: np.ndarray, A: np.ndarray) -> dict:
    """Per split: matches, correct matches, and each fit's thermal-corner error (None: no fit)."""
    va, vb = for_detector(a2, det, "visible"), for_detector(b2, det, "IR")
    dets = search.Detections(va, vb, lambda image, mask: det.detectAndCompute(image, mask), {})
    truth = S @ np.linalg.inv(H) @ np.linalg.inv(A)  # IR -> visible, the variant's pixels
    out = {}
    for split in SPLITS:
        rv, ri = search.side_ratios(search.View(RATIO, 0, split))
        dv, di = dets.get("vis", rv, 0), dets.get("ir", ri, 0)
        m = mutual_nn_matches(dv[1], di[1])
        pv = np.float64([dv[0][i].pt for i in m[:, 0]]).reshape(-1, 2)
        pi = np.float64([di[0][j].pt for j in m[:, 1]]).reshape(-1, 2)
        correct = np.linalg.norm(warp_points(pi, truth) - pv, axis=1) / RATIO <= CORRECT_PX
        threshold = search.view_threshold(3.0, dv[4])  # register's view threshold
        err = lambda F: (thermal_corner_errors(F, H, S, A, b2.shape)[1] if F is not None else math.inf)  # noqa: E731
        plain = cv2.findHomography(pi, pv, MAGSAC, threshold, **THOROUGH)[0] if len(pi) >= 4 else None
        ceiling = least_squares(pi[correct], pv[correct]) if correct.sum() >= 4 else None
        errors = {"magsac": err(plain), "register": err(fit_transform(pi, pv, "homography", threshold, thorough=True)[0]),
                  "correct_only": err(ceiling)}
        out[f"{split:g}"] = {"matches": len(m), "correct": int(correct.sum()),
                             **{k: (v if math.isfinite(v) else None) for k, v in errors.items()}}
    return out


def table(rows: list[dict]) -> str:
    within = lambda v: v is not None and v <= 10  # noqa: E731
    lines = [f"pairs: {len(rows)}; view: ratio {RATIO:g}; counts: pairs within 10 thermal px", "",
             "| split | MAGSAC++ alone | register's fit (seeded) | least squares on the correct matches | "
             "correct matches (min / median) | matches (min - max) | share of the matches (median) | "
             "share where MAGSAC++ alone misses (median, min - max) |", "|---|---|---|---|---|---|---|---|"]
    for split in (f"{s:g}" for s in SPLITS):
        v = [r["fits"][split] for r in rows]
        correct = [x["correct"] for x in v]
        share = lambda xs: [100 * x["correct"] / max(x["matches"], 1) for x in xs]  # noqa: E731
        missed = share([x for x in v if not within(x["magsac"])]) or [math.nan]
        lines.append(f"| {split} | {sum(within(x['magsac']) for x in v)} | {sum(within(x['register']) for x in v)} | "
                     f"{sum(within(x['correct_only']) for x in v)} | {min(correct)} / {int(np.median(correct))} | "
                     f"{min(x['matches'] for x in v)} - {max(x['matches'] for x in v)} | {np.median(share(v)):.1f} % | "
                     f"{np.median(missed):.1f} % ({min(missed):.1f} - {max(missed):.1f} %) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return rig_pairs_main(__doc__, "fits", fits_of, table, argv)


if __name__ == "__main__":
    sys.exit(main())
