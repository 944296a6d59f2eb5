"""Install size and time, import time and first-call latency: torch-free runtime vs with torch.

Run: ``python benchmarks/bench_install.py [--workdir DIR] [--reps 3]``.

Copies the working tree (tracked and untracked, not ignored files: no build/ cache) into two
fresh source folders and makes two fresh venvs with ``python3.11 -m venv``:

* ``runtime``: the README's first command, ``pip install .`` then ``s2cv register --sample``;
* ``train``: ``pip install torch==2.13.0 && pip install ".[train]"``.

Both installs use ``--no-cache-dir`` (a fresh machine downloads everything; torch's wheel may
come from a local find-links folder where pip is set up so). The C++ extension is compiled in
each install, so install time depends on the cores free at the time. Then, in ``--reps`` fresh
processes of each venv: ``import s2cv``, ``S2Net_create(...)``, the first and the second
``detectAndCompute`` on the bundled RoadScene visible frame resized to 640x480, per backend.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"

# Timed inside a fresh interpreter: everything s2cv costs after the interpreter itself starts.
STARTUP = r"""
import json, sys, time
t0 = time.perf_counter()
import cv2, s2cv
t1 = time.perf_counter()
det = s2cv.S2Net_create(backend=sys.argv[1])
t2 = time.perf_counter()
img = cv2.resize(cv2.imread(sys.argv[2]), (640, 480), interpolation=cv2.INTER_AREA)
t3 = time.perf_counter()
det.detectAndCompute(img, None)
t4 = time.perf_counter()
det.detectAndCompute(img, None)
t5 = time.perf_counter()
print(json.dumps({"backend": det._net_backend.name, "import_s": t1 - t0, "create_s": t2 - t1,
                  "first_call_s": t4 - t3, "second_call_s": t5 - t4,
                  "torch_loaded": "torch" in sys.modules}))
"""


def copy_tree(dst: Path) -> Path:
    """The working tree as a fresh clone would see it, plus untracked files not ignored."""
    files = subprocess.run(["git", "ls-files", "-z", "-c", "-o", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dst / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / name)
    return dst


def timed(cmd: str, cwd: Path, log: Path) -> float:
    """Wall time of a shell command (output to ``log``); raises if it fails."""
    t0 = time.perf_counter()
    with open(log, "w") as out:
        status = subprocess.run(["bash", "-c", cmd], cwd=cwd, stdout=out, stderr=subprocess.STDOUT).returncode
    if status:
        raise SystemExit(f"failed ({status}): {cmd}\n  log: {log}")
    return time.perf_counter() - t0


def size_mib(path: Path) -> float:
    total = sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())
    return total / 2**20


def startup(python: Path, backend: str, reps: int) -> dict[str, float | str | bool]:
    """Medians over ``reps`` fresh processes of STARTUP's timings."""
    sample = str(ROOT / "s2cv" / "samples" / "roadscene_vis.png")
    env = {**os.environ, "PYTHONPATH": ""}
    runs = []
    for _ in range(reps):
        proc = subprocess.run([str(python), "-c", STARTUP, backend, sample], capture_output=True, text=True,
                              env=env, cwd=tempfile.gettempdir())
        if proc.returncode:
            return {"backend": backend, "error": proc.stderr.strip().splitlines()[-1]}
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    row: dict[str, float | str | bool] = {"backend": runs[0]["backend"], "torch_loaded": runs[0]["torch_loaded"]}
    for key in ("import_s", "create_s", "first_call_s", "second_call_s"):
        row[key] = statistics.median(r[key] for r in runs)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", type=Path, help="where the venvs go (default: a temporary folder, removed)")
    p.add_argument("--reps", type=int, default=3, help="fresh processes per startup measurement")
    args = p.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="s2cv-install-"))
    work.mkdir(parents=True, exist_ok=True)
    installs = {
        "runtime": ["pip install --no-cache-dir ."],
        "train": [f"pip install --no-cache-dir {TORCH}", 'pip install --no-cache-dir ".[train]"'],
    }
    rows = {}
    for name, steps in installs.items():
        src, venv = copy_tree(work / f"src-{name}"), work / f"venv-{name}"
        t_venv = timed(f"python3.11 -m venv {venv}", src, work / f"{name}-venv.log")
        t_install = sum(timed(f". {venv}/bin/activate && {step}", src, work / f"{name}-pip{i}.log")
                        for i, step in enumerate(steps))
        rows[name] = {"venv_s": t_venv, "install_s": t_install, "size_mib": size_mib(venv)}
        if name == "runtime":
            rows[name]["register_s"] = timed(f". {venv}/bin/activate && s2cv register --sample -o {work / 'out'}",
                                             work, work / "register.log")
        print(f"{name:<8} venv {t_venv:5.1f} s, install {t_install:6.1f} s ({' && '.join(steps)}), "
              f"venv size {rows[name]['size_mib']:.0f} MiB"
              + (f", s2cv register --sample {rows[name]['register_s']:.1f} s" if "register_s" in rows[name] else ""),
              flush=True)
    print(f"\n== startup: medians of {args.reps} fresh processes, 640x480 ==")
    print(f"{'venv':<8} {'backend':<12} {'runs on':<12} {'import s2cv':>11} {'create':>8} {'1st call':>9} "
          f"{'2nd call':>9} {'torch loaded':>12}")
    for name, backends in (("runtime", ["auto", "opencv", "onnxruntime"]),
                           ("train", ["auto", "opencv", "onnxruntime", "torch"])):
        for backend in backends:
            r = startup(work / f"venv-{name}" / "bin" / "python", backend, args.reps)
            if "error" in r:
                print(f"{name:<8} {backend:<12} error: {r['error']}")
                continue
            print(f"{name:<8} {backend:<12} {r['backend']:<12} {r['import_s'] * 1e3:9.0f} ms {r['create_s'] * 1e3:5.0f} ms "
                  f"{r['first_call_s'] * 1e3:6.0f} ms {r['second_call_s'] * 1e3:6.0f} ms {str(r['torch_loaded']):>12}",
                  flush=True)
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
