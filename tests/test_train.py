"""The training CLI end to end: a short real run gives a checkpoint S2Net_create loads; DDP on 2 CPU ranks."""
import os
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import s2cv
from conftest import make_folder
from s2cv.evaluation.datasets import list_pairs
from s2cv.models.checkpoint import read_checkpoint
from s2cv.feature.image import read_image
from s2cv.cli.train import main, parse_args
from s2cv.training import loop
from s2cv.training.loop import learning_rate

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def test_folder_dataset_split(tmp_path):
    root = make_folder(tmp_path / "d")
    train, val = list_pairs("folder", root, "train"), list_pairs("folder", root, "val")
    assert len(train) + len(val) == 12 and len(val) == 1 and not set(train) & set(val)


def test_cli_short_run_gives_loadable_checkpoint(tmp_path):
    root = make_folder(tmp_path / "d")
    out = tmp_path / "run"
    args = ["--dataset", "folder", "--data", str(root), "--steps", "2", "--val-every", "2", "--crop", "64",
            "--out", str(out), "--val-pairs", "1", "--seed", "3"]
    assert main(args) == 0
    ckpt = read_checkpoint(out / "best.pt")
    assert ckpt["arch"] == "fast" and ckpt["meta"]["ssl_weight"] == 0.4 and ckpt["step"] == 2
    assert (out / "train_log.csv").read_text().count("\n") == 3
    assert cv2.imread(str(out / "training.png")) is not None      # loss / lr / validation curves
    det = s2cv.S2Net_create(model=str(out / "best.pt"), nfeatures=50)
    kp, des = det.detectAndCompute(cv2.imread(str(root / "vis" / "p00.png")), None)
    assert len(kp) == 50 and des.shape == (50, 128)
    # Resume continues from the saved step rather than starting over.
    assert main(args[:5] + ["4"] + args[6:] + ["--resume"]) == 0
    assert read_checkpoint(out / "last.pt")["step"] == 4


def test_held_out_camera_pseudo_modalities_and_kept_steps(tmp_path):
    """--val-data validates on every pair of a camera never trained on, logged per camera;
    --pseudo is recorded in the checkpoint; --keep-checkpoints keeps each validated step."""
    train_root, held_root = make_folder(tmp_path / "d", n=6), make_folder(tmp_path / "other" / "train", n=3)
    out = tmp_path / "run"
    assert main(["--dataset", "folder", "--data", str(train_root), "--val-data", f"folder={held_root}",
                 "--pseudo", "tone,optics", "--pair-pseudo", "optics", "--steps", "2", "--val-every", "1", "--crop", "64", "--val-pairs", "1",
                 "--val-k", "64", "--keep-checkpoints", "--out", str(out)]) == 0
    import json
    val = [json.loads(line) for line in (out / "val_log.jsonl").read_text().splitlines()]
    assert [v["step"] for v in val] == [1, 2]
    # Camera names: the training folder's data set ("d") and the held-out one ("other", its train/ dropped).
    assert {"val_d_reg10", "val_other_reg10", "val_hard_other_ncm"} <= set(val[0])
    assert sorted(p.name for p in (out / "steps").iterdir()) == ["000001.pt", "000002.pt"]
    meta = read_checkpoint(out / "last.pt")["meta"]
    assert meta["pseudo"] == "tone,optics" and meta["val_data"] == [f"folder={held_root}"]
    assert meta["pair_pseudo"] == "optics" and meta["p_pair_pseudo"] == 0.5
    for bad in (["--pseudo", "tone,heat"], ["--pair-pseudo", "heat"], ["--p-pair-pseudo", "1.5"]):
        with pytest.raises(SystemExit):
            parse_args(["--data", "x", "--out", "y", *bad])


def test_learning_rate_schedule():
    assert learning_rate(123, 1000, 1e-3, None) == 1e-3                    # paper: constant
    assert learning_rate(0, 1000, 1e-3, 1e-5) == pytest.approx(1e-3)
    assert learning_rate(500, 1000, 1e-3, 1e-5) == pytest.approx(0.5 * (1e-3 + 1e-5))
    assert learning_rate(1000, 1000, 1e-3, 1e-5) == pytest.approx(1e-5)
    values = [learning_rate(s, 1000, 1e-3, 1e-5) for s in range(0, 1001, 50)]
    assert values == sorted(values, reverse=True)


