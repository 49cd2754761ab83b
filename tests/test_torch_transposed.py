"""clconv.torch's transposed layers: autograd, drop-ins for torch.nn.ConvTranspose1d/2d/3d, convert, and training."""

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch_comparison import assert_matches_torch, record_calls  # noqa: E402

import clconv.torch as cltorch  # noqa: E402

F = torch.nn.functional

# (x shape, weight shape, arguments): 2-D, 1-D and 3-D, output_padding at stride > 1 and with dilation at stride 1.
TORCH_CASES = [
    pytest.param((2, 4, 5, 6), (4, 3, 3, 3), dict(stride=2, padding=1, output_padding=1), id="3x3-s2-p1-op1"),
    pytest.param((2, 3, 4, 5), (3, 2, 3, 3), dict(dilation=2, output_padding=1), id="3x3-d2-op1"),
    pytest.param((2, 4, 4, 5), (4, 3, 3, 2), dict(stride=(3, 2), padding=(2, 0), output_padding=(2, 1), groups=2),
                 id="3x2-s3x2-p2x0-op2x1-g2"),
    pytest.param((2, 4, 7), (4, 3, 3), dict(stride=2, padding=1, output_padding=1), id="1d-k3-s2-p1-op1"),
    pytest.param((2, 4, 6), (4, 1, 5), dict(dilation=2, output_padding=1, groups=2), id="1d-k5-d2-op1-g2"),
    pytest.param((2, 4, 3, 4, 3), (4, 3, 3, 3, 3), dict(stride=2, padding=1, output_padding=1), id="3d-k3-s2-p1-op1"),
    pytest.param((2, 2, 3, 3, 3), (2, 3, 2, 2, 2), dict(dilation=2, output_padding=1), id="3d-k2-d2-op1"),
    pytest.param((2, 4, 3, 3, 4), (4, 1, 2, 3, 2), dict(stride=(2, 1, 2), padding=(0, 1, 1), output_padding=(1, 0, 0),
                                                        groups=2, dilation=(1, 2, 1)),
                 id="3d-2x3x2-s2x1x2-p0x1x1-op1x0x0-g2-d1x2x1"),
]


def _inputs(x_shape, w_shape, args, dtype, bias=True):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(x_shape, dtype=dtype, generator=generator, requires_grad=True)
    w = torch.rand(w_shape, dtype=dtype, generator=generator, requires_grad=True)
    out_channels = w_shape[1] * args.get("groups", 1)
    b = torch.rand((out_channels,), dtype=dtype, generator=generator, requires_grad=True) if bias else None
    return x, w, b


def _functions(x_shape):
    name = f"conv_transpose{len(x_shape) - 2}d"
    return getattr(cltorch, name), getattr(F, name)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("x_shape, w_shape, args", TORCH_CASES)
def test_gradcheck_float64(x_shape, w_shape, args, bias, device):
    if not device.fp64:
        pytest.skip(f"{device.summary()} has no fp64")
    x, w, b = _inputs(x_shape, w_shape, args, torch.float64, bias)
    ours = _functions(x_shape)[0]

    def function(*tensors):
        return ours(*tensors, **args, cl_device=device.index)

    assert torch.autograd.gradcheck(function, (x, w, b) if bias else (x, w), eps=1e-6, atol=1e-7, rtol=1e-6,
                                    fast_mode=True)


@pytest.mark.parametrize("x_shape, w_shape, args", TORCH_CASES)
def test_matches_torch_float32(x_shape, w_shape, args, device):
    """Output and every gradient against torch.nn.functional, each element judged against the same computation
    on absolute values (clconv.check); both carry rounding error, hence twice the float32 tolerance."""
    ours_function, torch_function = _functions(x_shape)
    x, w, b = _inputs(x_shape, w_shape, args, torch.float32)
    assert_matches_torch(lambda *tensors, **a: ours_function(*tensors, **a, cl_device=device.index), torch_function,
                         x, w, b, **args)


@pytest.mark.parametrize("dims", [2, 3])
def test_only_requested_gradients_are_computed(dims, device, monkeypatch):
    grad_input, grad_weight, grad_bias = names = [f"conv_transpose{dims}d_grad_{name}"
                                                  for name in ("input", "weight", "bias")]
    calls = record_calls(monkeypatch, names)
    layer = getattr(cltorch, f"ConvTranspose{dims}d")(3, 4, 3, stride=2, cl_device=device.index)
    layer.weight.requires_grad_(False)
    x = torch.rand((2, 3) + (5, 5, 3)[:dims], requires_grad=True)
    layer(x).sum().backward()
    assert sorted(calls) == sorted([grad_input, grad_bias])
    calls.clear()
    layer.weight.requires_grad_(True)
    layer.bias.requires_grad_(False)
    layer(x.detach()).sum().backward()
    assert calls == [grad_weight]


