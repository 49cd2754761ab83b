"""clconv.torch: autograd, the drop-in layer, model conversion, training and data-parallel training."""

import copy
import sys

import pytest

torch = pytest.importorskip("torch")

from torch_comparison import assert_matches_torch, record_calls  # noqa: E402

import clconv.torch as cltorch  # noqa: E402
from clconv import cli, params_3d, plan_3d, platforms  # noqa: E402

TORCH_CASES = [
    pytest.param(dict(stride=1, padding=1), id="3x3-p1"),
    pytest.param(dict(stride=2, padding=1), id="3x3-s2-p1"),
    pytest.param(dict(stride=(2, 1), padding=(0, 2), dilation=(1, 2)), id="3x3-s2x1-p0x2-d1x2"),
    pytest.param(dict(padding="same", dilation=2), id="3x3-same-d2"),
    pytest.param(dict(padding=((1, 0), (2, 1))), id="3x3-asympad"),
    pytest.param(dict(padding=1, groups=2), id="3x3-g2"),
    pytest.param(dict(padding=1, groups=4, depthwise=True), id="3x3-depthwise"),
]

TORCH_CASES_1D = [
    pytest.param(dict(padding=1), id="k3-p1"),
    pytest.param(dict(stride=2, padding=(1,)), id="k3-s2-p1"),
    pytest.param(dict(stride=3, dilation=2), id="k3-s3-d2"),
    pytest.param(dict(padding="same", dilation=2), id="k3-same-d2"),
    pytest.param(dict(padding=(0, 2)), id="k3-asympad"),
    pytest.param(dict(padding=1, groups=2), id="k3-g2"),
    pytest.param(dict(padding=1, groups=4, depthwise=True), id="k3-depthwise"),
]

TORCH_CASES_3D = [
    pytest.param(dict(padding=1), id="3x3x3-p1"),
    pytest.param(dict(stride=2, padding=1), id="3x3x3-s2-p1"),
    pytest.param(dict(stride=(2, 1, 1), padding=(0, 1, 2), dilation=(1, 2, 1)), id="3x3x3-s2x1x1-p0x1x2-d1x2x1"),
    pytest.param(dict(padding="same", dilation=2), id="3x3x3-same-d2"),
    pytest.param(dict(padding=((1, 0), (0, 1), (2, 1))), id="3x3x3-asympad"),
    pytest.param(dict(padding=1, groups=2), id="3x3x3-g2"),
    pytest.param(dict(padding=1, groups=4, depthwise=True), id="3x3x3-depthwise"),
]

#: The spatial size of x in the cases of each rank.
SIZES = {1: (11,), 2: (7, 8), 3: (4, 5, 5)}

CONV_CASES = [pytest.param(rank, *case.values, id=case.id)
              for rank, cases in ((2, TORCH_CASES), (1, TORCH_CASES_1D), (3, TORCH_CASES_3D)) for case in cases]


