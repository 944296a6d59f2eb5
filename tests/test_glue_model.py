"""S2Glue (s2cv.models.glue): the matcher, its checkpoints, and the LighterGlue converter.

What the converter test proves: the converted GlueMatcher gives the same matches and scores as an
independent numpy forward written here, step by step from LightGlue's published forward pass
(cvg/LightGlue lightglue.py, as LighterGlue configures it: no early stopping, pruning at 0.95,
filter 0.1), reading the *released* state dict with its own key names and its interleaved q/k/v
layout. The original torch code is not installed, so this is a second implementation of the same
equations, not a run of the authors' code.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from s2cv.models.glue import GlueConfig, GlueMatcher, normalize_keypoints  # noqa: E402
from s2cv.models.glue_checkpoint import (  # noqa: E402
    convert_lightglue_state,
    load_glue,
    load_lighterglue,
    save_glue,
)

RELEASED = Path(__file__).resolve().parents[2] / "shared" / "pretrained" / "xfeat-lighterglue.pt"
needs_released = pytest.mark.skipif(not RELEASED.is_file(), reason="LighterGlue's released file is not beside this checkout")


# ------------------------------------------------------------------ numpy reference of LightGlue's forward
def _lin(sd, name, x):
    return x @ sd[name + ".weight"].T + sd[name + ".bias"] if name + ".bias" in sd else x @ sd[name + ".weight"].T


def _softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def _log_softmax(x, axis):
    mx = x.max(axis, keepdims=True)
    return x - mx - np.log(np.exp(x - mx).sum(axis, keepdims=True))


def _logsigmoid(x):
    return -np.logaddexp(0, -x)


def _ffn(sd, p, x):
    from math import erf, sqrt
    h = _lin(sd, p + ".0", x)
    h = (h - h.mean(-1, keepdims=True)) / np.sqrt(h.var(-1, keepdims=True) + 1e-5) * sd[p + ".1.weight"] + sd[p + ".1.bias"]
    h = 0.5 * h * (1 + np.vectorize(erf)(h / sqrt(2)))
    return _lin(sd, p + ".3", h)


def _rotate_half(x):
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return np.stack([-x2, x1], -1).reshape(x.shape)


def reference_lighterglue(sd, kpts0, kpts1, desc0, desc1, size0, size1, width=0.95, th=0.1, layers=6):
    """One pair (no batch): pixel keypoints (N, 2), descriptors (N, 64) -> matches0, mscores0."""
    sd = {k.removeprefix("matcher."): v.double().numpy() for k, v in sd.items() if k.startswith("matcher.")}

    def norm(k, s):
        s = np.asarray(s, np.float64)
        return (k - s / 2) / (s.max() / 2)

    def enc(k):
        proj = k @ sd["posenc.Wr.weight"].T
        return np.repeat(np.cos(proj), 2, -1), np.repeat(np.sin(proj), 2, -1)

    def self_block(i, x, e):
        p = f"transformers.{i}.self_attn"
        qkv = _lin(sd, p + ".Wqkv", x).reshape(len(x), -1, 3)   # 1 head: (N, d, 3)
        q, k, v = qkv[..., 0], qkv[..., 1], qkv[..., 2]
        q, k = q * e[0] + _rotate_half(q) * e[1], k * e[0] + _rotate_half(k) * e[1]
        ctx = _softmax(q @ k.T / np.sqrt(q.shape[-1]), -1) @ v
        return x + _ffn(sd, p + ".ffn", np.concatenate([x, _lin(sd, p + ".out_proj", ctx)], -1))

    def cross_block(i, x0, x1):
        p = f"transformers.{i}.cross_attn"
        qk0, qk1 = _lin(sd, p + ".to_qk", x0), _lin(sd, p + ".to_qk", x1)
        v0, v1 = _lin(sd, p + ".to_v", x0), _lin(sd, p + ".to_v", x1)
        sim = (qk0 * qk0.shape[-1] ** -0.25) @ (qk1 * qk1.shape[-1] ** -0.25).T
        m0, m1 = _softmax(sim, 1) @ v1, _softmax(sim.T, 1) @ v0
        m0, m1 = _lin(sd, p + ".to_out", m0), _lin(sd, p + ".to_out", m1)
        return (x0 + _ffn(sd, p + ".ffn", np.concatenate([x0, m0], -1)),
                x1 + _ffn(sd, p + ".ffn", np.concatenate([x1, m1], -1)))

    def matchability(i, x):
        return 1 / (1 + np.exp(-_lin(sd, f"log_assignment.{i}.matchability", x)[:, 0]))

    x0, x1 = _lin(sd, "input_proj", desc0.astype(np.float64)), _lin(sd, "input_proj", desc1.astype(np.float64))
    e0, e1 = enc(norm(kpts0, size0)), enc(norm(kpts1, size1))
    ind0, ind1 = np.arange(len(x0)), np.arange(len(x1))
    for i in range(layers):
        x0, x1 = self_block(i, x0, e0), self_block(i, x1, e1)
        x0, x1 = cross_block(i, x0, x1)
        if i == layers - 1:
            continue
        k0, k1 = matchability(i, x0) > 1 - width, matchability(i, x1) > 1 - width
        x0, e0, ind0 = x0[k0], (e0[0][k0], e0[1][k0]), ind0[k0]
        x1, e1, ind1 = x1[k1], (e1[0][k1], e1[1][k1]), ind1[k1]
    p = f"log_assignment.{layers - 1}"
    md0, md1 = _lin(sd, p + ".final_proj", x0), _lin(sd, p + ".final_proj", x1)
    d = md0.shape[-1]
    sim = (md0 / d ** 0.25) @ (md1 / d ** 0.25).T
    z0, z1 = _lin(sd, p + ".matchability", x0), _lin(sd, p + ".matchability", x1)
    scores = _log_softmax(sim, 1) + _log_softmax(sim, 0) + _logsigmoid(z0) + _logsigmoid(z1).T
    m0, m1 = scores.argmax(1), scores.argmax(0)
    mutual0 = m1[m0] == np.arange(len(m0))
    s0 = np.where(mutual0, np.exp(scores.max(1)), 0)
    valid0 = mutual0 & (s0 > th)
    matches0 = np.full(len(desc0), -1)
    mscores0 = np.zeros(len(desc0))
    matches0[ind0] = np.where(valid0, ind1[m0], -1)
    mscores0[ind0] = np.where(valid0, s0, 0)
    return matches0, mscores0


def _sample_features(n: int = 512) -> tuple[np.ndarray, ...]:
    """XFeat's released detector (zoo ``xfeat``) on the bundled visible/NIR pair: the kind of input
    LighterGlue was trained for, so the reference gives many matches. Returns pixel keypoints,
    descriptors, image sizes (w, h) and the ground-truth homography visible -> NIR."""
    import cv2

    import s2cv
    from s2cv.registration.register import SAMPLES, sample_ground_truth

    vis, nir, _ = SAMPLES["visnir"]
    a, b = cv2.imread(str(vis)), cv2.imread(str(nir))
    det = s2cv.S2Net_create(n, model="xfeat")
    ka, da = det.detectAndCompute(a, None)
    kb, db = det.detectAndCompute(b, None)
    H = sample_ground_truth("visnir")
    return (cv2.KeyPoint_convert(ka), cv2.KeyPoint_convert(kb), da, db, (a.shape[1], a.shape[0]),
            (b.shape[1], b.shape[0]), H.reshape(3, 3))


def _run(net: GlueMatcher, k0, k1, d0, d1, size0, size1):
    s0, s1 = torch.tensor(size0, dtype=torch.float32), torch.tensor(size1, dtype=torch.float32)
    with torch.inference_mode():
        out = net(normalize_keypoints(torch.from_numpy(k0)[None], s0), normalize_keypoints(torch.from_numpy(k1)[None], s1),
                  torch.from_numpy(d0)[None], torch.from_numpy(d1)[None])
    return {k: v[0].numpy() for k, v in out.items()}


@needs_released
def test_converted_lighterglue_reproduces_the_reference_forward():
    state = torch.load(RELEASED, map_location="cpu", weights_only=True)
    net = load_lighterglue(RELEASED)
    k0, k1, d0, d1, size0, size1, H = _sample_features()
    ref_m0, ref_s0 = reference_lighterglue(state, k0, k1, d0, d1, size0, size1)
    out = _run(net, k0, k1, d0, d1, size0, size1)
    assert (ref_m0 >= 0).sum() > 100, "the fixed input should give the reference many matches"
    assert np.array_equal(out["matches0"], ref_m0)
    np.testing.assert_allclose(out["mscores0"], ref_s0, atol=2e-4)
    m0 = out["matches0"]
    assert all(out["matches1"][j] == i for i, j in enumerate(m0) if j >= 0)  # matches1 inverts matches0
    # and the matches are right: most land within a few px of where the ground truth puts them (1024 px wide)
    i = np.flatnonzero(m0 >= 0)
    proj = np.c_[k0[i], np.ones(len(i))] @ H.T
    err = np.linalg.norm(proj[:, :2] / proj[:, 2:] - k1[m0[i]], axis=1)
    assert np.median(err) < 4 and (err < 10).mean() > 0.8, (np.median(err), (err < 10).mean())


@needs_released
def test_identical_features_match_one_to_one_with_high_confidence():
    net = load_lighterglue(RELEASED)
    k0, _, d0, _, size0, _, _ = _sample_features(256)
    out = _run(net, k0, k0, d0, d0, size0, size0)
    matched = out["matches0"] >= 0
    assert matched.mean() > 0.9
    assert np.array_equal(out["matches0"][matched], np.flatnonzero(matched))
    assert np.median(out["mscores0"][matched]) > 0.9


def test_converter_rejects_foreign_state_dicts():
    with pytest.raises(ValueError, match="not a LightGlue state dict"):
        convert_lightglue_state({"matcher.input_proj.weight": torch.zeros(96, 64)})
    good = GlueMatcher().state_dict()
    with pytest.raises(ValueError, match="missing"):
        convert_lightglue_state({k: v for k, v in good.items() if "assign.5" not in k})


def test_pruning_does_not_change_unpruned_results_much_and_training_mode_gives_every_layer():
    torch.manual_seed(0)
    net = GlueMatcher(GlueConfig(input_dim=128, dim=32, n_layers=3, n_heads=2)).train()
    k = torch.rand(1, 50, 2) * 2 - 1
    d = torch.nn.functional.normalize(torch.randn(1, 50, 128), dim=-1)
    out = net(k, k, d, d)
    assert len(out["log_assignments"]) == 3
    la = out["log_assignments"][-1]
    assert la.shape == (1, 51, 51)
    # rows of the assignment are (log) distributions up to the matchability factor: exp sums stay <= 2
    assert torch.isfinite(la).all() and (la.exp()[:, :-1].sum(-1) <= 2.0 + 1e-4).all()
    with pytest.raises(ValueError, match="128"):
        net(k, k, d[..., :64], d[..., :64])


def test_glue_checkpoint_round_trip(tmp_path):
    net = GlueMatcher(GlueConfig(input_dim=128, dim=32, n_layers=2, n_heads=1))
    path = tmp_path / "g.pt"
    with pytest.raises(ValueError, match="det_model"):
        save_glue(path, net, {})
    save_glue(path, net, {"det_model": "default"})
    back, meta = load_glue(path)
    assert meta["det_model"] == "default" and back.config == net.config
    for (ka, va), (kb, vb) in zip(net.state_dict().items(), back.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    (tmp_path / "bad.pt").write_bytes(b"nope")
    with pytest.raises(ValueError, match="cannot read"):
        load_glue(tmp_path / "bad.pt")
