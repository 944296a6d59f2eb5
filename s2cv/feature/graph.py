"""What the runtime knows about exported graphs, without torch or the ``onnx`` package.

An s2cv graph (written by ``s2cv export``) takes ``image`` float32 (B, 1, H, W), gray in
[0, 1], and returns ``scores`` (B, 1, H, W) and L2-normalised ``descriptors``
(B, D, H/stride, W/stride); its ``metadata_props`` (keys ``s2cv.*``) say what a backend needs
to run it without the checkpoint. This module reads those, checks the graph's input/output
layout, finds the graph shipped beside a checkpoint, and hashes files: the exporter
(``s2cv.deploy.export``, training side) writes what this module reads.

Why a reader of its own: the ``onnx`` package (and its protobuf runtime) would be a dependency
of every inference install just to read a dozen strings. ONNX files are protobuf messages;
the few fields needed here are found by walking the wire format, skipping the weights.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

FORMAT = "s2cv-onnx/1"
INPUT_NAME, OUTPUT_NAMES = "image", ("scores", "descriptors")
LAYOUT = ("one input 'image' float32 (B,1,H,W), gray in [0,1], and outputs 'scores' (B,1,H,W) and "
          "'descriptors' (B,D,H/stride,W/stride): a graph written by `s2cv export MODEL -o FILE.onnx`")
# OpenCV's cv::XFeat contract (``s2cv export --format cv-xfeat``): recognised to point users to it.
XFEAT_INPUT, XFEAT_OUTPUTS = "image", ("output_feats", "output_keypoints", "output_heatmap")
_REQUIRED_KEYS = ("s2cv.arch", "s2cv.stride", "s2cv.pad_multiple", "s2cv.descriptor_dim")


# ----------------------------------------------------------------------------- files
def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_dir() -> Path:
    """Where derived files (ONNX exports, engines) go: $S2CV_CACHE, else ~/.cache/s2cv."""
    env = os.environ.get("S2CV_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    return Path(base).expanduser() / "s2cv"


# ----------------------------------------------------------------------------- protobuf wire format
class _Malformed(ValueError):
    pass


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _Malformed(f"truncated at byte {pos}")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _Malformed(f"malformed varint at byte {pos}")


def _fields(buf: memoryview) -> Iterator[tuple[int, int | memoryview | None]]:
    """(field number, value) of one message: ints for varints, memoryviews for length-delimited
    fields (nested messages, strings, packed weights), None for fixed-width numbers."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | memoryview | None = None
        if number == 0:
            raise _Malformed(f"field number 0 at byte {pos}")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise _Malformed(f"a {size}-byte field at byte {pos} runs past the end ({end} bytes): truncated")
            value, pos = buf[pos:pos + size], pos + size
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            if pos > end:
                raise _Malformed(f"truncated at byte {end}")
        else:
            raise _Malformed(f"unsupported protobuf wire type {wire} at byte {pos}")
        yield number, value


def _text(value: Any) -> str:
    return bytes(value).decode("utf-8", errors="replace") if isinstance(value, memoryview) else ""


def _dims(type_proto: memoryview) -> tuple[int | str, ...]:
    """TypeProto -> tensor shape: ints for fixed dims, names (or '?') for dynamic ones."""
    for number, tensor in _fields(type_proto):
        if number == 1 and isinstance(tensor, memoryview):  # tensor_type
            for n2, shape in _fields(tensor):
                if n2 == 2 and isinstance(shape, memoryview):  # shape
                    dims: list[int | str] = []
                    for n3, dim in _fields(shape):
                        if n3 == 1 and isinstance(dim, memoryview):
                            value: int | str = "?"
                            for n4, v in _fields(dim):
                                value = v if n4 == 1 and isinstance(v, int) else (_text(v) if n4 == 2 else value)
                            dims.append(value)
                    return tuple(dims)
    return ()


@dataclass(frozen=True)
class GraphInfo:
    """The parts of an ONNX file the runtime reads: metadata and the graph's inputs/outputs."""

    metadata: dict[str, str]
    inputs: dict[str, tuple[int | str, ...]]
    outputs: dict[str, tuple[int | str, ...]]

    def describe(self) -> str:
        def fmt(items: dict[str, tuple]) -> str:
            return ", ".join(f"{name!r} ({','.join(map(str, dims)) or '?'})" for name, dims in items.items()) or "none"

        return f"inputs {fmt(self.inputs)}; outputs {fmt(self.outputs)}"


