"""Network outputs that inference relies on: which map ranks keypoints; widening and shortening keep them."""
import pytest
import torch

from s2cv.models import build_model
from s2cv.models.checkpoint import load_model, save_checkpoint


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


@pytest.mark.parametrize("width", [32, 40, 64])
def test_widened_fast_net_computes_the_same_maps(width):
    """Net2WiderNet start for a wider model: same outputs in eval and train mode, more channels,
    and copies of a channel that are not identical (else training could never tell them apart)."""
    torch.manual_seed(0)
    net = build_model("fast")
    with torch.no_grad():  # non-trivial BatchNorm statistics and a trained-looking head
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5), m.running_var.uniform_(0.5, 2), m.weight.uniform_(0.5, 1.5)
    wide = net.widened(width, seed=1)
    assert wide.conf["width"] == width and wide.block4[1][0].weight.shape == (width, width, 3, 3)
    x = torch.rand(2, 1, 40, 56)
    for mode in (False, True):
        net.train(mode), wide.train(mode)
        with torch.no_grad():
            a, b = net(x), wide(x)
        for key in a:
            torch.testing.assert_close(b[key], a[key], atol=1e-5, rtol=1e-4)
    w = wide.block4[1][0].weight  # consumer of block4[0]: each copy of a channel gets its own share
    for j in range(32, width):
        src = next(i for i in range(32) if torch.equal(wide.block4[0][0].weight[j], net.block4[0][0].weight[i]))
        assert not torch.allclose(w[:, j], w[:, src])


def test_widened_refuses_to_narrow_or_a_non_integer_width():
    with pytest.raises(ValueError, match="only adds channels"):
        build_model("fast", width=32).widened(16)
    with pytest.raises(TypeError, match="must be an int"):
        build_model("fast", width=32).widened(40.5)


@pytest.mark.parametrize("model", ["s2fast", "s2fast-wide"])
def test_shortened_descriptors_match_as_the_long_ones(model):
    """64-d heads of the shipped 128-d nets: same scores, same cosine similarities (within the
    last singular value of the head), the ranking of every descriptor's nearest neighbours kept."""
    net, _ = load_model(model)
    short = net.shortened(64)
    assert short.conf["descriptor_dim"] == 64 and short.descriptor_dim == 64 and not short.training
    torch.manual_seed(0)
    x = torch.rand(1, 1, 96, 128)
    with torch.no_grad():
        a, b = net(x), short(x)
    torch.testing.assert_close(b["scores"], a["scores"])
    da, db = a["descriptors"][0].flatten(1).T, b["descriptors"][0].flatten(1).T
    assert db.shape[1] == 64
    torch.testing.assert_close(db @ db.T, da @ da.T, atol=5e-4, rtol=0)
    assert (db @ db[:50].T).argmax(0).tolist() == (da @ da[:50].T).argmax(0).tolist()


def test_shortened_beyond_the_heads_rank_is_exact_and_bad_lengths_are_refused():
    torch.manual_seed(0)
    net = build_model("fast", width=8).eval()   # 16 fused channels: the 128-d output has rank <= 17
    x = torch.rand(1, 1, 32, 48)
    with torch.no_grad():
        long, short = (m(x)["descriptors"][0].flatten(1).T for m in (net, net.shortened(17)))
    torch.testing.assert_close(short @ short.T, long @ long.T, atol=1e-5, rtol=0)
    for bad in (0, 129, 32.0, True):
        with pytest.raises(ValueError, match="descriptor_dim"):
            net.shortened(bad)


def test_subnormal_weights_are_zeroed_on_load(tmp_path):
    """Weights that decayed to float32's subnormal range are zero in effect and slow every CPU
    multiply that touches them (the shipped S2Fast score heads held 780): loading zeroes them and
    nothing else."""
    from s2cv.models.common import flush_tiny

    torch.manual_seed(0)
    net = build_model("fast")
    with torch.no_grad():
        net.score_head.weight[:2, :5] = 1e-40
        net.desc_head.bias[0] = -3e-39
    save_checkpoint(tmp_path / "m.pt", net, "fast")
    loaded, _ = load_model(tmp_path / "m.pt")
    assert (loaded.score_head.weight[:2, :5] == 0).all() and loaded.desc_head.bias[0] == 0
    for (name, a), b in zip(net.state_dict().items(), loaded.state_dict().values()):
        if a.is_floating_point():
            assert torch.equal(torch.where(a.abs() < 1e-30, torch.zeros_like(a), a), b), name
    assert flush_tiny(loaded) == 0


def test_a_checkpoint_packaged_from_anothers_meta_still_says_where_it_is(tmp_path):
    """Shipping copies a run's checkpoint with its meta; a stale "path" in that meta would point the
    runtime at the run's folder for the graph beside it (and make backend='auto' fall back to torch)."""
    net, meta = load_model("s2fast")
    save_checkpoint(tmp_path / "shipped.pt", net, "fast", {**meta, "arch": "r2d2"})
    _, loaded = load_model(str(tmp_path / "shipped.pt"))
    assert loaded["path"] == str(tmp_path / "shipped.pt") and loaded["arch"] == "fast"
