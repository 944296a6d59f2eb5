"""The XFeat-layout network: released weights load and reproduce XFeat's dense outputs; its S2 loss
trains every head; the trainer runs it with unpaired SSL folders and a keypoint teacher."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import make_folder, warped_pair

import s2cv
from s2cv.models.checkpoint import load_model, read_checkpoint
from s2cv.models.xfeat import XFeat, convert_released_state_dict, load_released
from s2cv.train import main
from s2cv.training.losses import DetectDescribeLoss, keypoint_targets

RELEASED = Path(__file__).resolve().parents[2] / "shared" / "pretrained" / "xfeat.pt"

# XFeatModel's layers in the authors' naming: (name, cin, cout, kernel, stride) of each BasicLayer.
_BASIC = {
    "block1": [(1, 4, 3, 1), (4, 8, 3, 2), (8, 8, 3, 1), (8, 24, 3, 2)],
    "block2": [(24, 24, 3, 1), (24, 24, 3, 1)],
    "block3": [(24, 64, 3, 2), (64, 64, 3, 1), (64, 64, 1, 1)],
    "block4": [(64, 64, 3, 2), (64, 64, 3, 1), (64, 64, 3, 1)],
    "block5": [(64, 128, 3, 2), (128, 128, 3, 1), (128, 128, 3, 1), (128, 64, 1, 1)],
    "block_fusion": [(64, 64, 3, 1), (64, 64, 3, 1)],
    "heatmap_head": [(64, 64, 1, 1), (64, 64, 1, 1)],
    "keypoint_head": [(64, 64, 1, 1), (64, 64, 1, 1), (64, 64, 1, 1)],
}
_FINAL = {"block_fusion": (64, 64), "heatmap_head": (64, 1), "keypoint_head": (64, 65)}


def released_layout_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights in the released file's key layout, fine_matcher included."""
    g = torch.Generator().manual_seed(seed)
    sd = {"skip1.1.weight": torch.randn(24, 1, 1, 1, generator=g), "skip1.1.bias": torch.randn(24, generator=g) * 0.1}
    for name, layers in _BASIC.items():
        for i, (cin, cout, k, _) in enumerate(layers):
            sd[f"{name}.{i}.layer.0.weight"] = torch.randn(cout, cin, k, k, generator=g) / (cin * k * k) ** 0.5
            sd[f"{name}.{i}.layer.1.running_mean"] = torch.randn(cout, generator=g) * 0.1
            sd[f"{name}.{i}.layer.1.running_var"] = torch.rand(cout, generator=g) + 0.5
            sd[f"{name}.{i}.layer.1.num_batches_tracked"] = torch.tensor(7)
        if name in _FINAL:
            cin, cout = _FINAL[name]
            i = len(layers)
            sd[f"{name}.{i}.weight"] = torch.randn(cout, cin, 1, 1, generator=g) / cin ** 0.5
            sd[f"{name}.{i}.bias"] = torch.randn(cout, generator=g) * 0.1
    sd["fine_matcher.0.weight"] = torch.randn(512, 128, generator=g)
    return sd


