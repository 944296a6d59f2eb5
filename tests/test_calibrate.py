"""s2cv.calibrate (one homography for a rig from many frame pairs), s2cv.registration.video (paired frame
sources, the registered video) and refine_homography_pairs.

Accuracy is checked with SIFT on a synthetic same-modality rig (exact), and with the shipped
default model on a rig cut from the bundled RoadScene pair (cross-modal, as users run it).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import textured_image, write_folders

import s2cv
from s2cv.__main__ import main as cli_main
from s2cv.registration import calibrate as cal
from s2cv.registration import register as reg
from s2cv.registration import verdict, video
from s2cv.registration.geometry import corner_error
from s2cv.feature.image import to_gray_float
from s2cv.registration.refine import RefineParams, refine_homography, refine_homography_pairs

# The simulated rig, visible -> IR (the benchmark's direction); calibrate returns its inverse.
RIG = np.array([[0.98, 0.04, -6.0], [-0.03, 0.97, 5.0], [5e-5, -4e-5, 1.0]])
FRAME = (200, 260)  # (h, w) of the synthetic rig's frames
OFFSETS = ((0, 0), (120, 40), (260, 150), (60, 230), (300, 10))  # (x, y) of the crops in the scene


def error(H_ir_to_vis: np.ndarray, shape: tuple[int, int], truth: np.ndarray = RIG) -> float:
    return corner_error(np.linalg.inv(H_ir_to_vis), truth, shape)


def synthetic_frames(n: int = 4, rig: np.ndarray = RIG) -> list[tuple[np.ndarray, np.ndarray]]:
    """Crops of one textured scene (the visible frames) and their exact warps by ``rig`` (IR)."""
    scene = np.vstack([np.hstack([textured_image(seed=s), textured_image(seed=s + 1)]) for s in (7, 9)])  # 480x640
    h, w = FRAME
    out = []
    for x, y in OFFSETS[:n]:
        vis = scene[y:y + h, x:x + w].copy()
        out.append((vis, cv2.warpPerspective(cv2.cvtColor(vis, cv2.COLOR_BGR2GRAY), rig, (w, h))))
    return out


def sample_frames(offsets=((0, 0), (130, 70), (20, 75), (144, 10)), h: int = 224, w: int = 352
                  ) -> list[tuple[np.ndarray, np.ndarray]]:
    """A cross-modal rig from the bundled RoadScene pair: crops of the visible image, and the
    thermal image resampled so that each crop's IR frame is its visible frame moved by RIG."""
    vis_file, ir_file, _ = reg.SAMPLES["roadscene"]
    vis, ir = reg.read_image(vis_file), reg.read_image(ir_file)
    truth = reg.sample_ground_truth()  # sample visible -> sample thermal
    frames = []
    for x, y in offsets:
        crop_to_vis = np.array([[1, 0, x], [0, 1, y], [0, 0, 1.0]])
        ir_frame = cv2.warpPerspective(ir, truth @ crop_to_vis @ np.linalg.inv(RIG), (w, h),
                                       flags=cv2.WARP_INVERSE_MAP | cv2.INTER_LINEAR)
        frames.append((vis[y:y + h, x:x + w], ir_frame))
    return frames


def write_videos(root: Path, frames, fps=(10.0, 10.0)) -> tuple[Path, Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = root / "vis.avi", root / "ir.avi"
    h, w = frames[0][0].shape[:2]
    for path, rate, side in zip(paths, fps, (0, 1)):
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), rate, (w, h))
        assert writer.isOpened()
        for pair in frames:
            image = pair[side]
            writer.write(image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR))
        writer.release()
    return paths


def count_frames(path: Path) -> tuple[int, tuple[int, int]]:
    cap = cv2.VideoCapture(str(path))
    n, shape = 0, (0, 0)
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n, shape = n + 1, frame.shape[:2]
    cap.release()
    return n, shape


@pytest.fixture(scope="module")
def sift() -> cv2.Feature2D:
    return cv2.SIFT_create(1500)


@pytest.fixture(scope="module")
def rig_dirs(tmp_path_factory) -> tuple[Path, Path]:
    return write_folders(tmp_path_factory.mktemp("rig"), synthetic_frames())


