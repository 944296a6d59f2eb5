"""Pseudo-modalities change appearance, never geometry, and stay in the network's input range."""
import numpy as np
import pytest
from conftest import smooth_noise

from s2cv.training.data import S2PairDataset
from s2cv.training.pseudo import FAMILIES, parse_families, pseudo_modality

# Families that add no structure of their own (sensor stripes, temperature fields and inverted
# regions do, by design), so the strongest edges must stay the square's.
EDGE_KEEPING = ("tone", "palette", "jpeg", "optics", "structure")


def blob_image(h: int = 96, w: int = 128) -> np.ndarray:
    """A dark frame with one bright square: its position must survive every family."""
    img = np.full((h, w), 0.2, np.float32)
    img[40:56, 70:86] = 0.9
    return img


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_shape_range_and_determinism(name):
    img = smooth_noise((80, 100), np.random.default_rng(1))
    out = FAMILIES[name](img, np.random.default_rng(7))
    again = FAMILIES[name](img, np.random.default_rng(7))
    assert out.shape == img.shape and out.dtype == np.float32
    np.testing.assert_array_equal(out, again)
    assert not np.allclose(out, img, atol=1e-3), f"{name} left the image unchanged"
    clipped = pseudo_modality(img, np.random.default_rng(3), (name,))
    assert clipped.min() >= 0.0 and clipped.max() <= 1.0 and np.isfinite(clipped).all()


@pytest.mark.parametrize("name", EDGE_KEEPING)
def test_family_keeps_geometry(name):
    """The square's edges stay where they were (largest gradients at the square's border)."""
    img = blob_image()
    for seed in range(5):
        out = FAMILIES[name](img, np.random.default_rng(seed))
        gy, gx = np.gradient(out.astype(np.float64))
        mag = np.hypot(gx, gy)
        mag[mag < 0.5 * mag.max()] = 0  # strongest edges only
        ys, xs = np.nonzero(mag)
        cy, cx = np.average(ys, weights=mag[ys, xs]), np.average(xs, weights=mag[ys, xs])
        assert abs(cy - 47.5) < 4 and abs(cx - 77.5) < 4, (name, seed, cy, cx)


def test_parse_families():
    assert parse_families("all") == tuple(FAMILIES)
    assert parse_families("none") == ()
    assert parse_families("tone,jpeg") == ("tone", "jpeg")
    with pytest.raises(ValueError, match="unknown pseudo-modality families"):
        parse_families("tone,thermal")


def test_pseudo_modality_checks_input_and_chains():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="float32"):
        pseudo_modality(np.zeros((8, 8), np.uint8), rng, ("tone",))
    img = smooth_noise((64, 64), rng)
    assert pseudo_modality(img, rng, ()) is img


def test_dataset_pseudo_keeps_ssl_correspondence(tmp_path):
    """With pseudo-modalities on, each SSL pair is still related by its U: the mask and the
    homography come from T alone, and a pseudo side differs in appearance only."""
    from conftest import make_folder

    from s2cv.evaluation.datasets import list_pairs

    groups = [list_pairs("folder", make_folder(tmp_path / "d", n=4, size=96), "train")]
    plain = S2PairDataset(groups, crop=64, seed=5)
    pseudo = S2PairDataset(groups, crop=64, seed=5, pseudo=tuple(FAMILIES), p_pseudo=1.0)
    changed = 0
    for i in range(6):
        a, b = plain[i], pseudo[i]
        # The supervised branch is drawn first and is never given a pseudo-modality.
        for key in ("sl_a", "sl_b", "sl_U"):
            np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())
        for branch in ("vis", "ir"):
            assert b[f"{branch}_a"].shape == (1, 64, 64) and float(b[f"{branch}_b"].max()) <= 1.0
            assert np.all(b[f"{branch}_b"].numpy()[b[f"{branch}_valid_b"].numpy() == 0] == 0)
        changed += not np.allclose(a["vis_a"].numpy(), b["vis_a"].numpy())
    assert changed  # the flag has an effect


def test_dataset_pair_pseudo_changes_one_side_of_the_supervised_pair(tmp_path):
    """--pair-pseudo (a coarser camera on one side of the cross-modal pair) changes appearance only:
    U and the mask are drawn before it, so the pair stays exactly labelled."""
    from conftest import make_folder

    from s2cv.evaluation.datasets import list_pairs

    groups = [list_pairs("folder", make_folder(tmp_path / "d", n=4, size=96), "train")]
    plain = S2PairDataset(groups, crop=64, seed=5)
    rig = S2PairDataset(groups, crop=64, seed=5, pair_pseudo=("optics",), p_pair_pseudo=1.0)
    sides = []
    for i in range(8):
        a, b = plain[i], rig[i]
        for key in ("sl_U", "sl_valid_b"):
            np.testing.assert_array_equal(a[key].numpy(), b[key].numpy())
        changed = [not np.allclose(a[k].numpy(), b[k].numpy()) for k in ("sl_a", "sl_b")]
        assert sum(changed) == 1  # exactly one camera is made coarser
        sides.append(changed.index(True))
        assert np.all(b["sl_b"].numpy()[b["sl_valid_b"].numpy() == 0] == 0)
    assert set(sides) == {0, 1}  # either camera