def _layer_inputs(case, dtype, bias=True, size=(7, 8)):
    """x (2, 4, *size), a 3-tap weight along each of its axes, a bias, and the case's arguments for a call."""
    groups = case.get("groups", 1)
    out_channels = 4 if case.get("depthwise") else 6
    generator = torch.Generator().manual_seed(0)
    x = torch.rand((2, 4, *size), dtype=dtype, generator=generator, requires_grad=True)
    w = torch.rand((out_channels, 4 // groups) + (3,) * len(size), dtype=dtype, generator=generator,
                   requires_grad=True)
    b = torch.rand((out_channels,), dtype=dtype, generator=generator, requires_grad=True) if bias else None
    args = {k: v for k, v in case.items() if k != "depthwise"}
    return x, w, b, args


def _torch_reference(x, w, b, args):
    """torch.nn.functional.conv1d, conv2d or conv3d (by x's rank), with an asymmetric padding (a (left, right)
    pair in 1-D, one (before, after) pair per axis in 2-D and 3-D) applied by F.pad first."""
    rank = x.dim() - 2
    function = getattr(torch.nn.functional, f"conv{rank}d")
    padding = args.get("padding", 0)
    rest = {k: v for k, v in args.items() if k != "padding"}
    pairs = (padding,) if rank == 1 and isinstance(padding, tuple) and len(padding) == 2 else padding
    if isinstance(pairs, tuple) and isinstance(pairs[0], tuple):
        # F.pad takes the last axis first.
        return function(torch.nn.functional.pad(x, [p for pair in reversed(pairs) for p in pair]), w, b, **rest)
    return function(x, w, b, padding=padding, **rest)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("rank, case", CONV_CASES)
def test_gradcheck_float64(rank, case, bias, device):
    if not device.fp64:
        pytest.skip(f"{device.summary()} has no fp64")
    x, w, b, args = _layer_inputs(case, torch.float64, bias, SIZES[rank])
    ours = getattr(cltorch, f"conv{rank}d")

    def function(*tensors):
        return ours(*tensors, **args, cl_device=device.index)

    assert torch.autograd.gradcheck(function, (x, w, b) if bias else (x, w), eps=1e-6, atol=1e-7, rtol=1e-6,
                                    fast_mode=True)


@pytest.mark.parametrize("rank, case", CONV_CASES)
def test_matches_torch_float32(rank, case, device):
    """Output and every gradient against torch.nn.functional.conv1d/2d/3d, judged like the kernels.

    The error bound of each element is the same computation on absolute values (clconv.check); both
    results carry rounding error, so they may differ by twice the float32 tolerance.
    """
    x, w, b, args = _layer_inputs(case, torch.float32, size=SIZES[rank])
    ours = getattr(cltorch, f"conv{rank}d")
    assert_matches_torch(lambda *tensors, **a: ours(*tensors, **a, cl_device=device.index),
                         lambda *tensors, **a: _torch_reference(*tensors, a), x, w, b, **args)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_only_requested_gradients_are_computed(rank, device, monkeypatch):
    grad_input, grad_weight, grad_bias = names = [f"conv{rank}d_grad_{name}" for name in ("input", "weight", "bias")]
    calls = record_calls(monkeypatch, names)
    layer = getattr(cltorch, f"Conv{rank}d")(3, 4, 3, padding=1, cl_device=device.index)
    layer.weight.requires_grad_(False)
    x = torch.rand((2, 3) + (6, 6, 4)[:rank], requires_grad=True)
    layer(x).sum().backward()
    assert sorted(calls) == sorted([grad_input, grad_bias])
    assert layer.memory["saved_for_backward_bytes"] == layer.weight.nelement() * 4  # the weight, not x
    calls.clear()
    layer.weight.requires_grad_(True)
    layer(x.detach()).sum().backward()
    assert sorted(calls) == sorted([grad_weight, grad_bias])
    assert layer.memory["saved_for_backward_bytes"] == x.nelement() * 4  # x, not the weight


def test_bad_layers_and_tensors_are_refused(device):
    with pytest.raises(ValueError, match="padding_mode must be 'zeros'"):
        cltorch.Conv2d(3, 4, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="matches no OpenCL device"):
        cltorch.Conv2d(3, 4, 3, cl_device="no-such-device")
    layer = cltorch.Conv2d(3, 4, 3, cl_device=device.index)
    with pytest.raises(TypeError, match="input must be float16, float32 or float64"):
        layer.to(torch.bfloat16)(torch.rand(1, 3, 5, 5, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="input is a meta tensor"):
        cltorch.conv2d(torch.empty(1, 3, 5, 5, device="meta"), torch.empty(4, 3, 3, 3, device="meta"))
    with pytest.raises(ValueError, match="device must be a CPU device"):
        cltorch.Conv2d(3, 4, 3, device="cuda")


def test_convert_keeps_outputs_and_parameters(device):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, groups=2, bias=False)),
                                torch.nn.Flatten(), torch.nn.LazyLinear(3))
    x = torch.rand(2, 1, 8, 8)
    expected = model(x)
    weights = [p.data_ptr() for p in model.parameters()]
    converted = cltorch.convert(model, device.index)
    assert converted is model
    assert isinstance(model[0], cltorch.Conv2d) and isinstance(model[2][0], cltorch.Conv2d)
    assert [p.data_ptr() for p in model.parameters()] == weights  # the very same parameters
    assert torch.allclose(model(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rank, kernel, x_shape", [(1, 5, (3, 4, 23)), (2, (3, 5), (2, 4, 9, 10)),
                                                    (3, (3, 2, 3), (2, 4, 5, 4, 5))], ids=["1d", "2d", "3d"])
