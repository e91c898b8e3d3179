"""The PyTorch model: shapes, variants, DTB's beta, recurrence, parameter counts (paper Sections 4-6)."""

import pytest

torch = pytest.importorskip("torch")

from export.model import STRCNN, VARIANTS  # noqa: E402


def params(model) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("size", [(6, 10), (18, 34), (30, 14)])
def test_output_and_state_shapes(variant, size):
    model = STRCNN(variant, m=1, width=16)
    h, w = size
    f, hs = model.init_state(2, h, w)
    sharp, f2, h2 = model(torch.rand(2, 9, h, w), f, hs)
    assert sharp.shape == (2, 3, h, w)
    assert f2.shape == (2, 8, h // 2, w // 2) and h2.shape == (2, 16, h // 2, w // 2)


def test_temporal_radius_sets_input_channels():
    model = STRCNN("dtb", m=2, width=8)
    state = model.init_state(1, 8, 8)
    assert model(torch.rand(1, 15, 8, 8), *state)[0].shape == (1, 3, 8, 8)
    with pytest.raises(RuntimeError):
        model(torch.rand(1, 9, 8, 8), *state)


def test_odd_size_is_refused():
    with pytest.raises(ValueError, match="even"):
        STRCNN().init_state(1, 7, 8)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="variant"):
        STRCNN("lstm")
    with pytest.raises(ValueError, match="width"):
        STRCNN(width=7)


def test_beta_in_unit_interval_and_receives_gradient():
    torch.manual_seed(0)
    model = STRCNN("dtb", width=8)
    assert 0.0 <= model.dtb.beta.item() <= 1.0
    clip = torch.rand(1, 5, 3, 12, 16)
    out, _ = model.run(clip)
    out.square().mean().backward()
    grad = model.dtb.beta_logit.grad
    assert grad is not None and grad.abs().item() > 0


def test_dtb_conv_has_no_bias_and_same_padding():
    dtb = STRCNN("dtb", width=8).dtb
    assert dtb.conv.bias is None and dtb.conv.padding == (2, 2) and dtb.conv.kernel_size == (5, 5)


@pytest.mark.parametrize("variant,carries", [("cnn", False), ("strcnn", True), ("dtb", True)])
def test_state_carries_information(variant, carries):
    """Changing frame 1 changes output 3 (whose window is frames 3-5) only through the recurrent state."""
    torch.manual_seed(0)
    model = STRCNN(variant, m=1, width=8).eval()
    clip = torch.rand(1, 7, 3, 12, 16)
    changed = clip.clone()
    changed[:, 1] = torch.rand(3, 12, 16)
    with torch.no_grad():
        a, _ = model.run(clip)
        b, _ = model.run(changed)
    # output index i restores frame i+1 from frames i..i+2; output 3 sees frames 3, 4, 5 only
    difference = (a[:, 3] - b[:, 3]).abs().max().item()
    assert (difference > 1e-6) == carries, difference


def test_parameter_counts_match_the_paper():
    counts = {v: params(STRCNN(v)) for v in VARIANTS}
    dtb_conv = 2 * 64 * 64 * 5 * 5  # one bias-free 5x5 conv, 128 -> 64 channels (about 205k, Section 6.1)
    assert counts["cnn"] == counts["strcnn"]
    assert counts["dtb"] - counts["strcnn"] == dtb_conv + 1  # plus the scalar beta
    assert 0.90e6 < counts["dtb"] < 0.92e6  # about 0.91 M


def test_residual_output_adds_centre_frame():
    torch.manual_seed(0)
    plain = STRCNN("cnn", width=8, residual=False).eval()
    residual = STRCNN("cnn", width=8, residual=True).eval()
    residual.load_state_dict(plain.state_dict())
    frames = torch.rand(1, 9, 8, 8)
    state = plain.init_state(1, 8, 8)
    with torch.no_grad():
        diff = residual(frames, *state)[0] - plain(frames, *state)[0]
    torch.testing.assert_close(diff, frames[:, 3:6])
