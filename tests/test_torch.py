"""clconv.torch: autograd, the drop-in layer, model conversion, training and data-parallel training."""

import copy
import sys

import pytest

torch = pytest.importorskip("torch")

from torch_comparison import assert_matches_torch, record_calls  # noqa: E402

import clconv.torch as cltorch  # noqa: E402
from clconv import cli  # noqa: E402

TORCH_CASES = [
    pytest.param(dict(stride=1, padding=1), id="3x3-p1"),
    pytest.param(dict(stride=2, padding=1), id="3x3-s2-p1"),
    pytest.param(dict(stride=(2, 1), padding=(0, 2), dilation=(1, 2)), id="3x3-s2x1-p0x2-d1x2"),
    pytest.param(dict(padding="same", dilation=2), id="3x3-same-d2"),
    pytest.param(dict(padding=((1, 0), (2, 1))), id="3x3-asympad"),
    pytest.param(dict(padding=1, groups=2), id="3x3-g2"),
    pytest.param(dict(padding=1, groups=4, depthwise=True), id="3x3-depthwise"),
]


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
    """torch.nn.functional.conv2d, with asymmetric padding applied by F.pad first."""
    padding = args.get("padding", 0)
    rest = {k: v for k, v in args.items() if k != "padding"}
    if isinstance(padding, tuple) and isinstance(padding[0], tuple):
        (top, bottom), (left, right) = padding
        return torch.nn.functional.conv2d(torch.nn.functional.pad(x, (left, right, top, bottom)), w, b, **rest)
    return torch.nn.functional.conv2d(x, w, b, padding=padding, **rest)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("case", TORCH_CASES)
def test_gradcheck_float64(case, bias, device):
    if not device.fp64:
        pytest.skip(f"{device.summary()} has no fp64")
    x, w, b, args = _layer_inputs(case, torch.float64, bias)
    inputs = (x, w, b) if bias else (x, w)

    def function(*tensors):
        return cltorch.conv2d(*tensors, **args, cl_device=device.index)

    assert torch.autograd.gradcheck(function, inputs, eps=1e-6, atol=1e-7, rtol=1e-6, fast_mode=True)


@pytest.mark.parametrize("case", TORCH_CASES)
def test_matches_torch_float32(case, device):
    """Output and every gradient against torch.nn.functional.conv2d, judged like the kernels.

    The error bound of each element is the same computation on absolute values (clconv.check); both
    results carry rounding error, so they may differ by twice the float32 tolerance.
    """
    x, w, b, args = _layer_inputs(case, torch.float32)
    assert_matches_torch(lambda *tensors, **a: cltorch.conv2d(*tensors, **a, cl_device=device.index),
                         lambda *tensors, **a: _torch_reference(*tensors, a), x, w, b, **args)


def test_only_requested_gradients_are_computed(device, monkeypatch):
    calls = record_calls(monkeypatch, ("conv2d_grad_input", "conv2d_grad_weight", "conv2d_grad_bias"))
    layer = cltorch.Conv2d(3, 4, 3, padding=1, cl_device=device.index)
    layer.weight.requires_grad_(False)
    x = torch.rand(2, 3, 6, 6, requires_grad=True)
    layer(x).sum().backward()
    assert sorted(calls) == ["conv2d_grad_bias", "conv2d_grad_input"]
    assert layer.memory["saved_for_backward_bytes"] == layer.weight.nelement() * 4  # the weight, not x
    calls.clear()
    layer.weight.requires_grad_(True)
    layer(x.detach()).sum().backward()
    assert sorted(calls) == ["conv2d_grad_bias", "conv2d_grad_weight"]
    assert layer.memory["saved_for_backward_bytes"] == x.nelement() * 4  # x, not the weight


def test_conv2d_layer_is_a_drop_in(device):
    torch.manual_seed(3)
    plain = torch.nn.Conv2d(3, 8, (3, 5), stride=(1, 2), padding=(1, 2), dilation=1, groups=1, bias=True)
    torch.manual_seed(3)
    ours = cltorch.Conv2d(3, 8, (3, 5), stride=(1, 2), padding=(1, 2), dilation=1, groups=1, bias=True,
                          cl_device=device.index)
    assert [n for n, _ in ours.named_parameters()] == ["weight", "bias"]
    for a, b in zip(plain.parameters(), ours.parameters()):
        assert torch.equal(a, b)  # same initialisation from the same seed
    ours.load_state_dict(plain.state_dict())
    x = torch.rand(2, 3, 9, 10)
    assert torch.allclose(ours(x), plain(x), rtol=1e-5, atol=1e-5)


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


