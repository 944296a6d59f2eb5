"""Nothing in, nothing out: images without structure give (almost) no keypoints with the shipped
default, while the bundled real pairs keep their budget and their flat regions stay empty."""
import importlib.util

import cv2
import numpy as np
import pytest
from conftest import read_sample

import s2cv
from s2cv.feature.feature2d import DetectorParams, effective_floor
from s2cv.feature.image import noise_sigma

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


@pytest.mark.skipif("default" not in s2cv.available_models(), reason="no shipped default")
def test_the_default_ships_the_floor_it_was_chosen_at():
    """s2fast-gen was selected at 2 grey levels (docs/models.md): its graph's metadata must carry that
    floor, so the detector (the featureless tests above run it) uses it without being told."""
    from s2cv.feature.zoo import model_meta

    assert model_meta("default")["conf"]["contrast_floor"] == pytest.approx(2 / 255)
    assert s2cv.S2Net_create(nfeatures=500).params.contrast_floor == pytest.approx(2 / 255)


def test_noise_sigma_estimates_white_noise_and_ignores_structure():
    rng = np.random.default_rng(1)
    ramp = np.tile(np.linspace(0.2, 0.8, 640, dtype=np.float32), (480, 1))
    assert noise_sigma(np.full((480, 640), 0.5, np.float32)) == 0.0 and noise_sigma(ramp) < 1e-4
    for sigma in (1 / 255, 3 / 255):
        assert noise_sigma(ramp + rng.normal(0, sigma, ramp.shape).astype(np.float32)) == pytest.approx(sigma, rel=0.1)
    scene = read_sample("roadscene", "vis", cv2.IMREAD_GRAYSCALE).astype(np.float32) / 255
    noisy = scene + rng.normal(0, 3 / 255, scene.shape).astype(np.float32)
    assert noise_sigma(noisy) == pytest.approx(3 / 255, rel=0.35)  # the scene's edges barely count
    assert noise_sigma(np.zeros((2, 2), np.float32)) == 0.0


def test_a_low_floor_stays_safe_on_featureless_images():
    """A model's low floor (1 grey level) keeps faint texture, and the noise term still keeps noise
    and flat frames empty; without it the low floor ranks noise."""
    low = s2cv.S2Net_create(model="s2fast", contrast_floor=1 / 255)
    for name, image in featureless().items():
        assert len(low.detect(image)) <= 5, name
    bare = s2cv.S2Net_create(model="s2fast", contrast_floor=1 / 255, noise_floor=0)
    assert len(bare.detect(featureless()["noise sigma 3"])) > 1000


def test_noise_term_never_raises_the_default_floor():
    noisy = np.clip(128 + np.random.default_rng(2).normal(0, 8.0, (H, W)), 0, 255).astype(np.float32) / 255
    assert effective_floor(noisy, DetectorParams()) == DetectorParams().contrast_floor
    assert effective_floor(noisy, DetectorParams(contrast_floor=1 / 255)) == pytest.approx(4 / 255)
    assert effective_floor(noisy, DetectorParams(contrast_floor=1 / 255, noise_floor=0)) == 1 / 255
    with pytest.raises(ValueError, match="noise_floor"):
        s2cv.S2Net_create(noise_floor=float("nan"))