def test_layer_is_a_drop_in(rank, kernel, x_shape, device):
    plain_class = getattr(torch.nn, f"Conv{rank}d")
    torch.manual_seed(5)
    plain = plain_class(4, 6, kernel, stride=2, padding=2, dilation=1, groups=2, bias=True)
    torch.manual_seed(5)
    ours = getattr(cltorch, f"Conv{rank}d")(4, 6, kernel, stride=2, padding=2, dilation=1, groups=2, bias=True,
                                            cl_device=device.index)
    assert isinstance(ours, plain_class)
    assert [n for n, _ in ours.named_parameters()] == ["weight", "bias"]
    for a, b in zip(plain.parameters(), ours.parameters()):
        assert torch.equal(a, b)  # same initialisation from the same seed
    state = {name: value + 1 for name, value in plain.state_dict().items()}
    ours.load_state_dict(state)
    assert ours.state_dict().keys() == state.keys()
    assert all(torch.equal(ours.state_dict()[name], state[name]) for name in state)
    plain.load_state_dict(ours.state_dict())
    x = torch.rand(x_shape)
    assert torch.allclose(ours(x), plain(x), rtol=1e-5, atol=1e-5)


def test_convert_swaps_conv1d_and_conv2d(device):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv1d(2, 4, 3, padding="same"), torch.nn.ReLU(),
                                torch.nn.Sequential(torch.nn.Conv1d(4, 4, 3, stride=2, groups=4, bias=False)),
                                torch.nn.Unflatten(1, (1, 4)), torch.nn.Conv2d(1, 2, 3, padding=1),
                                torch.nn.Flatten(), torch.nn.LazyLinear(3))
    x = torch.rand(2, 2, 16)
    expected = model(x)
    weights = [p.data_ptr() for p in model.parameters()]
    cltorch.convert(model, device.index)
    assert isinstance(model[0], cltorch.Conv1d) and isinstance(model[2][0], cltorch.Conv1d)
    assert isinstance(model[4], cltorch.Conv2d)
    assert [p.data_ptr() for p in model.parameters()] == weights
    assert torch.allclose(model(x), expected, rtol=1e-5, atol=1e-5)
    model(x).sum().backward()
    assert [row["layer"] for row in cltorch.memory_report(model)] == ["0", "2.0", "4"]


# -- 3-D and every rank -----------------------------------------------------------------------------------

#: One layer of each kind: torch's class, its clconv drop-in, the constructor's arguments, x's shape.
LAYERS_3D = [
    pytest.param(torch.nn.Conv3d, cltorch.Conv3d, dict(in_channels=4, out_channels=6, kernel_size=(3, 2, 3),
                                                       stride=(1, 2, 1), padding=(1, 0, 2), dilation=(2, 1, 1),
                                                       groups=2), (2, 4, 5, 4, 3), id="conv3d"),
    pytest.param(torch.nn.ConvTranspose3d, cltorch.ConvTranspose3d,
                 dict(in_channels=4, out_channels=2, kernel_size=(2, 3, 3), stride=(2, 1, 2), padding=(0, 1, 1),
                      output_padding=(1, 0, 1), groups=2, dilation=(1, 2, 1)), (2, 4, 3, 4, 3), id="transpose3d"),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("plain_class, ours_class, args, x_shape", LAYERS_3D)
def test_3d_layers_match_torch(plain_class, ours_class, args, x_shape, dtype, device):
    """A layer with the weights of torch's: output and the gradients of x, weight and bias, judged like the kernels
    (see test_matches_torch_float32)."""
    if dtype == torch.float64 and not device.fp64:
        pytest.skip(f"{device.summary()} has no fp64")
    torch.manual_seed(2)
    plain = plain_class(**args, dtype=dtype)
    ours = ours_class(**args, dtype=dtype, cl_device=device.index)
    ours.load_state_dict(plain.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), plain.parameters()))
    x = torch.rand(x_shape, dtype=dtype, requires_grad=True)

    def call(layer):
        return lambda x, w, b: torch.func.functional_call(layer, {"weight": w, "bias": b}, (x,))

    assert_matches_torch(call(ours), call(plain), x, ours.weight, ours.bias)