# -- 1-D ------------------------------------------------------------------------------------------------

TORCH_CASES_1D = [
    pytest.param(dict(padding=1), id="k3-p1"),
    pytest.param(dict(stride=2, padding=(1,)), id="k3-s2-p1"),
    pytest.param(dict(stride=3, dilation=2), id="k3-s3-d2"),
    pytest.param(dict(padding="same", dilation=2), id="k3-same-d2"),
    pytest.param(dict(padding=(0, 2)), id="k3-asympad"),
    pytest.param(dict(padding=1, groups=2), id="k3-g2"),
    pytest.param(dict(padding=1, groups=4, depthwise=True), id="k3-depthwise"),
]


def _torch_reference_1d(x, w, b, args):
    """torch.nn.functional.conv1d, with an asymmetric (left, right) padding applied by F.pad first."""
    padding = args.get("padding", 0)
    rest = {k: v for k, v in args.items() if k != "padding"}
    if isinstance(padding, tuple) and len(padding) == 2:
        return torch.nn.functional.conv1d(torch.nn.functional.pad(x, padding), w, b, **rest)
    return torch.nn.functional.conv1d(x, w, b, padding=padding, **rest)


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("case", TORCH_CASES_1D)
def test_conv1d_gradcheck_float64(case, bias, device):
    if not device.fp64:
        pytest.skip(f"{device.summary()} has no fp64")
    x, w, b, args = _layer_inputs(case, torch.float64, bias, size=(11,))

    def function(*tensors):
        return cltorch.conv1d(*tensors, **args, cl_device=device.index)

    assert torch.autograd.gradcheck(function, (x, w, b) if bias else (x, w), eps=1e-6, atol=1e-7, rtol=1e-6,
                                    fast_mode=True)


@pytest.mark.parametrize("case", TORCH_CASES_1D)
def test_conv1d_matches_torch_float32(case, device):
    """Output and every gradient against torch.nn.functional.conv1d, judged like the kernels (see the 2-D test)."""
    x, w, b, args = _layer_inputs(case, torch.float32, size=(11,))
    assert_matches_torch(lambda *tensors, **a: cltorch.conv1d(*tensors, **a, cl_device=device.index),
                         lambda *tensors, **a: _torch_reference_1d(*tensors, a), x, w, b, **args)


def test_conv1d_only_requested_gradients_are_computed(device, monkeypatch):
    calls = record_calls(monkeypatch, ("conv1d_grad_input", "conv1d_grad_weight", "conv1d_grad_bias"))
    layer = cltorch.Conv1d(3, 4, 3, padding=1, cl_device=device.index)
    layer.weight.requires_grad_(False)
    x = torch.rand(2, 3, 9, requires_grad=True)
    layer(x).sum().backward()
    assert sorted(calls) == ["conv1d_grad_bias", "conv1d_grad_input"]
    assert layer.memory["saved_for_backward_bytes"] == layer.weight.nelement() * 4
    calls.clear()
    layer.weight.requires_grad_(True)
    layer(x.detach()).sum().backward()
    assert sorted(calls) == ["conv1d_grad_bias", "conv1d_grad_weight"]
    assert layer.memory["saved_for_backward_bytes"] == x.nelement() * 4


def test_conv1d_layer_is_a_drop_in(device):
    torch.manual_seed(5)
    plain = torch.nn.Conv1d(4, 6, 5, stride=2, padding=2, dilation=1, groups=2, bias=True)
    torch.manual_seed(5)
    ours = cltorch.Conv1d(4, 6, 5, stride=2, padding=2, dilation=1, groups=2, bias=True, cl_device=device.index)
    assert isinstance(ours, torch.nn.Conv1d)
    assert [n for n, _ in ours.named_parameters()] == ["weight", "bias"]
    for a, b in zip(plain.parameters(), ours.parameters()):
        assert torch.equal(a, b)  # same initialisation from the same seed
    state = {name: value + 1 for name, value in plain.state_dict().items()}
    ours.load_state_dict(state)
    assert ours.state_dict().keys() == state.keys()
    assert all(torch.equal(ours.state_dict()[name], state[name]) for name in state)
    plain.load_state_dict(ours.state_dict())
    x = torch.rand(3, 4, 23)
    assert torch.allclose(ours(x), plain(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="padding_mode must be 'zeros'"):
        cltorch.Conv1d(3, 4, 3, padding_mode="circular")


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
