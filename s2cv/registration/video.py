"""Frame sequences of a fixed visible/IR rig, and the registered video.

A rig's two sensors give two synchronised sequences: two folders of frames with matching file
names, or two video files of the same length and frame rate. ``PairedFrames`` checks that they
pair up and streams them one pair at a time (never the whole sequence in memory), for
``s2cv calibrate`` and for the video mode of ``s2cv register``::

    s2cv register --video VIS IR -o OUT [--H OUT_CAL/H.txt] [--style blend|overlay]
                  [--max-frames N] [--step S] [--fps F] [register's detector options]

writes ``OUT/registered.mp4`` (mp4v; MJPG ``.avi`` where this OpenCV build cannot write mp4v)
with every IR frame warped onto its visible frame, by the fixed homography of ``--H`` (IR ->
visible, what ``s2cv calibrate`` and ``s2cv register`` write to H.txt) or re-estimated per frame,
and ``OUT/summary.json``; it prints the frames per second.
"""
from __future__ import annotations

import math
import re
import sys
import time
import warnings
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from s2cv.registration import viz
from s2cv.feature.image import IMAGE_EXTENSIONS, list_images, read_image
from s2cv.registration.io import (  # noqa: F401 - load_homography, save_homography: their old home
    RegistrationError,
    load_homography,
    progress_bar,
    save_homography,
    write_summary,
)
from s2cv.registration.register import match_pair

STYLES = ("blend", "overlay")
# (fourcc, file suffix), first that this OpenCV build opens for writing wins
CODECS = (("mp4v", ".mp4"), ("MJPG", ".avi"))
FOLDER_FPS = 10.0  # output frame rate for folders of frames unless --fps says otherwise


@dataclass
class FramePair:
    """One synchronised visible/IR pair of a sequence."""

    index: int        # position in the input sequence (before ``step``)
    name: str         # file stem, or "frame 000123" for videos
    vis: np.ndarray
    ir: np.ndarray