def test_conv3d_memory_report_counts_the_unfolded_input(device):
    """A 3-D layer's device bytes come from the 3-D plan: the 2-D plan's workspace, plus the input unfolded along
    depth (T times x at stride 1 and depth padding T // 2) and the swapped output."""
    layer = cltorch.Conv3d(2, 3, 3, padding=1, cl_device=device.index)
    x = torch.rand(2, 2, 4, 5, 5, requires_grad=True)
    y = layer(x)
    layer_params = params_3d.forward_params(x.detach().numpy(), layer.weight.detach().numpy(),
                                            layer.bias.detach().numpy(), 1, 1, 1, 1)
    plan = plan_3d.plan_for_3d(layer_params, platforms.resolve(device.index))
    device_bytes = layer.memory["device_bytes"]
    assert device_bytes == {name: layer_params.bytes_moved(name) + plan.workspace_bytes[name]
                            for name in device_bytes}
    unfolded_and_swapped = 3 * x.nelement() * 4 + y.nelement() * 4
    assert device_bytes["forward"] >= layer_params.bytes_moved("forward") + unfolded_and_swapped
    saved = (x.nelement() + layer.weight.nelement()) * 4  # both need a gradient
    assert cltorch.memory_report(torch.nn.Sequential(layer)) == [
        {"layer": "0", "saved_for_backward_bytes": saved,
         **{f"{name}_device_bytes": n for name, n in device_bytes.items()}}]


#: Every clconv layer, its rank, and the message refusing a padding_mode other than "zeros": clconv's own, or
#: torch's, which the transposed layers keep.
ALL_LAYERS = [pytest.param(ours, rank, message, id=ours.__name__)
              for rank in (1, 2, 3)
              for ours, message in ((getattr(cltorch, f"Conv{rank}d"), "padding_mode must be 'zeros'"),
                                    (getattr(cltorch, f"ConvTranspose{rank}d"),
                                     'Only "zeros" padding mode is supported'))]


@pytest.mark.parametrize("layer_class, rank, padding_message", ALL_LAYERS)
def test_what_clconv_does_not_run_is_refused_alike(layer_class, rank, padding_message, device):
    """What PyTorch's layers accept and clconv does not is refused with the same errors at every rank."""
    with pytest.raises(ValueError, match=padding_message):
        layer_class(2, 2, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="device must be a CPU device"):
        layer_class(2, 2, 3, device="cuda")
    layer = layer_class(2, 2, 3, cl_device=device.index)
    with pytest.raises(ValueError, match=f"must be a {rank + 2}-D"):  # unbatched: torch's layers take it
        layer(torch.rand((2,) + (5,) * rank))
    with pytest.raises(TypeError, match="input must be float16, float32 or float64"):
        layer.to(torch.bfloat16)(torch.rand((1, 2) + (5,) * rank, dtype=torch.bfloat16))


class AllConvolutions(torch.nn.Module):
    """One torch layer of each of the six kinds, each rank's output reshaped into the next rank's input."""

    def __init__(self):
        super().__init__()
        self.conv3d = torch.nn.Conv3d(2, 3, 3, padding=1)
        self.up3d = torch.nn.ConvTranspose3d(3, 2, 2, stride=2, groups=1, bias=False)
        self.conv2d = torch.nn.Conv2d(8, 4, 3, stride=2, padding=1, groups=2)
        self.up2d = torch.nn.ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
        self.conv1d = torch.nn.Conv1d(8, 4, 3, padding="same", dilation=2)
        self.up1d = torch.nn.ConvTranspose1d(4, 2, 3, stride=2, padding=1)

    def forward(self, x):
        y = self.up3d(torch.relu(self.conv3d(x)))  # (N, 2, 4, 4, 4)
        y = self.up2d(torch.relu(self.conv2d(y.flatten(1, 2))))  # (N, 2, 4, 4)
        return self.up1d(torch.relu(self.conv1d(y.flatten(1, 2))))  # (N, 2, 7)


