#!/usr/bin/env bash
# Build an s2cv TensorRT engine with trtexec, plus the same .json sidecar as
# `python -m s2cv.build_engine` (the s2cv tensorrt backend refuses engines without one).
#
# usage: trt/build_engine.sh MODEL_OR_ONNX OUT.engine [--fp16] [--min BxCxHxW] [--opt BxCxHxW]
#                            [--max BxCxHxW] [--timing-cache FILE] [--workspace-mib N] [-- TRTEXEC_ARGS...]
#
# MODEL_OR_ONNX: an s2cv ONNX export, a checkpoint or a zoo name (exported first).
# --fp16: TensorRT 10 gets trtexec --fp16 on the float32 graph; TensorRT >= 11 has no --fp16
#         (strongly typed networks), so the graph is converted to float16 convolutions first.
# Env: TRTEXEC (default: trtexec on PATH, then /usr/src/tensorrt/bin/trtexec), PYTHON (default python3).
set -euo pipefail

die() { echo "error: $*" >&2; exit 1; }
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

[[ $# -ge 1 && ( $1 == -h || $1 == --help ) ]] && usage 0
[[ $# -ge 2 ]] || usage 2
MODEL=$1 ENGINE=$2
shift 2
FP16=0 MIN=1x1x64x64 OPT=1x1x480x640 MAX=8x1x1088x1920 CACHE="" WORKSPACE="" EXTRA=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --fp16) FP16=1 ;;
        --min) MIN=${2:?--min needs a value}; shift ;;
        --opt) OPT=${2:?--opt needs a value}; shift ;;
        --max) MAX=${2:?--max needs a value}; shift ;;
        --timing-cache) CACHE=${2:?--timing-cache needs a file}; shift ;;
        --workspace-mib) WORKSPACE=${2:?--workspace-mib needs a value}; shift ;;
        --) shift; EXTRA=("$@"); break ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
for s in "$MIN" "$OPT" "$MAX"; do
    [[ $s =~ ^[0-9]+x1x[0-9]+x[0-9]+$ ]] || die "shape $s: expected Bx1xHxW, e.g. 1x1x480x640"
done

PYTHON=${PYTHON:-python3}
TRTEXEC=${TRTEXEC:-$(command -v trtexec || true)}
[[ -z $TRTEXEC && -x /usr/src/tensorrt/bin/trtexec ]] && TRTEXEC=/usr/src/tensorrt/bin/trtexec
[[ -n $TRTEXEC && -x $TRTEXEC ]] || die "trtexec not found; put it on PATH or set TRTEXEC=/path/to/trtexec"

# TensorRT version from trtexec's banner, e.g. "[TensorRT v100300]" -> v100300.
TRT_VERSION=$("$TRTEXEC" --help 2>&1 | grep -o 'TensorRT v[0-9]\+' | head -n1 | awk '{print $2}' || true)
[[ -n $TRT_VERSION ]] || TRT_VERSION=$("$PYTHON" -c 'import tensorrt; print(tensorrt.__version__)' 2>/dev/null || true)
[[ -n $TRT_VERSION ]] || die "cannot read the TensorRT version from '$TRTEXEC --help' (nor python's tensorrt)"
# Major version: "v100300" / "100300" (major*10000 + minor*100 + patch; 8601 style before 10) or "10.3.0.26".
if [[ $TRT_VERSION =~ ^v?([0-9]+)$ ]]; then
    N=$((10#${BASH_REMATCH[1]}))
    if (( N >= 100000 )); then TRT_MAJOR=$((N / 10000)); else TRT_MAJOR=$((N / 1000)); fi
elif [[ $TRT_VERSION =~ ^v?([0-9]+)\. ]]; then
    TRT_MAJOR=${BASH_REMATCH[1]}
else
    die "cannot read the TensorRT version from '$TRT_VERSION'"
fi
[[ $TRT_MAJOR -ge 10 ]] || die "s2cv needs TensorRT >= 10, trtexec is $TRT_VERSION"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/s2cv-trt.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ONNX=$WORK/model.onnx
PRECISION=()
if [[ $FP16 == 1 && $TRT_MAJOR -ge 11 ]]; then
    "$PYTHON" -m s2cv.build_engine "$MODEL" --prepare-onnx "$ONNX" --mixed-fp16 >/dev/null
else
    "$PYTHON" -m s2cv.build_engine "$MODEL" --prepare-onnx "$ONNX" >/dev/null
    if [[ $FP16 == 1 ]]; then PRECISION=(--fp16); fi
fi

ARGS=(--onnx="$ONNX" --saveEngine="$ENGINE" --skipInference
      --minShapes=image:"$MIN" --optShapes=image:"$OPT" --maxShapes=image:"$MAX")
[[ -n $CACHE ]] && ARGS+=(--timingCacheFile="$CACHE")
[[ -n $WORKSPACE ]] && ARGS+=(--memPoolSize=workspace:"${WORKSPACE}M")
mkdir -p "$(dirname "$ENGINE")"
echo "+ $TRTEXEC ${ARGS[*]} ${PRECISION[*]-} ${EXTRA[*]-}" >&2
"$TRTEXEC" "${ARGS[@]}" ${PRECISION[@]+"${PRECISION[@]}"} ${EXTRA[@]+"${EXTRA[@]}"}

# The GPU trtexec used (the first visible one); the backend compares its compute capability.
GPU_INDEX=${CUDA_VISIBLE_DEVICES:-0}
GPU=$(nvidia-smi --query-gpu=name,compute_cap --format=csv,noheader -i "${GPU_INDEX%%,*}" 2>/dev/null | head -n1 || true)
SIDE=(--sidecar-only --tensorrt-version "$TRT_VERSION" --min "$MIN" --opt "$OPT" --max "$MAX")
if [[ -n $GPU ]]; then
    SIDE+=(--device-name "$(echo "${GPU%,*}" | xargs)" --compute-capability "$(echo "${GPU##*,}" | xargs)")
fi
if [[ $FP16 == 1 ]]; then SIDE+=(--fp16); fi
"$PYTHON" -m s2cv.build_engine "$ONNX" -o "$ENGINE" "${SIDE[@]}"