# ---------------------------------------------------------------- calibrate()


def test_recovers_the_rig_homography(rig_dirs, sift):
    result = cal.calibrate(*rig_dirs, sift)
    assert result.success and result.message == ""
    assert result.H.shape == (3, 3) and error(result.H, result.vis_shape) < 0.3
    assert [f.name for f in result.frames] == [f"frame_{i}" for i in range(4)]
    assert result.vis_shape == FRAME and result.ir_shape == FRAME
    assert not result.flagged and result.source.skipped == []
    for frame in result.frames:
        assert frame.own_success and frame.matches >= frame.own_inliers > 50
        assert frame.inliers >= 0.9 * frame.own_inliers and frame.median_residual < 1.0
    assert result.num_inliers == sum(f.inliers for f in result.frames) <= result.num_matches
    assert result.ms_per_frame > 0 and {"frames", "fit", "total"} <= set(result.timings)
    json.dumps(result.summary(), allow_nan=False)


def test_pooling_beats_the_single_pairs_on_the_bundled_thermal_pair(tmp_path):
    """Cross-modal: the default model on four frames of a rig cut from the bundled RoadScene
    pair. The pooled fit lands within 3 px (1.7 px when measured) and no worse than the mean of
    the single-pair fits; refinement on the best frames keeps it there."""
    if "default" not in s2cv.available_models():
        pytest.skip("no default model shipped")
    frames = sample_frames()
    dirs = write_folders(tmp_path, frames)
    det = s2cv.S2Net_create()
    single = [error(reg.register(vis, ir, det).H, vis.shape[:2]) for vis, ir in frames]
    pooled = cal.calibrate(*dirs, det, refine=False)
    assert pooled.success, pooled.message
    assert not pooled.refined_on
    assert error(pooled.H, pooled.vis_shape) < min(3.0, np.mean(single)), (error(pooled.H, pooled.vis_shape), single)
    refined = cal.calibrate(*dirs, det, refine=True, refine_frames=2)  # the two with the most inliers
    best = sorted(pooled.frames, key=lambda f: -f.inliers)[:2]
    assert refined.success and sorted(refined.refined_on) == sorted(f.name for f in best)
    assert "refine" in refined.timings and not np.array_equal(refined.H, pooled.H)
    assert error(refined.H, refined.vis_shape) < 3.0
    default = cal.calibrate(*dirs, det)  # refine="auto": an s2cv detector is refined on every agreeing frame
    assert default.success and sorted(default.refined_on) == sorted(f.name for f in pooled.frames if not f.flags)
    assert error(default.H, default.vis_shape) < 3.0


def test_flags_a_frame_that_disagrees(tmp_path, sift):
    """One frame of another homography (a bumped sensor): flagged, and it does not move the fit."""
    bumped = np.array([[1, 0, 25.0], [0, 1, -18.0], [0, 0, 1]]) @ RIG
    frames = synthetic_frames(5)
    frames[2] = synthetic_frames(3, bumped)[2]
    result = cal.calibrate(*write_folders(tmp_path, frames), sift)
    assert result.success and error(result.H, result.vis_shape) < 0.3
    assert [f.name for f in result.flagged] == ["frame_2"]
    assert "disagrees" in result.frames[2].flags and result.frames[2].inliers < 0.5 * result.frames[2].own_inliers


def test_step_and_max_frames(rig_dirs, sift):
    result = cal.calibrate(*rig_dirs, sift, step=2, max_frames=1)
    assert [f.index for f in result.frames] == [0] and result.success
    assert [f.index for f in cal.calibrate(*rig_dirs, sift, step=2).frames] == [0, 2]
    assert [f.index for f in cal.calibrate(*rig_dirs, sift, max_frames=3).frames] == [0, 1, 2]


def test_frames_are_streamed(rig_dirs, monkeypatch):
    """One pair is read at a time: the first pair comes before the others are touched."""
    reads = []
    real = video.read_image
    monkeypatch.setattr(video, "read_image", lambda path: reads.append(Path(path).name) or real(path))
    frames = iter(video.PairedFrames(*rig_dirs))
    first = next(frames)
    assert first.name == "frame_0" and reads == ["frame_0.png", "frame_0.png"]
    assert first.vis.shape[:2] == FRAME