# Per rank: x's shape, an output_size some output_padding gives (stride 2: twice the size less 1, or that plus 1).
DROP_IN_SHAPES = {1: ((2, 4, 5), [9]), 2: ((2, 4, 5, 6), [9, 12]), 3: ((2, 4, 3, 4, 3), [5, 8, 6])}


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_layer_is_a_drop_in(dims, device):
    plain_class = getattr(torch.nn, f"ConvTranspose{dims}d")
    ours_class = getattr(cltorch, f"ConvTranspose{dims}d")
    args = dict(stride=2, padding=1, output_padding=1, groups=2, bias=True, dilation=1)
    torch.manual_seed(3)
    plain = plain_class(4, 6, 3, **args)
    torch.manual_seed(3)
    ours = ours_class(4, 6, 3, **args, cl_device=device.index)
    assert [n for n, _ in ours.named_parameters()] == ["weight", "bias"]
    for a, b in zip(plain.parameters(), ours.parameters()):
        assert torch.equal(a, b)  # same initialisation from the same seed
    ours.load_state_dict(plain.state_dict())
    assert ours.state_dict().keys() == plain.state_dict().keys()
    x_shape, size = DROP_IN_SHAPES[dims]
    x = torch.rand(x_shape)
    assert torch.allclose(ours(x), plain(x), rtol=1e-5, atol=1e-5)
    # output_size picks the output_padding, as PyTorch's layers do, and refuses sizes no output_padding gives.
    assert ours(x, output_size=size).shape == plain(x, output_size=size).shape
    assert torch.allclose(ours(x, output_size=size), plain(x, output_size=size), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="requested an output size of"):
        ours(x, output_size=[s + 5 for s in size])


def test_bad_layers_and_tensors_are_refused(device):
    with pytest.raises(ValueError, match='Only "zeros" padding mode is supported'):
        cltorch.ConvTranspose2d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="device must be a CPU device"):
        cltorch.ConvTranspose1d(3, 4, 3, device="cuda")
    with pytest.raises(ValueError, match="matches no OpenCL device"):
        cltorch.ConvTranspose2d(3, 4, 3, cl_device="no-such-device")
    with pytest.raises(ValueError, match="output_padding must be smaller than stride or dilation"):
        cltorch.ConvTranspose2d(3, 4, 3, output_padding=1, cl_device=device.index)(torch.rand(1, 3, 5, 5))
    with pytest.raises(ValueError, match="input must be a 3-D tensor"):
        cltorch.conv_transpose1d(torch.rand(3, 5), torch.rand(3, 4, 3))
    with pytest.raises(TypeError, match="input must be float16, float32 or float64"):
        cltorch.conv_transpose2d(torch.rand(1, 3, 5, 5).to(torch.bfloat16), torch.rand(3, 4, 3, 3))


def test_convert_swaps_transposed_layers(device):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.ConvTranspose2d(2, 4, 3, stride=2, padding=1, output_padding=1),
                                torch.nn.ReLU(), torch.nn.Flatten(2),
                                torch.nn.Sequential(torch.nn.ConvTranspose1d(4, 3, 3, dilation=2, bias=False)))
    x = torch.rand(2, 2, 4, 4)
    expected = model(x)
    weights = [p.data_ptr() for p in model.parameters()]
    assert cltorch.convert(model, device.index) is model
    assert isinstance(model[0], cltorch.ConvTranspose2d) and isinstance(model[3][0], cltorch.ConvTranspose1d)
    assert model[3][0].bias is None
    assert [p.data_ptr() for p in model.parameters()] == weights  # the very same parameters
    assert torch.allclose(model(x), expected, rtol=1e-5, atol=1e-5)


class TinyUNet(torch.nn.Module):
    """Two encoder convolutions (the second strided), a transposed-convolution decoder and a skip connection, in
    ``dims`` spatial dimensions."""

    def __init__(self, dims: int):
        super().__init__()
        conv, conv_transpose = getattr(torch.nn, f"Conv{dims}d"), getattr(torch.nn, f"ConvTranspose{dims}d")
        self.encode1 = conv(1, 4, 3, padding=1)
        self.encode2 = conv(4, 8, 3, stride=2, padding=1)
        self.decode = conv_transpose(8, 4, 3, stride=2, padding=1, output_padding=1)
        self.head = conv(8, 1, 1)

    def forward(self, x):
        skip = torch.relu(self.encode1(x))
        up = torch.relu(self.decode(torch.relu(self.encode2(skip))))
        return self.head(torch.cat([skip, up], dim=1))


@pytest.mark.parametrize("dims, image_shape", [(2, (4, 1, 8, 8)), (3, (2, 1, 4, 4, 4))], ids=["2d", "3d"])
def test_unet_trains_like_plain_torch(dims, image_shape, device):
    torch.manual_seed(0)
    plain = TinyUNet(dims)
    ours = cltorch.convert(copy.deepcopy(plain), device.index)
    assert isinstance(ours.decode, getattr(cltorch, f"ConvTranspose{dims}d"))
    assert isinstance(ours.encode1, getattr(cltorch, f"Conv{dims}d"))
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(image_shape, generator=generator)
    targets = torch.rand(image_shape, generator=generator)
    losses = {}
    for label, model in (("torch", plain), ("clconv", ours)):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        losses[label] = []
        for _ in range(3):
            optimizer.zero_grad()
            loss = F.mse_loss(model(images), targets)
            loss.backward()
            optimizer.step()
            losses[label].append(loss.item())
    assert losses["clconv"][-1] < losses["clconv"][0]
    np.testing.assert_allclose(losses["clconv"], losses["torch"], rtol=1e-5)
