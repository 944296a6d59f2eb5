"""Builds the C++ (and, when nvcc is found, CUDA) extensions with CMake.

Metadata lives in pyproject.toml; this file only wires CMake into
``build_ext`` so that ``pip install .`` and ``pip install -e .`` both work.
Set ``S2CV_NO_CUDA=1`` to skip the CUDA module, ``CUDAARCHS`` to change its
GPU targets, ``CMAKE_BUILD_PARALLEL_LEVEL`` to change the job count.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    """A module produced by the CMake project rather than by setuptools."""

    def __init__(self, name: str, optional: bool = False) -> None:
        super().__init__(name, sources=[], optional=optional)


def _tool(name: str) -> str | None:
    """Path of a build tool, preferring the pip-installed build requirement."""
    try:
        module = __import__(name)
    except ImportError:
        return shutil.which(name)
    bin_dir = getattr(module, "BIN_DIR", None) or getattr(module, "CMAKE_BIN_DIR", None)
    candidate = Path(bin_dir, name) if bin_dir else None
    return str(candidate) if candidate and candidate.is_file() else shutil.which(name)


def _drop_stale_cache(build_dir: Path, cmake: str) -> None:
    """Forget a configuration made by another cmake binary (e.g. an earlier
    isolated build env that no longer exists); object files are kept, so
    Ninja still skips the compilations whose commands did not change."""
    cache = build_dir / "CMakeCache.txt"
    if not cache.is_file():
        return
    for line in cache.read_text(errors="replace").splitlines():
        if line.startswith("CMAKE_COMMAND:INTERNAL="):
            recorded = line.split("=", 1)[1]
            if Path(recorded).resolve() != Path(cmake).resolve():
                cache.unlink()
            return


class CMakeBuild(build_ext):
    """Configures and builds the CMake project once for all extensions."""

    def build_extensions(self) -> None:
        cmake = _tool("cmake")
        if cmake is None:
            raise RuntimeError("cmake not found: install it with `pip install cmake`")
        import pybind11

        # A fixed tree under build/ (not setuptools' per-run temp dir) so that
        # editable reinstalls recompile only what changed.
        mode = "debug" if self.debug else "release"
        build_dir = ROOT / "build" / f"cmake-{sys.implementation.cache_tag}-{mode}"
        build_dir.mkdir(parents=True, exist_ok=True)
        _drop_stale_cache(build_dir, cmake)
        out_dir = Path(self.get_ext_fullpath("s2cv._C")).resolve().parent
        suffix = Path(self.get_ext_filename("_C")).name[len("_C") :]
        no_cuda = os.environ.get("S2CV_NO_CUDA", "").lower() not in ("", "0", "off", "false")

        configure = [
            cmake,
            "-S", str(ROOT),
            "-B", str(build_dir),
            f"-DCMAKE_BUILD_TYPE={mode.capitalize()}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            f"-DS2CV_OUTPUT_DIR={out_dir}",
            f"-DS2CV_EXT_SUFFIX={suffix}",
            f"-DS2CV_NO_CUDA={'ON' if no_cuda else 'OFF'}",
        ]  # fmt: skip
        ninja = _tool("ninja")
        if ninja is not None and not (build_dir / "CMakeCache.txt").exists():
            configure += ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"]
        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 1)
        for ext in self.extensions:  # a stale module from an earlier build must not count as built
            Path(self.get_ext_fullpath(ext.name)).unlink(missing_ok=True)
        subprocess.run(configure, check=True)
        build = [cmake, "--build", str(build_dir), "--parallel", jobs]
        if subprocess.run(build).returncode != 0:
            # The CUDA module is optional: a failing nvcc must not cost the CPU module.
            print("s2cv: build failed; retrying the CPU module s2cv._C alone", file=sys.stderr)
            subprocess.run([*build, "--target", "_C"], check=True)

        built = []
        for ext in self.extensions:
            if Path(self.get_ext_fullpath(ext.name)).is_file():
                built.append(ext)
            elif ext.optional:
                print(f"s2cv: optional extension {ext.name} was not built", file=sys.stderr)
                if self.inplace or getattr(self, "editable_mode", False):
                    (ROOT / self.get_ext_filename(ext.name)).unlink(missing_ok=True)  # stale in-tree copy
            else:
                raise RuntimeError(f"CMake did not produce {self.get_ext_fullpath(ext.name)}")
        self.extensions[:] = built  # later steps (in-place copy, outputs) skip what is absent


setup(
    ext_modules=[CMakeExtension("s2cv._C"), CMakeExtension("s2cv._C_cuda", optional=True)],
    cmdclass={"build_ext": CMakeBuild},
)