def _natural_key(name: str) -> list[Any]:
    """frame_2 before frame_10: the order a camera wrote them."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def _frames_in(folder: Path, side: str) -> dict[str, Path]:
    try:
        files = list_images(folder)
    except FileNotFoundError:
        raise ValueError(f"{side} folder {folder} holds no image frames ({', '.join(IMAGE_EXTENSIONS)})") from None
    frames: dict[str, Path] = {}
    for path in files:
        if path.stem in frames:
            raise ValueError(f"{side} folder {folder}: two frames named {path.stem!r} "
                             f"({frames[path.stem].name}, {path.name})")
        frames[path.stem] = path
    return frames


def _listing(names: Collection[str], limit: int = 5) -> str:
    names = sorted(names, key=_natural_key)
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


class PairedFrames:
    """Two synchronised frame sequences of a rig, read one pair at a time.

    ``vis``/``ir``: two folders of frames paired by file name (``0001.png`` with ``0001.tiff``;
    natural order), or two video files of the same length and frame rate. ``step`` keeps every
    step-th pair, ``max_frames`` at most that many. Unreadable frames are skipped with a
    warning (``skipped`` names them); a frame whose size differs from the first of its
    sequence raises ``ValueError`` (one rig, one pixel grid).
    """

    def __init__(self, vis: str | Path, ir: str | Path, *, step: int = 1, max_frames: int | None = None):
        if isinstance(step, bool) or int(step) != step or step < 1:
            raise ValueError(f"step must be an integer >= 1, got {step!r}")
        if max_frames is not None and (isinstance(max_frames, bool) or int(max_frames) != max_frames
                                       or max_frames < 1):
            raise ValueError(f"max_frames must be None or an integer >= 1, got {max_frames!r}")
        self.vis_path, self.ir_path = Path(vis), Path(ir)
        for side, path in (("VIS", self.vis_path), ("IR", self.ir_path)):
            if not path.exists():
                raise FileNotFoundError(f"{side} source not found: {path}")
        if self.vis_path.is_dir() != self.ir_path.is_dir():
            raise ValueError(f"VIS and IR must both be folders of frames or both be video files, got "
                             f"{'folder' if self.vis_path.is_dir() else 'file'} {self.vis_path} and "
                             f"{'folder' if self.ir_path.is_dir() else 'file'} {self.ir_path}")
        self.kind = "folders" if self.vis_path.is_dir() else "videos"
        self.skipped: list[str] = []
        self.fps: float | None = None
        self._files: list[tuple[str, Path, Path]] = []
        total = self._open_folders() if self.kind == "folders" else self._open_videos()
        self.total = total  # pairs in the input (None: a video that does not say)
        indices = range(0, total if total is not None else sys.maxsize, int(step))
        self.indices = indices[:max_frames] if max_frames is not None else indices
        self._bounded = total is not None or max_frames is not None

    def _open_folders(self) -> int:
        vis, ir = _frames_in(self.vis_path, "VIS"), _frames_in(self.ir_path, "IR")
        only_vis, only_ir = set(vis) - set(ir), set(ir) - set(vis)
        if only_vis or only_ir:
            raise ValueError(
                f"VIS folder {self.vis_path} ({len(vis)} frames) and IR folder {self.ir_path} ({len(ir)} frames) "
                f"do not pair up by name: only in VIS: {_listing(only_vis) or 'none'}; "
                f"only in IR: {_listing(only_ir) or 'none'}")
        self._files = [(name, vis[name], ir[name]) for name in sorted(vis, key=_natural_key)]
        return len(self._files)

    def _capture(self, path: Path, side: str) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            cap.release()
            raise ValueError(f"{side} video {path}: OpenCV cannot open it (not a video, or a codec this build lacks)")
        return cap

    def _open_videos(self) -> int | None:
        info = []
        for side, path in (("VIS", self.vis_path), ("IR", self.ir_path)):
            cap = self._capture(path, side)
            info.append((int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), float(cap.get(cv2.CAP_PROP_FPS))))
            cap.release()
        (n_vis, fps_vis), (n_ir, fps_ir) = info
        if fps_vis > 0 and fps_ir > 0 and not math.isclose(fps_vis, fps_ir, rel_tol=1e-3):
            raise ValueError(f"videos of different frame rates: VIS {fps_vis:g} fps, IR {fps_ir:g} fps "
                             f"(their frames would not correspond in time)")
        if n_vis > 0 and n_ir > 0 and n_vis != n_ir:
            raise ValueError(f"videos of different length: VIS has {n_vis} frames, IR {n_ir}")
        self.fps = fps_vis if fps_vis > 0 else None
        return n_vis if n_vis > 0 and n_ir > 0 else None

    @property
    def count(self) -> int | None:
        """Pairs this source will yield at most (unreadable ones are skipped); None if unknown."""
        return len(self.indices) if self._bounded else None

    def __iter__(self) -> Iterator[FramePair]:
        return self.frames()

    def frames(self, only: Collection[int] | None = None) -> Iterator[FramePair]:
        """The pairs in order; with ``only``, just those input indices (a second pass)."""
        if only is None:
            self.skipped = []
        keep = self.indices.__contains__ if only is None else set(only).__contains__
        last = (self.indices[-1] if len(self.indices) else -1) if only is None else max(only, default=-1)
        reader = self._folder_pairs if self.kind == "folders" else self._video_pairs
        shapes: dict[str, tuple[int, ...]] = {}
        for pair in reader(keep, last):
            for side, image in (("VIS", pair.vis), ("IR", pair.ir)):
                first = shapes.setdefault(side, image.shape[:2])
                if image.shape[:2] != first:
                    raise ValueError(f"{side} frame {pair.name!r} is {image.shape[1]}x{image.shape[0]} px but the "
                                     f"sequence started at {first[1]}x{first[0]}: a rig's frames keep one size")
            yield pair

    def _skip(self, name: str, why: str) -> None:
        warnings.warn(f"skipping frame {name}: {why}", RuntimeWarning, stacklevel=4)
        self.skipped.append(name)

    def _folder_pairs(self, keep: Callable[[int], bool], last: int) -> Iterator[FramePair]:
        for index, (name, vis_file, ir_file) in enumerate(self._files[:last + 1]):
            if not keep(index):
                continue
            try:
                vis, ir = read_image(vis_file), read_image(ir_file)
            except (OSError, ValueError, RegistrationError) as exc:
                self._skip(name, str(exc))
                continue
            yield FramePair(index, name, vis, ir)

    def _video_pairs(self, keep: Callable[[int], bool], last: int) -> Iterator[FramePair]:
        caps = self._capture(self.vis_path, "VIS"), self._capture(self.ir_path, "IR")
        try:
            index = 0
            while index <= last:
                wanted = keep(index)
                if wanted:
                    (ok_vis, vis), (ok_ir, ir) = caps[0].read(), caps[1].read()
                else:  # grab without decoding: --step on long videos
                    ok_vis, ok_ir, vis, ir = caps[0].grab(), caps[1].grab(), None, None
                if not ok_vis and not ok_ir:
                    if self.total is not None and index < self.total:
                        warnings.warn(f"the videos end after {index} of the {self.total} frames they announce",
                                      RuntimeWarning, stacklevel=3)
                        self.skipped += [f"frame {i:06d}" for i in range(index, self.total) if keep(i)]
                    return
                if ok_vis != ok_ir:
                    longer, shorter = ("VIS", "IR") if ok_vis else ("IR", "VIS")
                    raise ValueError(f"videos of different length: the {shorter} video ends after {index} frames, "
                                     f"the {longer} video goes on")
                if wanted:
                    yield FramePair(index, f"frame {index:06d}", vis, ir)
                index += 1
        finally:
            for cap in caps:
                cap.release()


# ---------------------------------------------------------------- registered video


def _open_writer(stem: Path, fps: float, size: tuple[int, int]) -> tuple[cv2.VideoWriter, Path, str]:
    for fourcc, suffix in CODECS:
        path = stem.with_suffix(suffix)
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
        if writer.isOpened():
            return writer, path, fourcc
        writer.release()
        path.unlink(missing_ok=True)
    raise RegistrationError(f"this OpenCV build can write none of the codecs {[c for c, _ in CODECS]}")


def _label(frame: np.ndarray, text: str, ok: bool) -> np.ndarray:
    scale = max(0.4, frame.shape[1] / 1200)
    for colour, thick in (((0, 0, 0), 3), ((255, 255, 255) if ok else viz.RED, 1)):
        cv2.putText(frame, text, (6, int(22 * scale / 0.5)), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thick,
                    cv2.LINE_AA)
    return frame


def compose(vis: np.ndarray, warped_ir: np.ndarray, style: str) -> np.ndarray:
    """One output frame: the visible frame and the warped IR one, blended or as a checkerboard."""
    vis8, ir8 = viz.to_bgr8(vis), viz.to_bgr8(warped_ir)
    if style == "blend":
        return cv2.addWeighted(vis8, 0.5, ir8, 0.5, 0.0)
    if style == "overlay":
        return viz.overlay(vis8, ir8, tile=viz.overlay_tile(vis8))
    raise ValueError(f"style must be one of {STYLES}, got {style!r}")


def write_registered_video(source: PairedFrames, out_dir: str | Path, *, H: np.ndarray | None = None,
                           detector: cv2.Feature2D | None = None, style: str = "blend", fps: float | None = None,
                           ransac_threshold: float = 3.0, min_inliers: int = 12,
                           progress: bool | None = None) -> dict[str, Any]:
    """Write ``out_dir/registered.mp4`` (or ``.avi``) and ``summary.json``; returns the summary.

    With ``H`` (IR -> visible) every frame is warped by it; without, ``detector`` registers each
    pair on its own and a frame that does not register keeps the last good homography (its
    label says so; before the first good one the visible frame is shown alone). ``progress``
    None shows a bar on a terminal only.
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    if (H is None) == (detector is None):
        raise ValueError("give either H (a fixed homography) or detector (re-estimate per frame), not both")
    if fps is not None and not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rate = fps or source.fps or FOLDER_FPS
    writer, path, fourcc = None, out_dir / "registered", ""
    per_frame, held, held_from = [], H, None
    t0 = time.perf_counter()
    try:
        for pair in progress_bar(source, source.count, "registered video", "frame", progress):
            record: dict[str, Any] = {"index": pair.index, "name": pair.name}
            if detector is not None:
                result, _ = match_pair(pair.vis, pair.ir, detector, ransac_threshold=ransac_threshold,
                                       min_inliers=min_inliers)
                record.update(success=result.success, matches=result.num_matches, inliers=result.num_inliers,
                              message=result.message)
                if result.success:
                    held, held_from = result.H, pair.name
            h, w = pair.vis.shape[:2]
            if held is None:
                frame = _label(viz.to_bgr8(pair.vis), f"{pair.name}: not registered", False)
            else:
                warped = cv2.warpPerspective(viz.to_bgr8(pair.ir), held, (w, h))
                frame = compose(pair.vis, warped, style)
                if detector is not None:
                    ok = record["success"]
                    text = f"{pair.name}: {record['inliers']}/{record['matches']} inliers" if ok else \
                        f"{pair.name}: not registered, H of {held_from}"
                    frame = _label(frame, text, ok)
            if writer is None:
                writer, path, fourcc = _open_writer(path, rate, (w, h))
            writer.write(frame)
            per_frame.append(record)
    finally:
        if writer is not None:
            writer.release()
    seconds = time.perf_counter() - t0
    registered = sum(r.get("success", True) for r in per_frame)
    summary: dict[str, Any] = {
        "output": path.name if writer is not None else None, "codec": fourcc, "fps": rate, "style": style,
        "homography": "fixed" if H is not None else "per frame",
        "H_ir_to_vis": None if H is None else np.asarray(H).tolist(),
        "frames": len(per_frame), "frames_registered": registered, "skipped": list(source.skipped),
        "seconds": round(seconds, 3), "frames_per_second": round(len(per_frame) / seconds, 3) if seconds else None,
        "per_frame": per_frame if detector is not None else [],
    }
    write_summary(out_dir / "summary.json", summary)
    return summary
