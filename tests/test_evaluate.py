import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import textured_image

from s2cv.evaluate import main
from s2cv.evaluation import plots
from s2cv.evaluation.benchmark import evaluate
from s2cv.evaluation.datasets import load_pairs
from s2cv.evaluation.methods import create_method
from s2cv.evaluation.metrics import aggregate
from s2cv.evaluation.report import markdown_table
from s2cv.registration import viz
from s2cv.feature.image import read_image

H_TRUE = np.array([[0.98, -0.12, 18.0], [0.11, 0.97, -6.0], [1e-5, -2e-5, 1.0]])


@pytest.fixture(scope="module")
def pair_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`pairs` layout: a colour image a, the gray warp of it b, and homographies.json."""
    d = tmp_path_factory.mktemp("pairs")
    a = textured_image()
    b = cv2.warpPerspective(cv2.cvtColor(a, cv2.COLOR_BGR2GRAY), H_TRUE, (a.shape[1], a.shape[0]))
    cv2.imwrite(str(d / "synth_a.png"), a)
    # Saved as 3-channel JPEG, like the thermal/NIR files of the real data sets.
    b3 = cv2.cvtColor(b, cv2.COLOR_GRAY2BGR)
    cv2.imwrite(str(d / "synth_b.jpg"), b3, [cv2.IMWRITE_JPEG_QUALITY, 95])
    (d / "homographies.json").write_text(json.dumps({"synth": H_TRUE.tolist()}))
    return d


def test_load_pairs_json_layout(pair_dir: Path):
    (pair,) = load_pairs(pair_dir)
    assert pair.name == "synth"
    assert pair.path_a.name == "synth_a.png" and pair.path_b.name == "synth_b.jpg"
    assert np.allclose(pair.H, H_TRUE)


def test_load_pairs_txt_layout(tmp_path: Path):
    cv2.imwrite(str(tmp_path / "x_a.png"), np.zeros((8, 8), np.uint8))
    cv2.imwrite(str(tmp_path / "x_b.tif"), np.zeros((8, 8), np.uint16))
    (tmp_path / "pairs.txt").write_text("# name h11..h33\nx 1 0 2 0 1 3 0 0 1  # shift\n\n")
    (pair,) = load_pairs(tmp_path)
    assert np.allclose(pair.H, [[1, 0, 2], [0, 1, 3], [0, 0, 1]])
    assert read_image(pair.path_b).dtype == np.uint16


def test_load_pairs_reports_missing_files(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="homographies.json nor pairs.txt"):
        load_pairs(tmp_path)
    (tmp_path / "pairs.txt").write_text("ghost 1 0 0 0 1 0 0 0 1\n")
    with pytest.raises(FileNotFoundError, match="ghost_a"):
        load_pairs(tmp_path)


def test_read_image_makes_gray_files_single_channel(pair_dir: Path):
    assert read_image(pair_dir / "synth_a.png").shape == (240, 320, 3)
    assert read_image(pair_dir / "synth_b.jpg").shape == (240, 320)
    with pytest.raises(FileNotFoundError):
        read_image(pair_dir / "nope.png")


def test_evaluate_sift_registers_synthetic_pair(pair_dir: Path, tmp_path: Path):
    pairs = load_pairs(pair_dir)
    results = evaluate(pairs, ["sift"], [1024], 3.0, out_dir=tmp_path, n_plots=1, progress=False)
    (r,) = results
    assert (r.method, r.k) == ("sift", 1024)
    assert 0 < r.kp_a <= 1024 and 0 < r.kp_b <= 1024
    assert r.ncm > 80 and r.cmr > 0.5 and r.mma[2] > 0.5
    assert r.corner_error < 3.0
    assert r.ms > 0
    assert (tmp_path / "matches_sift_k1024_synth.png").is_file()


def test_evaluate_skips_unknown_methods(pair_dir: Path):
    messages: list[str] = []
    pairs = load_pairs(pair_dir)
    results = evaluate(pairs, ["nope", "orb"], [200], log=messages.append, progress=False)
    assert [r.method for r in results] == ["orb"]
    assert len(messages) == 1 and "nope" in messages[0]
    assert evaluate(pairs, ["nope"], [200], log=messages.append, progress=False) == []
    with pytest.raises(ValueError, match="positive"):
        evaluate(pairs, ["orb"], [], progress=False)


@pytest.mark.parametrize("name", ["akaze", "brisk"])
def test_topk_methods_respect_budget(name: str):
    det = create_method(name, 25)
    kps, desc = det.detectAndCompute(textured_image(), None)
    assert 0 < len(kps) <= 25 and desc is not None and len(desc) == len(kps)
    assert det.defaultNorm() == cv2.NORM_HAMMING


def test_markdown_table_has_a_row_per_method_and_k(pair_dir: Path):
    results = evaluate(load_pairs(pair_dir), ["orb"], [100, 200], progress=False)
    table = markdown_table(aggregate(results)).splitlines()
    assert table[0].startswith("| method | K | NC | NCM | CMR | MMA@3 |")
    assert len(table) == 4 and table[2].startswith("| orb | 100 |")


def test_cli_writes_json_csv_and_plots(
    pair_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "out"
    argv = ["--dataset", "pairs", "--data", str(pair_dir), "--methods", "sift,orb"]
    assert main(argv + ["--k", "256,512", "--out", str(out), "--plots", "1", "--quiet"]) == 0
    assert "| sift | 512 |" in capsys.readouterr().out
    payload = json.loads((out / "results.json").read_text())
    assert len(payload["summary"]) == 4 and len(payload["pairs"]) == 4
    assert payload["config"]["k"] == [256, 512]
    sift = next(r for r in payload["summary"] if r["method"] == "sift" and r["k"] == 512)
    assert sift["reg@5"] == 1.0
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    keys = [(r["method"], r["k"]) for r in rows]
    assert keys == [("sift", "256"), ("sift", "512"), ("orb", "256"), ("orb", "512")]
    assert (out / "mma_k256.png").is_file() and (out / "mma_k512.png").is_file()
    assert cv2.imread(str(out / "matches_sift_k512_synth.png")) is not None


def test_cli_json_has_no_infinity(tmp_path: Path):
    # Identical flat images give no keypoints: registration fails, error is inf -> null in JSON.
    for suffix in ("a", "b"):
        cv2.imwrite(str(tmp_path / f"flat_{suffix}.png"), np.full((64, 64), 128, np.uint8))
    (tmp_path / "homographies.json").write_text(json.dumps({"flat": np.eye(3).tolist()}))
    out = tmp_path / "out"
    argv = ["--dataset", "pairs", "--data", str(tmp_path), "--methods", "orb", "--k", "50"]
    assert main(argv + ["--out", str(out), "--quiet"]) == 0
    text = (out / "results.json").read_text()
    assert "Infinity" not in text and "NaN" not in text
    assert json.loads(text)["pairs"][0]["corner_error"] is None


def test_cli_needs_data(monkeypatch: pytest.MonkeyPatch, pair_dir: Path, tmp_path: Path):
    monkeypatch.delenv("S2CV_DATA", raising=False)
    with pytest.raises(SystemExit) as exc:
        main(["--dataset", "pairs", "--methods", "orb"])
    assert exc.value.code == 2
    monkeypatch.setenv("S2CV_DATA", str(pair_dir))
    argv = ["--dataset", "pairs", "--methods", "orb", "--k", "50", "--out", str(tmp_path)]
    assert main(argv + ["--quiet"]) == 0


def test_cli_fails_when_no_method_is_available(pair_dir: Path, tmp_path: Path):
    argv = ["--dataset", "pairs", "--data", str(pair_dir), "--methods", "nope"]
    assert main(argv + ["--out", str(tmp_path)]) == 1


def test_draw_matches_colours_correct_and_wrong():
    a, b = np.zeros((20, 30), np.uint8), np.zeros((10, 40, 3), np.uint8)
    canvas = viz.draw_matches(a, b, [[5, 5], [5, 15]], [[5, 5], [5, 5]], [True, False])
    assert canvas.shape == (20, 70, 3) and canvas.dtype == np.uint8
    assert tuple(canvas[5, 5]) == viz.GREEN
    assert tuple(canvas[15, 5]) == viz.RED
    with pytest.raises(ValueError):
        viz.draw_matches(a, b, [[0, 0]], [[0, 0]], [True, False])


def test_overlay_checkerboard():
    a, b = np.zeros((4, 4), np.uint8), np.full((4, 4), 255, np.uint8)
    out = viz.overlay(a, b, tile=2)
    assert out.shape == (4, 4, 3)
    assert out[0, 0, 0] == 0 and out[0, 2, 0] == 255 and out[2, 0, 0] == 255 and out[2, 2, 0] == 0
    with pytest.raises(ValueError):
        viz.overlay(a, np.zeros((5, 4), np.uint8))


def test_plot_mma_writes_png(tmp_path: Path):
    plots.plot_mma({"x": [0.1 * i for i in range(1, 11)]}, tmp_path / "mma.png")
    assert cv2.imread(str(tmp_path / "mma.png")) is not None


def test_scene_summary_groups_pairs_by_name_prefix():
    from s2cv.evaluation.metrics import PairResult
    from s2cv.evaluation.report import SCENE_COLUMNS, scene_summary

    def pair(name: str, ncm: int, err: float) -> PairResult:
        return PairResult(name, "m", 1024, 100, 100, 50, 60, ncm, ncm / 50, [0.0] * 10, err)

    results = [pair("field/1", 10, 2.0), pair("field/2", 30, 50.0), pair("urban/1", 5, 1.0)]
    rows = {row["scene"]: row for row in scene_summary(results)}
    assert set(rows) == {"field", "urban"}
    assert rows["field"]["pairs"] == 2 and rows["field"]["ncm"] == 20 and rows["field"]["reg@5"] == 0.5
    assert rows["urban"]["reg@5"] == 1.0
    assert "| field | m | 1024 | 2 | 20.0 |" in markdown_table(list(rows.values()), SCENE_COLUMNS)
    assert scene_summary([pair("FLIR_0001", 1, 1.0)]) == []


def test_evaluate_refine_adds_a_row_per_s2net_method(pair_dir: Path):
    import s2cv

    if "default" not in s2cv.available_models():
        pytest.skip("no default model shipped")
    results = evaluate(load_pairs(pair_dir), ["s2net", "sift"], [512], 3.0, refine=True, progress=False)
    by_method = {r.method: r for r in results}
    assert sorted(by_method) == ["s2net", "s2net+refine", "sift"]  # SIFT has no dense maps to refine on
    plain, refined = by_method["s2net"], by_method["s2net+refine"]
    assert (refined.ncm, refined.nc, refined.k) == (plain.ncm, plain.nc, plain.k)
    assert refined.corner_error < 2.0, (plain.corner_error, refined.corner_error)


def test_evaluate_matcher_glue_feeds_s2glue_matches(pair_dir: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]):
    """--matcher glue: the scored matches come from S2Glue (rows "<spec>+glue"), not mutual NN;
    a bare s2net means the matcher's detector, and methods it cannot match are skipped."""
    import s2cv
    from s2cv.evaluation.benchmark import glue_matches
    from s2cv.registration.geometry import mutual_nn_matches

    if "default" not in s2cv.available_matchers():
        pytest.skip("no S2Glue graph shipped")
    pairs = load_pairs(pair_dir)
    messages: list[str] = []
    spec = "s2net:s2xfeat"
    (mnn,) = evaluate(pairs, [spec], [512], progress=False)
    glued = evaluate(pairs, ["s2net", "sift"], [512], matcher="glue", log=messages.append, progress=False)
    assert [r.method for r in glued] == [f"{spec}+glue"] and mnn.method == spec
    assert len(messages) == 1 and "sift" in messages[0]
    (glue,) = glued
    assert (glue.kp_a, glue.kp_b, glue.nc) == (mnn.kp_a, mnn.kp_b, mnn.nc)   # same features
    assert glue.matches != mnn.matches and glue.ncm > 50 and glue.corner_error < 3.0
    # the rows' matches are exactly S2Glue's on those features
    det = create_method(spec, 512)
    img_a, img_b = read_image(pairs[0].path_a), read_image(pairs[0].path_b)
    (ka, da), (kb, db) = det.detectAndCompute(img_a, None), det.detectAndCompute(img_b, None)
    pa, pb = cv2.KeyPoint_convert(ka).reshape(-1, 2), cv2.KeyPoint_convert(kb).reshape(-1, 2)
    idx = glue_matches(s2cv.S2Glue_create(), pa, da, img_a.shape, pb, db, img_b.shape)
    assert len(idx) == glue.matches and not np.array_equal(idx, mutual_nn_matches(da, db))
    # the command line
    out = tmp_path / "out"
    assert main(["--dataset", "pairs", "--data", str(pair_dir), "--matcher", "glue", "--k", "512",
                 "--out", str(out), "--plots", "0", "--quiet"]) == 0
    assert f"| {spec}+glue | 512 |" in capsys.readouterr().out
    assert json.loads((out / "results.json").read_text())["config"]["matcher"] == "glue"
    with pytest.raises(ValueError, match="matcher"):
        evaluate(pairs, ["sift"], [512], matcher="lightglue", progress=False)
