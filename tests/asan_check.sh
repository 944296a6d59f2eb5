#!/usr/bin/env bash
# Run the C++ post-processing tests against an AddressSanitizer + UBSan build of s2cv._C.
#
# Why a separate build: the sanitizer runtime must be preloaded into Python and the normal
# extension must not be replaced, so this builds a throw-away copy of the package under
# $WORK (default /tmp/s2cv_asan) and runs pytest there. Nothing in the repository changes.
#
#   tests/asan_check.sh                 # test_postprocess.py + the postprocess fuzz tests
#   tests/asan_check.sh -k huge_radius  # extra pytest arguments are passed through
#   SRC=/path/to/patched/tree tests/asan_check.sh   # check another source tree
#
# Needs gcc (libasan/libubsan), cmake, ninja and pybind11 (the venv's build requirements).
set -euo pipefail

SRC=${SRC:-$(cd "$(dirname "$0")/.." && pwd)}
WORK=${WORK:-/tmp/s2cv_asan}
PY=${PYTHON:-python}
CXX=${CXX:-g++}
LIBASAN=$($CXX -print-file-name=libasan.so)
[ -f "$LIBASAN" ] || { echo "asan_check: libasan.so not found for $CXX" >&2; exit 2; }
# libstdc++ must be preloaded too: python does not link it, and ASan's __cxa_throw interceptor
# aborts ("real___cxa_throw != 0") on the first C++ exception if it was not there at start-up.
PRELOAD="$LIBASAN $($CXX -print-file-name=libstdc++.so)"

rm -rf "$WORK/pkg"
mkdir -p "$WORK/build" "$WORK/pkg"
# Pure-Python package and tests, without the normal (uninstrumented) extension modules.
(cd "$SRC" && tar --exclude='*.so' --exclude='__pycache__' -cf - s2cv tests pyproject.toml) | tar -C "$WORK/pkg" -xf -

FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
"$PY" - "$SRC" "$WORK" "$FLAGS" <<'EOF'
import subprocess, sys, sysconfig
import pybind11
src, work, flags = sys.argv[1:]
subprocess.run(["cmake", "-S", src, "-B", f"{work}/build", "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Debug",
                f"-DCMAKE_CXX_FLAGS={flags}", f"-DCMAKE_SHARED_LINKER_FLAGS={flags}",
                "-DCMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF", "-DS2CV_NO_CUDA=ON",
                f"-DPython_EXECUTABLE={sys.executable}", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
                f"-DS2CV_OUTPUT_DIR={work}/pkg/s2cv", f"-DS2CV_EXT_SUFFIX={sysconfig.get_config_var('EXT_SUFFIX')}"],
               check=True, stdout=subprocess.DEVNULL)
subprocess.run(["cmake", "--build", f"{work}/build", "--target", "_C"], check=True)
EOF

cd "$WORK/pkg"
# detect_leaks=0: CPython and torch keep allocations alive at exit by design.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
LD_PRELOAD="$PRELOAD" "$PY" -c "import s2cv._C as c, sys; assert c.__file__.startswith('$WORK'), c.__file__; print('asan_check: using', c.__file__)"
LD_PRELOAD="$PRELOAD" "$PY" -m pytest -q -p no:cacheprovider tests/test_postprocess.py tests/test_fuzz.py \
    -k "not detector_any and not checkpoint and not bytes and not pickle and not payloads" "$@"
