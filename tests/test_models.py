"""Network outputs that inference relies on: which map ranks keypoints."""
import pytest
import torch

from s2cv.models import build_model
from s2cv.zoo import load_model, save_checkpoint


@pytest.mark.parametrize("arch", ["fast", "r2d2"])
@pytest.mark.parametrize("mode", ["product", "reliability"])
def test_keypoint_score_selects_the_ranking_map(arch, mode):
    torch.manual_seed(0)
    net = build_model(arch, keypoint_score=mode).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 1, 32, 48))
    expected = out["reliability"] if mode == "reliability" else out["repeatability"] * out["reliability"]
    torch.testing.assert_close(out["scores"], expected)
    assert not torch.equal(out["repeatability"] * out["reliability"], out["reliability"])  # the modes differ


@pytest.mark.parametrize("arch", ["fast", "r2d2"])
def test_default_ranking_is_the_product(arch):
    # Kept after the validation sweep: "reliability" raises NCM but registers fewer pairs.
    assert build_model(arch).conf["keypoint_score"] == "product"


@pytest.mark.parametrize("arch", ["fast", "r2d2"])
def test_unknown_keypoint_score_is_refused(arch):
    with pytest.raises(ValueError, match="keypoint_score"):
        build_model(arch, keypoint_score="repeatability")
    net = build_model(arch).eval()
    net.conf["keypoint_score"] = "reliabilty"  # edited after construction: still refused, no silent product
    with pytest.raises(ValueError, match="keypoint_score"), torch.no_grad():
        net(torch.rand(1, 1, 32, 32))


def test_checkpoint_conf_keeps_the_ranking(tmp_path):
    net = build_model("fast", keypoint_score="reliability")
    save_checkpoint(tmp_path / "m.pt", net, "fast")
    loaded, _ = load_model(tmp_path / "m.pt")
    assert loaded.conf["keypoint_score"] == "reliability"