def test_init_fine_tunes_from_a_checkpoint(tmp_path):
    """--init starts from another run's weights with a fresh step count, and logs the schedule."""
    root = make_folder(tmp_path / "d")
    common = ["--dataset", "folder", "--data", str(root), "--val-every", "1", "--crop", "64", "--val-pairs", "1"]
    assert main(common + ["--steps", "1", "--out", str(tmp_path / "a")]) == 0
    first = read_checkpoint(tmp_path / "a" / "last.pt")["state_dict"]
    assert main(common + ["--steps", "1", "--lr", "0", "--out", str(tmp_path / "b"),
                          "--init", str(tmp_path / "a" / "last.pt")]) == 0
    tuned = read_checkpoint(tmp_path / "b" / "last.pt")
    assert tuned["step"] == 1 and tuned["meta"]["init"] == str(tmp_path / "a" / "last.pt")
    # lr 0: the convolution weights are exactly the initial ones (BN running stats still move).
    assert torch.equal(tuned["state_dict"]["desc_head.weight"], first["desc_head.weight"])
    assert "lr" in (tmp_path / "b" / "train_log.csv").read_text().partition("\n")[0].split(",")
    # --width widens the --init model (S2Fast.widened; its outputs are checked in test_models).
    assert main(common + ["--steps", "1", "--lr", "0", "--width", "40", "--out", str(tmp_path / "w"),
                          "--init", str(tmp_path / "a" / "last.pt")]) == 0
    wide = read_checkpoint(tmp_path / "w" / "last.pt")
    assert wide["conf"]["width"] == 40 and wide["state_dict"]["block4.1.0.weight"].shape[:2] == (40, 40)
    # --descriptor-dim shortens the --init model's descriptors (S2Fast.shortened, checked in test_models).
    assert main(common + ["--steps", "1", "--lr", "0", "--descriptor-dim", "64", "--out", str(tmp_path / "s"),
                          "--init", str(tmp_path / "a" / "last.pt")]) == 0
    short = read_checkpoint(tmp_path / "s" / "last.pt")
    assert short["conf"]["descriptor_dim"] == 64 and short["state_dict"]["desc_head.weight"].shape[0] == 64
    with pytest.raises(ValueError, match="not --arch"):
        main(common + ["--steps", "1", "--arch", "r2d2", "--out", str(tmp_path / "c"),
                       "--init", str(tmp_path / "a" / "last.pt")])


def test_cli_defaults_follow_the_paper():
    a = parse_args(["--arch", "d2net", "--data", "x", "--out", "y"])
    assert (a.ssl_weight, a.lr, a.weight_decay, a.crop, a.batch_size) == (0.8, 1e-4, 1e-5, 256, 1)
    r = parse_args(["--arch", "r2d2", "--data", "x", "--out", "y"])
    assert (r.ssl_weight, r.weight_decay, r.crop, r.batch_size) == (0.4, 5e-4, 192, 2)
    with pytest.raises(SystemExit):
        parse_args(["--data", "x", "--out", "y", "--ssl-weight", "-1"])
    for bad in (["--width", "48", "--arch", "r2d2"], ["--width", "0"], ["--descriptor-dim", "0"],
                ["--descriptor-dim", "64", "--arch", "xfeat"],
                ["--arch", "d2net", "--pretrained", "vgg.pt", "--init", "default"]):
        with pytest.raises(SystemExit):
            parse_args(["--data", "x", "--out", "y", *bad])
    for bad in ("-1e-5", "nan"):
        with pytest.raises(SystemExit):
            parse_args(["--data", "x", "--out", "y", "--lr-final", bad])
    assert r.neg_radius == 5.0  # R2D2's
    for bad in ("1.5", "nan"):
        with pytest.raises(SystemExit):
            parse_args(["--data", "x", "--out", "y", "--neg-radius", bad])


@pytest.mark.skipif(not (SHARED / "roadscene" / "train.txt").is_file(), reason="shared RoadScene data not present")
def test_cli_on_a_few_roadscene_pairs(tmp_path):
    out = tmp_path / "rs"
    assert main(["--data", f"roadscene={SHARED / 'roadscene'}", "--steps", "1", "--val-every", "1",
                 "--val-pairs", "1", "--crop", "96", "--out", str(out)]) == 0
    assert s2cv.S2Net_create(model=str(out / "best.pt")).descriptorSize() == 128


def test_torchrun_two_cpu_processes(tmp_path):
    root = make_folder(tmp_path / "d")
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with socket.socket() as s:  # a free port: a fixed one can still be held by an earlier run
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port,
           "-m", "s2cv.train", "--dataset", "folder", "--data", str(root), "--steps", "2", "--val-every", "2",
           "--crop", "64", "--out", str(out), "--val-pairs", "1", "--threads", "1"]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    ckpt = read_checkpoint(out / "best.pt")
    assert ckpt["meta"]["batch_size"] == 4 and ckpt["step"] == 2