def reference_forward(sd: dict[str, torch.Tensor], image: torch.Tensor):
    """XFeatModel.forward written from the paper's description with functional ops on the released keys."""
    def basic(name: str, x: torch.Tensor) -> torch.Tensor:
        for i, (_, _, k, s) in enumerate(_BASIC[name]):
            p = f"{name}.{i}.layer."
            x = F.conv2d(x, sd[p + "0.weight"], stride=s, padding=k // 2)
            x = F.relu(F.batch_norm(x, sd[p + "1.running_mean"], sd[p + "1.running_var"], training=False, eps=1e-5))
        return x

    def final(name: str, x: torch.Tensor) -> torch.Tensor:
        i = len(_BASIC[name])
        return F.conv2d(basic(name, x), sd[f"{name}.{i}.weight"], sd[f"{name}.{i}.bias"])

    x = F.instance_norm(image, eps=1e-5)
    skip = F.conv2d(F.avg_pool2d(x, 4, 4), sd["skip1.1.weight"], sd["skip1.1.bias"])
    x3 = basic("block3", basic("block2", basic("block1", x) + skip))
    x4 = basic("block4", x3)
    x5 = basic("block5", x4)
    size = x3.shape[-2:]
    feats = final("block_fusion", x3 + F.interpolate(x4, size, mode="bilinear") + F.interpolate(x5, size, mode="bilinear"))
    heat = torch.sigmoid(final("heatmap_head", feats))
    b, _, h, w = x.shape
    cells = x.unfold(2, 8, 8).unfold(3, 8, 8).reshape(b, 1, h // 8, w // 8, 64).permute(0, 1, 4, 2, 3).reshape(b, 64, h // 8, w // 8)
    logits = final("keypoint_head", cells)
    probs = F.softmax(logits, 1)[:, :64].permute(0, 2, 3, 1).reshape(b, h // 8, w // 8, 8, 8)
    heatmap = probs.permute(0, 1, 3, 2, 4).reshape(b, 1, h, w)
    return feats, logits, heat, heatmap


def test_converted_weights_reproduce_the_released_forward():
    sd = released_layout_state()
    net = XFeat().eval()
    net.load_state_dict(convert_released_state_dict(sd))
    image = torch.rand(2, 1, 64, 96)
    with torch.no_grad():
        feats, logits, rel = net.raw(image)
        out = net(image)
        ref_feats, ref_logits, ref_rel, ref_heat = reference_forward(sd, image)
    torch.testing.assert_close(feats, ref_feats, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(rel, ref_rel, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out["heatmap"], ref_heat, rtol=1e-4, atol=1e-6)
    rel_full = F.interpolate(ref_rel, size=(64, 96), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out["scores"], ref_heat * rel_full, rtol=1e-4, atol=1e-6)
    assert out["descriptors"].shape == (2, 64, 8, 12)
    torch.testing.assert_close(out["descriptors"].norm(dim=1), torch.ones(2, 8, 12))


def test_converter_refuses_a_foreign_state_dict():
    sd = released_layout_state()
    del sd["block3.1.layer.0.weight"]
    with pytest.raises(ValueError, match="missing"):
        convert_released_state_dict(sd)
    with pytest.raises(ValueError, match="unexpected"):
        convert_released_state_dict({**released_layout_state(), "extra.weight": torch.zeros(1)})


def test_corrupt_released_file_is_a_value_error(tmp_path):
    bad = tmp_path / "xfeat.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="xfeat.pt"):
        load_released(bad)


@pytest.mark.skipif(not RELEASED.is_file(), reason="XFeat's released file is not beside this checkout")
def test_shipped_xfeat_zoo_model_is_the_released_file_converted():
    net, meta = load_model("xfeat")
    released = load_released(RELEASED)
    for (k, a), b in zip(net.state_dict().items(), released.state_dict().values(), strict=True):
        assert torch.equal(a, b), k


def test_keypoint_targets_follow_the_homography():
    torch.manual_seed(0)
    logits = torch.randn(1, 65, 8, 8) * 3
    ones = torch.ones(1, 1, 64, 64)
    same1, same2 = keypoint_targets(logits, torch.eye(3)[None], ones, ones)
    assert torch.equal(same1, same2) and (same1 < 64).any()
    shift = torch.tensor([[1.0, 0, 8], [0, 1, 0], [0, 0, 1]])[None]     # one cell to the right
    t1, t2 = keypoint_targets(logits, shift, ones, ones)
    assert (t2[0, :, 0] == -1).all()                                     # not seen in image 1
    moved = t1[0, :, :-1]
    assert torch.equal(t2[0, :, 1:][moved < 64], moved[moved < 64])


def test_xfeat_loss_trains_every_head():
    torch.manual_seed(0)
    net, teacher = XFeat(), load_model("xfeat")[0]     # the shipped released weights detect real points
    a, b, U, va, vb = warped_pair(96)
    loss_fn = DetectDescribeLoss("xfeat")
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    history = []
    for step in range(30):
        out = net(torch.cat([a, b]))
        o1, o2 = ({k: v[i:i + 1] for k, v in out.items()} for i in range(2))
        o1["teacher_logits"] = teacher.keypoint_logits(a).detach()
        loss, parts = loss_fn(o1, o2, U, va, vb, net.stride)
        opt.zero_grad()
        loss.backward()
        if step == 0:
            missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
            assert not missing and set(parts) == {"dual_softmax", "reliability", "keypoint"}
        opt.step()
        history.append({k: float(v.detach()) for k, v in parts.items()})
    for term in ("dual_softmax", "keypoint"):
        assert history[-1][term] < history[0][term] - 0.1, (term, history[0], history[-1])


def test_trainer_fine_tunes_xfeat_with_unpaired_ssl_frames(tmp_path):
    root = make_folder(tmp_path / "d", size=96)
    unpaired = tmp_path / "thermal_only"
    unpaired.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        cv2.imwrite(str(unpaired / f"t{i}.png"), (cv2.GaussianBlur(rng.random((80, 100)), (0, 0), 2) * 255).astype(np.uint8))
    out = tmp_path / "run"
    args = ["--arch", "xfeat", "--init", "xfeat", "--dataset", "folder", "--data", str(root), "--steps", "2",
            "--val-every", "2", "--crop", "64", "--out", str(out), "--val-pairs", "1", "--ssl-data", f"ir={unpaired}"]
    assert main(args) == 0
    ckpt = read_checkpoint(out / "best.pt")
    assert ckpt["arch"] == "xfeat" and ckpt["meta"]["geometry"] == "wide" and ckpt["meta"]["keypoint_teacher"] == "xfeat"
    assert ckpt["meta"]["ssl_data"] == [f"ir={unpaired}"] and "val_hard_ncm" in ckpt["meta"]
    det = s2cv.S2Net_create(model=str(out / "best.pt"), backend="torch", nfeatures=30)
    kp, des = det.detectAndCompute(cv2.imread(str(root / "vis" / "p00.png")), None)
    assert des.shape == (len(kp), 64) and des.dtype == np.float32


@pytest.mark.parametrize("item", ["thermal=/x", "ir="])
def test_trainer_refuses_bad_ssl_data(item, capsys):
    with pytest.raises(SystemExit):
        main(["--arch", "xfeat", "--data", "/nowhere", "--out", "/tmp/x", "--ssl-data", item])
    assert "--ssl-data" in capsys.readouterr().err


def test_training_reads_16_bit_thermal_as_inference_does(tmp_path):
    """A narrow-band 16-bit frame (values 7000-9040) reaches the loss as S2Net_create sees it,
    not as an 8-bit truncation; a short run on such frames trains."""
    from s2cv.feature.image import read_gray, to_gray_float

    root = make_folder(tmp_path / "d", size=96)
    for f in (root / "ir").iterdir():
        ir8 = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(f), ir8.astype(np.uint16) * 8 + 7000)
    frame = root / "ir" / "p00.png"
    raw = cv2.imread(str(frame), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.min() >= 7000
    seen = read_gray(frame)
    np.testing.assert_array_equal(seen, to_gray_float(raw))
    assert seen.max() - seen.min() > 0.9                  # stretched, not 7000/65535..9040/65535
    out = tmp_path / "run"
    assert main(["--dataset", "folder", "--data", str(root), "--steps", "2", "--val-every", "2", "--crop", "64",
                 "--out", str(out), "--val-pairs", "1"]) == 0