def read_graph_info(path: str | Path) -> GraphInfo:
    """Metadata and input/output names and shapes of an ONNX file; ValueError if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model {path} does not exist")
    data = memoryview(path.read_bytes())
    metadata: dict[str, str] = {}
    inputs: dict[str, tuple] = {}
    outputs: dict[str, tuple] = {}
    initializers: set[str] = set()
    has_graph = False
    try:
        if not data:
            raise _Malformed("empty file")
        for number, value in _fields(data):
            if number == 14 and isinstance(value, memoryview):  # metadata_props
                entry = dict(_fields(value))
                metadata[_text(entry.get(1))] = _text(entry.get(2))
            elif number == 7 and isinstance(value, memoryview):  # graph
                has_graph = True
                for n2, item in _fields(value):
                    if not isinstance(item, memoryview):
                        continue
                    if n2 == 5:  # initializer (TensorProto.name = 8): listed among inputs by old exporters
                        initializers.add(_text(dict(_fields(item)).get(8)))
                    elif n2 in (11, 12):  # input / output ValueInfoProto: name = 1, type = 2
                        fields = dict(_fields(item))
                        dims = _dims(fields[2]) if isinstance(fields.get(2), memoryview) else ()
                        (inputs if n2 == 11 else outputs)[_text(fields.get(1))] = dims
    except _Malformed as exc:
        raise ValueError(f"cannot read ONNX model {path}: {exc}") from None
    if not has_graph:
        raise ValueError(f"cannot read ONNX model {path}: it holds no graph (not an ONNX file?)")
    return GraphInfo(metadata, {k: v for k, v in inputs.items() if k not in initializers}, outputs)


# ----------------------------------------------------------------------------- s2cv graphs
def check_layout(info: GraphInfo, path: str | Path) -> None:
    """ValueError unless the graph has the dense-maps layout every s2cv backend runs."""
    if list(info.inputs) == [INPUT_NAME] and set(OUTPUT_NAMES) <= set(info.outputs):
        dims = info.inputs[INPUT_NAME]
        if len(dims) == 4 and (dims[1] == 1 or isinstance(dims[1], str)):
            return
    hint = ""
    if set(XFEAT_OUTPUTS) <= set(info.outputs):
        hint = f" This is a cv::XFeat-layout graph: run it with cv2.XFeat_create({str(path)!r})."
    raise ValueError(f"{path} has the wrong layout for S2Net_create: expected {LAYOUT}; "
                     f"it has {info.describe()}.{hint}")


def read_onnx_metadata(path: str | Path) -> dict[str, Any]:
    """s2cv metadata of an exported file, typed: {'arch', 'stride', 'pad_multiple', ...}.

    Raises ValueError for files that are not ONNX, have another layout, or did not come from
    ``s2cv export``; FileNotFoundError when there is no file.
    """
    path = Path(path)
    info = read_graph_info(path)
    check_layout(info, path)
    props = info.metadata
    missing = [k for k in _REQUIRED_KEYS if k not in props]
    if missing:
        raise ValueError(f"{path} is not an s2cv ONNX export (missing metadata {missing}); "
                         f"create one with `s2cv export MODEL -o {path.name}`")
    try:
        return {
            "arch": props["s2cv.arch"],
            "stride": int(props["s2cv.stride"]),
            "pad_multiple": int(props["s2cv.pad_multiple"]),
            "descriptor_dim": int(props["s2cv.descriptor_dim"]),
            "conf": json.loads(props.get("s2cv.conf", "{}")),
            "source_sha256": props.get("s2cv.source_sha256", ""),
            "weights_sha256": props.get("s2cv.weights_sha256", ""),
            "precision": props.get("s2cv.precision", "fp32"),
            "opset": int(props.get("s2cv.opset", "0") or 0),
            "version": props.get("s2cv.version", ""),
            "onnx": str(path),
        }
    except ValueError as exc:  # int() or json of a damaged value
        raise ValueError(f"{path}: malformed s2cv metadata ({exc})") from None


def prebuilt_onnx(meta: dict[str, Any]) -> Path | None:
    """The graph at hand without exporting: ``meta["onnx"]`` (an ``.onnx`` passed as the model),
    else ``<checkpoint stem>.onnx`` beside the checkpoint if it was exported from that checkpoint.

    A graph from other weights (left behind after retraining) would give another model's
    keypoints, so it is skipped with a warning saying how to re-export it.
    """
    if meta.get("onnx"):
        return Path(meta["onnx"])
    source = meta.get("path")
    if not source:
        return None
    path = Path(source).with_suffix(".onnx")
    if not path.is_file():
        return None
    try:
        recorded = read_onnx_metadata(path)["source_sha256"]
    except ValueError as exc:  # corrupt, or not an s2cv export
        warnings.warn(f"ignoring {path}: not a readable s2cv ONNX export ({exc})", stacklevel=3)
        return None
    if recorded != file_sha256(source):
        warnings.warn(f"ignoring {path}: it was exported from other weights than {source}; re-export it "
                      f"with `s2cv export {source} -o {path}`", stacklevel=3)
        return None
    return path


def onnx_model_meta(path: str | Path) -> dict[str, Any]:
    """Model metadata for an ``.onnx`` passed as ``model=`` (no checkpoint, no torch network)."""
    return {**read_onnx_metadata(path), "path": None, "onnx": str(Path(path))}