def test_cli_writes_all_outputs(rig_dirs, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli_main(["calibrate", *map(str, rig_dirs), "-o", str(out), "--model", "sift", "--nfeatures", "1500"]) == 0
    line = capsys.readouterr().out
    assert line.startswith("calibrated from 4 frame pairs") and "0 flagged" in line
    for name in ("H.txt", "summary.json", "overlay.png", "residuals.png"):
        assert (out / name).is_file(), name
    H = video.load_homography(out / "H.txt")  # the convention of s2cv register's H.txt: IR -> visible
    assert error(H, FRAME) < 0.3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["success"] and summary["frames_used"] == 4 and summary["model"] == "sift"
    assert summary["refine"] is False  # auto: OpenCV's detectors have no dense maps to refine on
    assert summary["verdict"]["plausible"] and not summary["implausible_accepted"]
    assert len(summary["per_frame"]) == 4 and summary["skipped_count"] == 0
    assert {"matches", "inliers", "own_inliers", "median_residual_px", "flags"} <= set(summary["per_frame"][0])
    np.testing.assert_allclose(np.asarray(summary["H_ir_to_vis"]), H, rtol=1e-8)
    overlay = cv2.imread(str(out / "overlay.png"))
    assert overlay.shape == (2 * FRAME[0], 2 * FRAME[1], 3)  # four frames, two to a row
    assert cv2.imread(str(out / "residuals.png")) is not None


def test_calibrates_from_videos(tmp_path, sift):
    frames = synthetic_frames()
    result = cal.calibrate(*write_videos(tmp_path, frames), sift)
    assert result.success and result.source.kind == "videos" and result.source.fps == 10.0
    assert [f.name for f in result.frames] == [f"frame {i:06d}" for i in range(4)]
    assert error(result.H, result.vis_shape) < 1.0  # through MJPG compression


# ---------------------------------------------------------------- bad input


def test_folders_that_do_not_pair_up(tmp_path):
    frames = synthetic_frames(3)
    vis_dir, ir_dir = write_folders(tmp_path / "a", frames)
    (ir_dir / "frame_2.png").unlink()
    with pytest.raises(ValueError, match=r"\(3 frames\).*\(2 frames\).*only in VIS: frame_2; only in IR: none"):
        video.PairedFrames(vis_dir, ir_dir)
    vis_dir, ir_dir = write_folders(tmp_path / "b", frames)
    (ir_dir / "frame_1.png").rename(ir_dir / "other.png")
    with pytest.raises(ValueError, match="only in VIS: frame_1; only in IR: other"):
        cal.calibrate(vis_dir, ir_dir, cv2.SIFT_create())
    (vis_dir / "frame_0.jpg").write_bytes(b"")  # two frames named frame_0
    with pytest.raises(ValueError, match="two frames named 'frame_0'"):
        video.PairedFrames(vis_dir, ir_dir)


def test_other_bad_sources(tmp_path, rig_dirs):
    with pytest.raises(FileNotFoundError, match="IR source not found"):
        video.PairedFrames(rig_dirs[0], tmp_path / "missing")
    (tmp_path / "clip.avi").write_bytes(b"not a video")
    with pytest.raises(ValueError, match="both be folders"):
        video.PairedFrames(rig_dirs[0], tmp_path / "clip.avi")
    with pytest.raises(ValueError, match="cannot open"):
        video.PairedFrames(tmp_path / "clip.avi", tmp_path / "clip.avi")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image frames"):
        video.PairedFrames(tmp_path / "empty", rig_dirs[1])
    for bad in ({"step": 0}, {"step": 1.5}, {"max_frames": 0}, {"max_frames": True}):
        with pytest.raises(ValueError):
            video.PairedFrames(*rig_dirs, **bad)
    with pytest.raises(ValueError, match="ransac_threshold"):
        cal.calibrate(*rig_dirs, cv2.SIFT_create(), ransac_threshold=0)
    with pytest.raises(ValueError, match="refine needs an s2cv detector"):
        cal.calibrate(*rig_dirs, cv2.SIFT_create(), refine=True)
    with pytest.raises(TypeError, match="cv2.Feature2D"):
        cal.calibrate(*rig_dirs, object())


def test_unreadable_frames_are_skipped_and_counted(tmp_path, sift):
    vis_dir, ir_dir = write_folders(tmp_path, synthetic_frames())
    (ir_dir / "frame_1.png").write_bytes(b"\x89PNG broken")
    with pytest.warns(RuntimeWarning, match="skipping frame frame_1"):
        result = cal.calibrate(vis_dir, ir_dir, sift)
    assert result.success and result.source.skipped == ["frame_1"]
    assert [f.name for f in result.frames] == ["frame_0", "frame_2", "frame_3"]
    summary = cal.write_calibration(result, tmp_path / "out")
    assert summary["skipped"] == ["frame_1"] and summary["skipped_count"] == 1


def test_frame_size_changing_mid_sequence(tmp_path, sift):
    frames = synthetic_frames(3)
    frames[2] = (frames[2][0][:150], frames[2][1])
    with pytest.raises(ValueError, match=r"VIS frame 'frame_2' is 260x150 px but the sequence started at 260x200"):
        cal.calibrate(*write_folders(tmp_path, frames), sift)


def test_videos_of_different_length_or_frame_rate(tmp_path, sift):
    frames = synthetic_frames(3)
    vis, _ = write_videos(tmp_path / "a", frames)
    _, ir = write_videos(tmp_path / "b", frames[:2])
    with pytest.raises(ValueError, match="different length: VIS has 3 frames, IR 2"):
        video.PairedFrames(vis, ir)
    with pytest.raises(ValueError, match="different frame rates: VIS 10 fps, IR 12.5 fps"):
        video.PairedFrames(*write_videos(tmp_path / "c", frames, fps=(10.0, 12.5)))


def test_a_rig_where_no_frame_registers(tmp_path, capsys):
    flat = [(np.full((120, 160, 3), 90, np.uint8), np.full((120, 160), 40, np.uint8))] * 3
    dirs = write_folders(tmp_path, flat)
    result = cal.calibrate(*dirs, cv2.SIFT_create())
    assert not result.success and result.H is None
    assert result.message.startswith("no frame registers") and "0 matches in 3 frame pairs" in result.message
    out = tmp_path / "out"
    assert cli_main(["calibrate", *map(str, dirs), "-o", str(out), "--model", "sift"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("s2cv calibrate: error: no frame registers")
    assert json.loads((out / "summary.json").read_text())["success"] is False and not (out / "H.txt").exists()


def test_a_rig_of_mismatched_frames(tmp_path, sift):
    """Each visible frame paired with another frame's IR, mirrored (the frames are crops of one
    scene, so unmirrored two of them overlap and a true homography relates them): the pooled fit
    finds no agreement and says so, also where one pair's own fit passes by chance (then that
    pair disagrees)."""
    frames = synthetic_frames(5)
    wrong = [(frames[i][0], np.ascontiguousarray(frames[(i + 2) % 5][1][:, ::-1])) for i in range(5)]
    result = cal.calibrate(*write_folders(tmp_path, wrong), sift)
    assert not result.success and result.message.startswith("no frame registers")
    assert all("disagrees" in f.flags for f in result.frames if f.own_success)


def test_the_pooled_fit_gets_the_verdict(rig_dirs, sift):
    strict = verdict.VerdictThresholds(min_evidence=1e6)  # no fit passes: exercises the refusal
    refused = cal.calibrate(*rig_dirs, sift, thresholds=strict)
    assert not refused.success and refused.verdict is not None and not refused.verdict.ok
    assert "is implausible, refused: evidence:" in refused.message
    assert all(not f.own_success and "implausible" in f.own_message for f in refused.frames)  # per frame too
    kept = cal.calibrate(*rig_dirs, sift, thresholds=strict, accept_implausible=True)
    assert kept.success and kept.implausible_accepted and error(kept.H, kept.vis_shape) < 0.3
    assert cal.calibrate(*rig_dirs, sift).verdict.ok


def test_cli_implausible_exit_2_or_kept(rig_dirs, tmp_path, capsys, monkeypatch):
    strict = verdict.VerdictThresholds(min_evidence=1e6)
    monkeypatch.setattr(cal, "plausibility", lambda *a, **k: verdict.plausibility(*a, **{**k, "thresholds": strict}))
    args = ["calibrate", *map(str, rig_dirs), "--model", "sift", "--nfeatures", "1500"]
    assert cli_main([*args, "-o", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "implausible, refused: evidence" in err and err.endswith("--accept-implausible keeps it)")
    assert not (tmp_path / "refused" / "H.txt").exists()
    out = tmp_path / "kept"
    assert cli_main([*args, "-o", str(out), "--accept-implausible"]) == 0
    assert capsys.readouterr().out.startswith("calibrated (IMPLAUSIBLE, kept by --accept-implausible: evidence")
    assert "IMPLAUSIBLE" in (out / "H.txt").read_text() and error(video.load_homography(out / "H.txt"), FRAME) < 0.3
    summary = json.loads((out / "summary.json").read_text())
    assert summary["implausible_accepted"] and summary["warning"].startswith("implausible fit kept")


def test_runs_without_the_train_extra(rig_dirs, tmp_path, monkeypatch, capsys):
    """tqdm and matplotlib belong to the [train] extra: without them no progress bar and no
    residuals.png (summary.json says how to get it); the calibration and the video still work."""
    for name in ("tqdm", "matplotlib"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as in a runtime-only venv
    out = tmp_path / "out"
    assert cli_main(["calibrate", *map(str, rig_dirs), "-o", str(out), "--model", "sift"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert "residuals.png" not in summary["outputs"] and not (out / "residuals.png").exists()
    assert 's2cv[train]' in summary["not_written"]["residuals.png"] and (out / "H.txt").is_file()
    assert cli_main(["register", "--video", *map(str, rig_dirs), "-o", str(tmp_path / "v"), "--H",
                     str(out / "H.txt")]) == 0
    capsys.readouterr()


def test_cli_input_errors_exit_2(tmp_path, rig_dirs, capsys):
    assert cli_main(["calibrate", str(rig_dirs[0]), str(tmp_path / "nope"), "-o", str(tmp_path / "o")]) == 2
    assert "IR source not found" in capsys.readouterr().err
    assert cli_main(["calibrate", *map(str, rig_dirs), "-o", str(tmp_path / "o"), "--model", "sift",
                     "--step", "0"]) == 2
    assert "step must be" in capsys.readouterr().err
    assert cli_main(["calibrate", "--help"]) == 0 and "--max-frames" in capsys.readouterr().out


# ---------------------------------------------------------------- register --video


def test_video_with_a_fixed_homography_plays_back(tmp_path, capsys):
    frames = synthetic_frames()
    vis, ir = write_videos(tmp_path / "in", frames)
    H_file = tmp_path / "H.txt"
    video.save_homography(H_file, np.linalg.inv(RIG))
    out = tmp_path / "out"
    assert cli_main(["register", "--video", str(vis), str(ir), "-o", str(out), "--H", str(H_file)]) == 0
    line = capsys.readouterr().out
    assert "4 frames (fixed homography, 4 registered)" in line and "frames/s" in line
    summary = json.loads((out / "summary.json").read_text())
    written = out / summary["output"]
    assert count_frames(written) == (4, FRAME)
    # The frames show the visible frame blended with the IR frame warped back onto it.
    cap = cv2.VideoCapture(str(written))
    got = cap.read()[1].astype(np.float32)
    cap.release()
    warped = cv2.warpPerspective(cv2.cvtColor(frames[0][1], cv2.COLOR_GRAY2BGR), np.linalg.inv(RIG), FRAME[::-1])
    expected = cv2.addWeighted(frames[0][0], 0.5, warped, 0.5, 0.0).astype(np.float32)
    assert np.abs(got - expected).mean() < 6.0


def test_video_re_estimated_per_frame_from_folders(tmp_path, rig_dirs, capsys):
    out = tmp_path / "out"
    assert cli_main(["register", "--video", *map(str, rig_dirs), "-o", str(out), "--model", "sift",
                     "--style", "overlay", "--step", "2", "--fps", "5"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["homography"] == "per frame" and summary["frames"] == 2 == summary["frames_registered"]
    assert summary["fps"] == 5 and summary["style"] == "overlay"
    assert [r["name"] for r in summary["per_frame"]] == ["frame_0", "frame_2"]
    assert all(r["success"] and r["inliers"] > 50 for r in summary["per_frame"])
    assert count_frames(out / summary["output"]) == (2, FRAME)
    assert "frames/s" in capsys.readouterr().out


def test_video_errors_exit_2(tmp_path, rig_dirs, capsys):
    out = str(tmp_path / "out")
    assert cli_main(["register", *map(str, rig_dirs), "-o", out, "--H", "H.txt"]) == 2  # --H without --video
    assert cli_main(["register", "--video", "--sample", "-o", out]) == 2
    assert cli_main(["register", "--video", *map(str, rig_dirs), "-o", out, "--refine"]) == 2
    capsys.readouterr()
    (tmp_path / "bad.txt").write_text("1 2 3\n4 5 6\n")
    assert cli_main(["register", "--video", *map(str, rig_dirs), "-o", out, "--H", str(tmp_path / "bad.txt")]) == 2
    assert "3x3" in capsys.readouterr().err
    flat = write_folders(tmp_path / "flat", [(np.full((100, 120), 50, np.uint8),) * 2] * 2)
    assert cli_main(["register", "--video", *map(str, flat), "-o", out, "--model", "sift"]) == 2
    assert "none of the 2 frames registers" in capsys.readouterr().err
    assert not list(Path(out).glob("registered.*"))


def test_homography_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        video.load_homography(tmp_path / "none.txt")
    (tmp_path / "words.txt").write_text("a b c\n")
    with pytest.raises(ValueError, match="not a table of numbers"):
        video.load_homography(tmp_path / "words.txt")
    (tmp_path / "zero.txt").write_text("0 0 0\n0 0 0\n0 0 0\n")
    with pytest.raises(ValueError, match="invertible"):
        video.load_homography(tmp_path / "zero.txt")
    video.save_homography(tmp_path / "H.txt", RIG)
    np.testing.assert_allclose(video.load_homography(tmp_path / "H.txt"), RIG, rtol=1e-9)


# ---------------------------------------------------------------- refine over several pairs


@pytest.fixture(scope="module")
def two_warped_pairs():
    """Two crops of the bundled visible image, each with its exact warp by RIG, and their maps."""
    if "default" not in s2cv.available_models():
        pytest.skip("no default model shipped")
    det = s2cv.S2Net_create()
    gray = cv2.cvtColor(reg.read_image(reg.SAMPLES["roadscene"][0]), cv2.COLOR_BGR2GRAY)
    out = []
    for x, y in ((0, 0), (140, 70)):
        a = np.ascontiguousarray(gray[y:y + 224, x:x + 352])
        b = cv2.warpPerspective(a, RIG, (352, 224))
        out.append((a, b, det.denseMaps(to_gray_float(a)), det.denseMaps(to_gray_float(b))))
    return out


def test_refine_over_several_pairs(two_warped_pairs):
    a, b, maps_a, maps_b = two_warped_pairs[0]
    start = np.array([[1, 0, 4.0], [0, 1, -3.0], [0, 0, 1]]) @ np.linalg.inv(RIG)
    assert error(start, a.shape) > 4.0
    pairs = [(ma, mb) for _, _, ma, mb in two_warped_pairs]
    refined = refine_homography_pairs(start, iter(pairs), a.shape, b.shape)
    assert error(refined, a.shape) < 0.5
    # one pair: exactly refine_homography
    np.testing.assert_array_equal(refine_homography_pairs(start, pairs[:1], a.shape, b.shape),
                                  refine_homography(start, maps_a, maps_b, a.shape, b.shape))
    with pytest.raises(ValueError, match="at least one image pair"):
        refine_homography_pairs(start, [], a.shape, b.shape)
    with pytest.raises(ValueError, match="scores of shape"):
        refine_homography_pairs(start, pairs, (a.shape[0] + 8, a.shape[1]), b.shape)
    coarse = type(maps_a)(maps_a.scores, maps_a.descriptors[:, :, ::2, ::2].copy(), maps_a.stride * 2)
    with pytest.raises(ValueError, match="different strides"):
        refine_homography_pairs(start, [pairs[0], (coarse, coarse)], a.shape, b.shape, RefineParams())
