"""s2cv.registration.verdict and its use by register (Python and CLI) and evaluate.

Mismatched pairs are built so that the checks register had before the verdict (a fit exists,
is invertible, has >= min_inliers inliers) pass: each refusal below is the verdict's doing, and
the tests fail if it is removed.
"""
from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from conftest import textured_image, write_pair

import s2cv
from s2cv.__main__ import main as cli_main
from s2cv.registration import register as reg
from s2cv.registration.verdict import DEFAULT_THRESHOLDS, Verdict, VerdictThresholds, judge, plausibility

SHAPE = (240, 320)


def gray(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def tiles_shuffled(img: np.ndarray, n: int = 3, seed: int = 0) -> np.ndarray:
    """The image cut into n x n tiles put back in a random order: every tile matches, no single
    homography explains the whole."""
    h, w = img.shape[0] // n * n, img.shape[1] // n * n
    th, tw = h // n, w // n
    tiles = [img[i * th:(i + 1) * th, j * tw:(j + 1) * tw] for i in range(n) for j in range(n)]
    order = np.random.default_rng(seed).permutation(len(tiles))
    return np.vstack([np.hstack([tiles[order[i * n + j]] for j in range(n)]) for i in range(n)])


def exact_matches(H: np.ndarray, n: int = 300, outliers: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n points spread over the image mapped exactly by H, plus random outlier pairs."""
    rng = np.random.default_rng(seed)
    h, w = SHAPE
    src = rng.uniform([0, 0], [w - 1, h - 1], (n + outliers, 2))
    dst = cv2.perspectiveTransform(src[:n].reshape(-1, 1, 2), H).reshape(-1, 2)
    dst = np.vstack([dst, rng.uniform([0, 0], [w - 1, h - 1], (outliers, 2))])
    return src, dst


# ---------------------------------------------------------------- the verdict function


def test_a_good_fit_is_plausible():
    H = np.array([[0.98, -0.05, 6.0], [0.04, 1.01, -4.0], [1e-5, -2e-5, 1.0]])
    src, dst = exact_matches(H)
    v = plausibility(H, src, dst, SHAPE, SHAPE)
    assert isinstance(v, Verdict) and v.ok and v.reason == "" and v.failed == ()
    s = v.signals
    assert s["inliers"] >= 300 and s["evidence"] > 10 and s["uniqueness"] > 10
    assert s["hull_share"] > 0.8 and s["halves_disagreement_px"] < 1e-3
    summary = json.loads(json.dumps(v.summary()))
    assert summary["plausible"] and summary["thresholds"]["min_evidence"] == DEFAULT_THRESHOLDS.min_evidence


@pytest.mark.parametrize("name, H, test", [
    ("mirror", np.array([[-1.0, 0, 319], [0, 1, 0], [0, 0, 1]]), "orientation"),
    ("fold", np.array([[1.0, 0, 0], [0, 1, 0], [-0.004, 0, 1]]), "orientation"),  # horizon inside the image
    ("collapse", np.diag([0.02, 0.02, 1.0]), "scale"),
    ("explode", np.diag([20.0, 20.0, 1.0]), "scale"),
    ("shear", np.array([[1.0, 3.0, 0], [0, 1, 0], [0, 0, 1]]), "corner_angle"),
])
def test_degenerate_homographies_are_refused(name, H, test):
    """Even with every match an exact inlier, a transform no camera pair produces is refused,
    and the reason names the test."""
    src, dst = exact_matches(H, outliers=0)
    v = plausibility(H, src, dst, SHAPE, SHAPE)
    assert not v.ok and test in v.failed, (name, v.failed)
    assert v.reason.startswith(v.failed[0] + ":")


def test_clustered_support_is_refused():
    """All inliers in one corner: spread fails, with the measured share in the reason."""
    H = np.eye(3)
    rng = np.random.default_rng(1)
    src = np.vstack([rng.uniform(0, 30, (200, 2)), rng.uniform(0, 239, (400, 2))])
    dst = np.vstack([src[:200], rng.uniform(0, 239, (400, 2))])
    v = plausibility(H, src, dst, SHAPE, SHAPE)
    assert "spread" in v.failed and "% of the overlap" in v.reason


def test_thresholds_decide():
    """judge applies the thresholds it is given to the same signals."""
    H = np.eye(3)
    src, dst = exact_matches(H, n=40, outliers=400)
    v = plausibility(H, src, dst, SHAPE, SHAPE)
    strict = judge(v.signals, VerdictThresholds(min_evidence=v.signals["evidence"] + 1))
    assert v.ok and not strict.ok and strict.failed == ("evidence",)
    assert f"{v.signals['evidence']:.2f}x" in strict.reason


def test_deterministic():
    H = np.eye(3)
    src, dst = exact_matches(H, n=30, outliers=500)
    assert plausibility(H, src, dst, SHAPE, SHAPE).signals == plausibility(H, src, dst, SHAPE, SHAPE).signals


@pytest.mark.parametrize("kwargs, match", [
    ({"H": np.eye(2)}, "3x3"),
    ({"H": np.full((3, 3), np.nan)}, "3x3"),
    ({"src": np.zeros((10, 3))}, "src"),
    ({"dst": np.zeros((9, 2))}, "differ in length"),
    ({"dst": np.full((10, 2), np.inf)}, "NaN/Inf"),
    ({"src_shape": (0, 5)}, "src_shape"),
    ({"inliers": np.ones(3, bool)}, "inliers"),
    ({"transform": "projective"}, "transform"),
])
def test_bad_arguments(kwargs, match):
    args = {"H": np.eye(3), "src": np.zeros((10, 2)), "dst": np.zeros((10, 2)), "src_shape": SHAPE, "dst_shape": SHAPE}
    args.update(kwargs)
    extra = {k: args.pop(k) for k in ("inliers", "transform") if k in args}
    with pytest.raises(ValueError, match=match):
        plausibility(args["H"], args["src"], args["dst"], args["src_shape"], args["dst_shape"], **extra)


# ---------------------------------------------------------------- register (Python)


@pytest.fixture(scope="module")
def vis() -> np.ndarray:
    return textured_image()


def test_true_pairs_are_accepted(vis):
    H = np.array([[0.97, -0.10, 14.0], [0.09, 0.96, -8.0], [2e-5, -3e-5, 1.0]])
    r = reg.register(vis, cv2.warpPerspective(gray(vis), H, SHAPE[::-1]), cv2.SIFT_create(2000))
    assert r.success and r.verdict is not None and r.verdict.ok and not r.implausible_accepted
    vis_path, nir_path, _ = reg.SAMPLES["visnir"]
    r = reg.register(vis_path, nir_path, cv2.SIFT_create(4096))
    assert r.success and r.verdict.ok, r.message


@pytest.mark.skipif("default" not in s2cv.available_models(), reason="no default model shipped")
@pytest.mark.parametrize("name", sorted(reg.SAMPLES))
def test_bundled_pairs_are_accepted_with_the_default(name):
    vis_path, ir_path, _ = reg.SAMPLES[name]
    r = reg.register(vis_path, ir_path)
    assert r.success and r.verdict.ok, r.message
    assert reg.sample_corner_error(r, reg.sample_ground_truth(name)) < 20


def mismatched_cases(vis: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """name -> (visible, IR, min_inliers) where the fit has at least min_inliers inliers."""
    return {
        "unrelated textures": (vis, gray(textured_image(seed=7)), 4),
        "shuffled tiles": (vis[:240, :318], tiles_shuffled(gray(vis)), 12),
    }


@pytest.mark.parametrize("case", ["unrelated textures", "shuffled tiles"])
def test_mismatched_pairs_are_refused(vis, case):
    a, b, min_inliers = mismatched_cases(vis)[case]
    r = reg.register(a, b, cv2.SIFT_create(2000), min_inliers=min_inliers)
    # what register checked before: a fit with enough inliers -- it used to be a success
    assert r.H is not None and r.num_inliers >= min_inliers
    assert not r.success and r.verdict is not None and not r.verdict.ok
    assert r.message.startswith("implausible homography, refused: ") and r.verdict.reason in r.message
    kept = reg.register(a, b, cv2.SIFT_create(2000), min_inliers=min_inliers, accept_implausible=True)
    assert kept.success and kept.implausible_accepted and kept.message == "" and not kept.verdict.ok
    np.testing.assert_allclose(kept.H, r.H)
    assert kept.summary()["implausible_accepted"] and kept.summary()["verdict"]["plausible"] is False


@pytest.mark.skipif("default" not in s2cv.available_models(), reason="no default model shipped")
def test_bundled_cross_dataset_pair_is_refused_with_the_default():
    """The bundled RoadScene visible image against the bundled VIS-NIR NIR image: different scenes."""
    vis_path = reg.SAMPLES["roadscene"][0]
    nir_path = reg.SAMPLES["visnir"][1]
    r = reg.register(vis_path, nir_path, min_inliers=4)
    assert r.H is not None and r.num_inliers >= 4
    assert not r.success and not r.verdict.ok, r.verdict.signals


def test_register_features_without_ir_shape(vis):
    """Callers that have only features (no IR image) still get a verdict."""
    H = np.array([[1.0, 0.02, 5.0], [-0.02, 1.0, 3.0], [0, 0, 1.0]])
    ir = cv2.warpPerspective(gray(vis), H, SHAPE[::-1])
    sift = cv2.SIFT_create(2000)
    kv, dv = sift.detectAndCompute(vis, None)
    ki, di = sift.detectAndCompute(ir, None)
    r = reg.register_features(kv, dv, ki, di, norm=sift.defaultNorm(), vis_shape=vis.shape)
    assert r.success and r.verdict.ok and "verdict" in r.timings


# ---------------------------------------------------------------- register (CLI)


def test_cli_refuses_a_mismatched_pair_with_exit_2(vis, tmp_path, capsys):
    a, b, _ = mismatched_cases(vis)["shuffled tiles"]
    va, ib = write_pair(tmp_path / "in", a, b)
    out = tmp_path / "out"
    assert cli_main(["register", va, ib, "-o", str(out), "--model", "sift", "--nfeatures", "2000"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("s2cv register: error: registration failed: implausible homography, refused:")
    assert "\n" not in err and "--accept-implausible" in err
    summary = json.loads((out / "summary.json").read_text())
    verdict = summary["verdict"]
    assert summary["success"] is False and summary["implausible_accepted"] is False
    assert verdict["plausible"] is False and verdict["failed"] and verdict["failed"][0] in err
    assert verdict["signals"]["inliers"] == summary["inliers"] and verdict["thresholds"]["min_uniqueness"] > 1
    assert not (out / "H.txt").exists() and (out / "matches.png").is_file()


def test_cli_accept_implausible_keeps_the_fit(vis, tmp_path, capsys):
    a, b, _ = mismatched_cases(vis)["shuffled tiles"]
    va, ib = write_pair(tmp_path / "in", a, b)
    out = tmp_path / "out"
    argv = ["register", va, ib, "-o", str(out), "--model", "sift", "--nfeatures", "2000", "--accept-implausible"]
    assert cli_main(argv) == 0
    line = capsys.readouterr().out
    assert line.startswith("registered (IMPLAUSIBLE, kept by --accept-implausible:")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["success"] is True and summary["implausible_accepted"] is True
    assert summary["verdict"]["plausible"] is False and summary["warning"].startswith("implausible")
    assert (out / "H.txt").is_file() and "IMPLAUSIBLE" in (out / "H.txt").read_text()


def test_cli_true_pair_summary_carries_the_verdict(vis, tmp_path, capsys):
    H = np.array([[0.97, -0.10, 14.0], [0.09, 0.96, -8.0], [2e-5, -3e-5, 1.0]])
    va, ib = write_pair(tmp_path / "in", vis, cv2.warpPerspective(gray(vis), H, SHAPE[::-1]))
    out = tmp_path / "out"
    assert cli_main(["register", va, ib, "-o", str(out), "--model", "sift", "--nfeatures", "2000"]) == 0
    assert capsys.readouterr().out.startswith("registered: ")
    verdict = json.loads((out / "summary.json").read_text())["verdict"]
    assert verdict["plausible"] is True and verdict["reason"] == "" and verdict["signals"]["evidence"] > 5
    assert math.isfinite(verdict["signals"]["halves_disagreement_px"])


# ---------------------------------------------------------------- evaluate


def test_evaluate_reports_the_verdict_per_pair(vis, tmp_path, capsys):
    from s2cv.evaluate import main as evaluate_main

    H = np.array([[0.97, -0.10, 14.0], [0.09, 0.96, -8.0], [2e-5, -3e-5, 1.0]])
    d = tmp_path / "pairs"
    d.mkdir()
    cv2.imwrite(str(d / "true_a.png"), vis)
    cv2.imwrite(str(d / "true_b.png"), cv2.warpPerspective(gray(vis), H, SHAPE[::-1]))
    a, b, _ = mismatched_cases(vis)["shuffled tiles"]
    cv2.imwrite(str(d / "shuffled_a.png"), a)
    cv2.imwrite(str(d / "shuffled_b.png"), b)
    (d / "homographies.json").write_text(json.dumps({"true": H.tolist(), "shuffled": np.eye(3).tolist()}))
    out = tmp_path / "out"
    argv = ["--dataset", "pairs", "--data", str(d), "--methods", "sift", "--k", "2000", "--out", str(out),
            "--plots", "0", "--quiet"]
    assert evaluate_main(argv) == 0
    table = capsys.readouterr().out
    assert "| refused % | refused ≤10 px | kept >10 px |" in table.splitlines()[0]
    payload = json.loads((out / "results.json").read_text())
    verdicts = {p["name"]: p["verdict"] for p in payload["pairs"]}
    assert verdicts == {"true": "plausible", "shuffled": "refused"}
    row = payload["summary"][0]
    assert row["refused"] == 0.5 and row["refused@10"] == 0 and row["reg@10"] == 0.5
