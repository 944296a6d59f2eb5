"""How far could a better view search take ``register`` on the rig? Every view of a grid, fitted.

For each ``rig`` variant pair of ``rig_variants.py`` (same pairs, rolls and error measure: thermal
corners, thermal px), the pair is matched at every view of a grid: scale ratios 1, 2^(1/4), ... 2^(6/4)
(the rig's true ratio is 2), each at split 0 (the finer image shrunk), 0.5 (both meet halfway) and 1
(the coarser enlarged), each at zoom 1 and sqrt(2) (both images then enlarged), and fitted as
``register`` fits a view (``register_features``: verdict and predicted error included). The oracle
count, pairs for which *some* view is accepted and within 10 px, bounds what any choice among these
views can reach; the per-view rows say which views carry it. Fits only: ``register``'s own search,
fine pass and rescale are not run here.

    python benchmarks/rig_view_oracle.py --data ../shared/data/roadscene --split val --draws 4 --out docs/eval/rig-view-oracle-val
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from s2cv.registration import search
from s2cv.registration.register import for_detector, register_features

sys.path.insert(0, str(Path(__file__).parent))
from rig_variants import rig_pairs_main, thermal_corner_errors  # noqa: E402

RATIOS = tuple(2 ** (k / 4) for k in range(7))
SPLITS = (0.0, 0.5, 1.0)
ZOOMS = (1.0, math.sqrt(2.0))


def views_of(det, a2: np.ndarray, b2: np.ndarray, H: np.ndarray, S: np.ndarray, A: np.ndarray) -> list[dict]:
    """Every grid view of one rig pair: its fit's thermal-corner error, acceptance and inliers."""
    va, vb = for_detector(a2, det, "visible"), for_detector(b2, det, "IR")
    dets = search.Detections(va, vb, lambda image, mask: det.detectAndCompute(image, mask), {})
    out = []
    for ratio in RATIOS:
        for split in SPLITS if ratio > 1 else (0.0,):
            for zoom in ZOOMS:
                rv, ri = search.side_ratios(search.View(ratio, 0, split))
                dv, di = dets.get("vis", rv * zoom, 0), dets.get("ir", ri * zoom, 0)
                res = register_features(dv[0], dv[1], di[0], di[1], norm=det.defaultNorm(),
                                        vis_shape=va.shape[:2], ir_shape=vb.shape[:2])
                err = thermal_corner_errors(res.H, H, S, A, b2.shape)[1] if res.H is not None else math.inf
                out.append({"ratio": round(ratio, 4), "split": split, "zoom": round(zoom, 4),
                            "error_tir": err if math.isfinite(err) else None,
                            "accepted": bool(res.success and not res.implausible_accepted),
                            "inliers": res.num_inliers})
    return out


def table(rows: list[dict]) -> str:
    good = lambda v: v["accepted"] and v["error_tir"] is not None and v["error_tir"] <= 10  # noqa: E731
    n = len(rows)
    oracle = sum(any(good(v) for v in r["views"]) for r in rows)
    lines = [f"pairs: {n}; some view accepted and within 10 thermal px: {oracle} ({100 * oracle / n:.0f} %)", "",
             "| ratio | split | zoom | accepted and within 10 px | accepted and > 10 px |", "|---|---|---|---|---|"]
    keys = [(v["ratio"], v["split"], v["zoom"]) for v in rows[0]["views"]]
    for i, (ratio, split, zoom) in enumerate(keys):
        ok = sum(good(r["views"][i]) for r in rows)
        bad = sum(r["views"][i]["accepted"] and not good(r["views"][i]) for r in rows)
        lines.append(f"| {ratio:.2f} | {split:g} | {zoom:.2f} | {ok} | {bad} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return rig_pairs_main(__doc__, "views", views_of, table, argv)


if __name__ == "__main__":
    sys.exit(main())
