"""Nothing in, nothing out: images without structure give (almost) no keypoints with the shipped
default, while the bundled real pairs keep their budget and their flat regions stay empty."""
import importlib.util

import cv2
import numpy as np
import pytest
from conftest import read_sample

import s2cv

H, W = 480, 640


def featureless() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "black": np.zeros((H, W), np.uint8),
        "grey": np.full((H, W), 128, np.uint8),
        "white": np.full((H, W, 3), 255, np.uint8),
        "faint noise": np.clip(128 + rng.normal(0, 1.0, (H, W)), 0, 255).astype(np.uint8),
        "noise sigma 3": np.clip(128 + rng.normal(0, 3.0, (H, W)), 0, 255).astype(np.uint8),
        "ramp": np.tile(np.linspace(60, 200, W, dtype=np.float32), (H, 1)).astype(np.uint8),
        "16-bit flat": np.full((H, W), 7300, np.uint16),
    }


@pytest.fixture(scope="module")
def detector():
    return s2cv.S2Net_create()


@pytest.mark.parametrize("name", list(featureless()))
def test_featureless_image_gives_at_most_a_handful(detector, name):
    kp, des = detector.detectAndCompute(featureless()[name], None)
    assert len(kp) <= 5, f"{name}: {len(kp)} keypoints"
    assert des is None or des.shape == (len(kp), detector.descriptorSize())


def test_real_pairs_keep_their_budget(detector):
    for name, side in (("roadscene", "vis"), ("roadscene", "ir"), ("visnir", "vis"), ("visnir", "ir")):
        kp = detector.detect(read_sample(name, side))
        assert len(kp) >= 1000, (name, side, len(kp))


def test_flat_sky_of_a_thermal_frame_gets_no_keypoints(detector):
    """The bundled thermal frame with its top 40 % replaced by a flat, faintly noisy sky: the budget
    goes to the scene below (without the contrast floor 26-36 % of 4096 keypoints land in that sky)."""
    ir = read_sample("roadscene", "ir", cv2.IMREAD_GRAYSCALE)
    sky = int(0.4 * ir.shape[0])
    ir[:sky] = np.clip(40 + np.random.default_rng(0).normal(0, 0.7, (sky, ir.shape[1])), 0, 255).astype(np.uint8)
    pts = cv2.KeyPoint_convert(detector.detect(ir))
    assert len(pts) >= 500
    assert (pts[:, 1] < sky - 8).mean() < 0.01


def test_contrast_floor_zero_ranks_every_pixel_again():
    det = s2cv.S2Net_create(contrast_floor=0.0, nfeatures=100)
    assert det.params.contrast_floor == 0.0
    assert len(det.detect(featureless()["grey"])) == 100


def test_bad_contrast_floor_is_refused():
    for bad in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="contrast_floor"):
            s2cv.S2Net_create(contrast_floor=bad)


def test_a_model_carries_its_own_contrast_floor(tmp_path):
    """A floor in the network's conf is its detector default, through a checkpoint and its graph
    alike; a floor the caller passes still wins."""
    from s2cv.models.checkpoint import load_model, save_checkpoint

    net, _ = load_model("s2fast")
    net.conf["contrast_floor"] = 0.0
    grey = featureless()["grey"][:96, :128]
    save_checkpoint(tmp_path / "floor0.pt", net, "fast")
    made = {"module": s2cv.S2Net_create(model=net, backend="torch", nfeatures=50),
            "checkpoint": s2cv.S2Net_create(model=str(tmp_path / "floor0.pt"), backend="torch", nfeatures=50)}
    if importlib.util.find_spec("onnx") and importlib.util.find_spec("onnxruntime"):
        from s2cv.deploy.export import export_onnx

        export_onnx(net, tmp_path / "graph.onnx", sizes=((96, 128),))
        made["graph"] = s2cv.S2Net_create(model=str(tmp_path / "graph.onnx"), backend="onnxruntime", nfeatures=50)
    for how, det in made.items():
        assert det.params.contrast_floor == 0.0, how
        assert len(det.detect(grey)) == 50, how
    passed = s2cv.S2Net_create(model=str(tmp_path / "floor0.pt"), backend="torch", nfeatures=50, contrast_floor=4 / 255)
    assert passed.params.contrast_floor == 4 / 255 and len(passed.detect(grey)) == 0
    assert s2cv.S2Net_create(model="s2fast", nfeatures=50).params.contrast_floor == 4 / 255  # no floor in its conf