def test_convert_swaps_all_six_layer_types(device):
    torch.manual_seed(0)
    plain = AllConvolutions()
    ours = cltorch.convert(copy.deepcopy(plain), device.index)
    for name, module in plain.named_children():
        assert type(getattr(ours, name)) is cltorch._REPLACEMENTS[type(module)], name
    x = torch.rand(2, 2, 2, 2, 2)
    outputs, grads = [], []
    for model in (plain, ours):
        inputs = [x.clone().requires_grad_(), *model.parameters()]
        y = model(inputs[0])
        outputs.append(y)
        grads.append(torch.autograd.grad(y, inputs, torch.linspace(-1, 1, y.nelement()).reshape(y.shape)))
    assert torch.allclose(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
    for name, ours_grad, plain_grad in zip(["x", *dict(plain.named_parameters())], grads[1], grads[0]):
        assert torch.allclose(ours_grad, plain_grad, rtol=1e-4, atol=1e-5), name
    assert [row["layer"] for row in cltorch.memory_report(ours)] == ["conv3d", "conv2d", "conv1d"]


def test_training_steps_match_plain_torch(device):
    pytest.importorskip("sklearn")
    train_digits = cli.load_example("train_digits")

    data = train_digits.load_data(0)
    plain = train_digits.make_model(0)
    ours = cltorch.convert(copy.deepcopy(plain), device.index)
    histories = []
    shortened = (data[0][:320], data[1][:320], data[2][:64], data[3][:64])
    for model, label in ((plain, "torch"), (ours, "clconv")):
        histories.append(train_digits.train(model, shortened, epochs=3, batch_size=32, lr=0.1, seed=0,
                                            label=label, progress=False))
    torch_history, clconv_history = histories
    initial_loss = train_digits.evaluate(train_digits.make_model(0), *shortened[:2])[0]
    assert clconv_history.train_loss[-1] < 0.7 * initial_loss, (initial_loss, clconv_history.train_loss)
    assert abs(clconv_history.train_loss[-1] - torch_history.train_loss[-1]) < 1e-3
    assert train_digits.first_step_difference(data, 32, 0.05, 0, device.index) < 1e-5


def test_data_parallel_matches_single_process():
    """Two DDP processes (gloo, loopback), each on its own OpenCL device where there are two, end with the
    weights of one process on the concatenated batches."""
    pytest.importorskip("sklearn")
    from clconv import platforms

    train_digits = cli.load_example("train_digits")
    devices = ",".join(info.index for info in platforms.devices()[:2])
    options = {"seed": 0, "steps": 3, "batch_size": 16, "lr": 0.1, "devices": devices}
    distributed = train_digits.distributed_run(2, options)["state"]
    single = train_digits.single_process_steps(options, 2)
    assert distributed.keys() == single.keys()
    for name in single:
        assert torch.allclose(distributed[name], single[name], rtol=1e-4, atol=1e-5), name
    initial = train_digits.make_model(0).state_dict()
    assert any(not torch.allclose(initial[n], single[n]) for n in single)  # training did move the weights


def test_train_demo_command(tmp_path, capsys):
    """clconv train-demo: both runs, the side-by-side report, the plot, and >= 95% test accuracy."""
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    plot = tmp_path / "digits.png"
    assert cli.main(["train-demo", "--epochs", "4", "--no-progress", "--out", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "final test accuracy" in out and "largest weight difference after the first step" in out
    assert "kept for backward" in out
    assert plot.stat().st_size > 0


def test_train_demo_plot_that_cannot_be_drawn_is_an_error(tmp_path, capsys, monkeypatch):
    """--out without matplotlib, or with data-parallel training, stops before any training and says why."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    plot = tmp_path / "digits.png"
    for arguments, reason in ((["--out", str(plot)], "--out cannot be drawn: matplotlib is not installed "
                                                      "(pip install 'clconv[examples]')"),
                              (["--world-size", "2", "--out", str(plot)], "--out: data-parallel runs")):
        with pytest.raises(SystemExit) as stopped:
            cli.main(["train-demo", *arguments])
        assert stopped.value.code == 2
        captured = capsys.readouterr()
        assert reason in captured.err and "clconv device" not in captured.out
    assert not plot.exists()


def test_train_demo_without_scikit_learn_says_what_to_install(monkeypatch, capsys):
    for module in ("sklearn", "sklearn.datasets", "sklearn.model_selection"):
        monkeypatch.setitem(sys.modules, module, None)  # importing it raises ImportError
    monkeypatch.delitem(sys.modules, "train_digits", raising=False)
    assert cli.main(["train-demo", "--epochs", "1"]) != 0
    assert "train-demo needs PyTorch and scikit-learn" in capsys.readouterr().err


def test_train_demo_data_parallel(capsys):
    pytest.importorskip("sklearn")
    assert cli.load_example("train_digits").main(["--world-size", "2", "--epochs", "4", "--no-progress"]) == 0
    assert "DDP with 2 processes" in capsys.readouterr().out