def test_training_crops_are_what_s2net_create_sees_of_16bit_frames(tmp_path, monkeypatch):
    """Radiometric frames use a narrow band of the 16-bit range: the crops the loss trains on must be
    regions of the very plane S2Net_create hands its network for the same file (robust stretch), not
    an 8-bit truncation of it (a near-flat image)."""
    crop, rng = 40, np.random.default_rng(5)
    root = tmp_path / "d"
    for sub in ("vis", "ir"):
        (root / sub).mkdir(parents=True)
    for i in range(6):  # short side 1.2 crops: the training rescale is then the identity
        img = cv2.GaussianBlur(rng.random((48, 72)).astype(np.float32), (0, 0), 1.5)
        img = (img - img.min()) / (img.max() - img.min())
        cv2.imwrite(str(root / "vis" / f"f{i}.png"), (7000 + 2000 * img).astype(np.uint16))
        cv2.imwrite(str(root / "ir" / f"f{i}.png"), (7000 + 2000 * (1 - img) ** 1.5).astype(np.uint16))

    det = s2cv.S2Net_create(nfeatures=8)
    fed: list[np.ndarray] = []   # the planes the detector's network runs on
    dense_maps = det.denseMaps

    def spy_dense_maps(gray: np.ndarray):
        fed.append(gray.copy())
        return dense_maps(gray)

    monkeypatch.setattr(det, "denseMaps", spy_dense_maps)
    seen = {side: [] for side in ("vis", "ir")}
    for side in seen:
        for path in sorted((root / side).iterdir()):
            det.detectAndCompute(read_image(path), None)
            seen[side].append(fed.pop())
    assert all(np.ptp(g) > 0.9 for g in seen["vis"] + seen["ir"])   # stretched, not flat

    inputs: list[dict[str, torch.Tensor]] = []   # the batches each training step feeds its network
    network_input = loop.network_input

    def spy_network_input(batch, branches):
        inputs.append(batch)
        return network_input(batch, branches)

    monkeypatch.setattr(loop, "network_input", spy_network_input)
    assert main(["--dataset", "folder", "--data", str(root), "--steps", "2", "--val-every", "2", "--crop", str(crop),
                 "--out", str(tmp_path / "run"), "--val-pairs", "1", "--threads", "1"]) == 0
    assert len(inputs) == 2

    def is_region(c: np.ndarray, planes: list[np.ndarray]) -> bool:
        return any(np.array_equal(c, p[y:y + crop, x:x + crop]) for p in planes
                   for y in range(p.shape[0] - crop + 1) for x in range(p.shape[1] - crop + 1))

    for batch in inputs:  # the unaugmented crops of the two SSL branches (ir's sometimes inverted)
        for c in batch["vis_a"][:, 0].numpy():
            assert is_region(c, seen["vis"])
        for c in batch["ir_a"][:, 0].numpy():
            assert is_region(c, seen["ir"]) or is_region(c, [1.0 - p for p in seen["ir"]])


def test_mixed_geometry_draws_each_range_and_a_single_range_keeps_its_stream(tmp_path, monkeypatch):
    from s2cv.training import data
    from s2cv.training.augment import GEOMETRIES, TRAINING_GEOMETRIES

    groups = [list_pairs("folder", make_folder(tmp_path / "d", n=4, size=64), "train")]
    single = data.S2PairDataset(groups, crop=48, geometry=GEOMETRIES["paper"])
    as_tuple = data.S2PairDataset(groups, crop=48, geometry=TRAINING_GEOMETRIES["paper"])
    for i in range(3):
        a, b = single[i], as_tuple[i]
        assert all(torch.equal(a[k], b[k]) for k in a), "a one-range tuple must give the very same items"

    seen = []
    real = data.s2_transform
    monkeypatch.setattr(data, "s2_transform", lambda image, rng, g: (seen.append(g), real(image, rng, g))[1])
    mixed = data.S2PairDataset(groups, crop=48, geometry=TRAINING_GEOMETRIES["mixed"])
    for i in range(20):
        mixed[i]
    assert {id(g) for g in seen} == {id(GEOMETRIES["paper"]), id(GEOMETRIES["wide"])}
    assert 10 <= sum(g is GEOMETRIES["wide"] for g in seen) <= 30  # 40 draws, about half each


def test_validation_pairs_are_shrunk_to_the_working_size(tmp_path):
    """Validation (trainer, glue trainer, benchmarks) measures pairs at most 640 px long: one helper,
    never enlarging, the pair's two images alike."""
    from s2cv.feature.image import shrink_to
    from s2cv.training.glue_loop import validation_cases

    big = np.zeros((480, 1280), np.uint8)
    small, s = shrink_to(big, 640)
    assert small.shape == (240, 640) and s == 0.5
    same, s = shrink_to(big[:100, :200], 640)
    assert same.shape == (100, 200) and s == 1.0
    with pytest.raises(ValueError, match="max_side"):
        shrink_to(big, 0)
    with pytest.raises(ValueError, match="non-empty"):
        shrink_to(np.zeros((0, 5), np.uint8), 640)
    root = make_folder(tmp_path / "d", n=12, size=700)  # 700 x 720 px pairs
    items = loop.validation_set([("folder", root)], n=1, seed=0)
    assert items and all(max(a.shape) == 640 and a.shape == b.shape for _, a, b, _ in items)
    cases = validation_cases([("folder", str(root), "val")], seeds=(0,))
    assert cases and all(max(v.shape) == 640 and v.shape == i.shape for _, v, i, _ in cases)
