"""Channels-last inputs (NLC, NHWC, NDHWC memory seen as (N, C, *spatial)): converted on the device by
cl/channels_first.cl, with the same bytes out as channels-first inputs, no host copy, the events kept in order,
and a kernel variant that fails its check giving way to the next; 1x1 layers read in place by
cl/pointwise_product.cl and depthwise layers by clconv.channels_last_depthwise's kernels, against the oracle."""

import time

import numpy as np
import pyopencl as cl
import pyopencl.array as cl_array
import pytest

import clconv
from clconv import (
    arrays,
    channels_last,
    channels_last_depthwise,
    channels_last_pointwise,
    check,
    plan_3d,
    platforms,
)
from clconv.algorithms.base import DeviceTensor, split_batch
from clconv.params import PASSES

# Channel counts and spatial sizes off the 8x8 blocks (and on them: K = 16), strides, groups, and a transposed
# layer, whose forward pass reads x as the input gradient's grad_output.
CASES = [
    pytest.param(check.Case("1d-k3-c12", (2, 12, 37), (10, 12, 3), padding=1), id="1d"),
    pytest.param(check.Case("2d-3x3-s2-c19-k16-g1", (2, 19, 9, 11), (16, 19, 3, 3), stride=(2, 1), padding=1),
                 id="2d"),
    pytest.param(check.Case("3d-3x3x3-c10-g2", (2, 10, 3, 5, 6), (12, 5, 3, 3, 3), padding=1, groups=2), id="3d"),
    pytest.param(check.TransposedCase("2d-t-3x3-s2-c9", (2, 9, 5, 6), (9, 11, 3, 3), stride=2, padding=1,
                                      output_padding=1), id="2d-transposed"),
]
DTYPES = [pytest.param(dtype, id=np.dtype(dtype).name) for dtype in check.DTYPES]

# 1x1 layers read in place: positions and channels off every CPU tile's rows (4, 8) and lanes (24, 32, 64), fewer
# channels than a vector on either side, more channels than positions, a 1-D layer and a transposed one (whose
# forward pass is the input gradient, with a bias).
POINTWISE_CASES = [
    pytest.param(check.Case("1x1-c19-k37", (2, 19, 5, 7), (37, 19, 1, 1)), id="1x1-c19-k37"),
    pytest.param(check.Case("1x1-c40-k5", (3, 40, 3, 3), (5, 40, 1, 1)), id="1x1-c40-k5"),
    pytest.param(check.Case("1x1-c70-k3-n1", (1, 70, 2, 1), (3, 70, 1, 1)), id="1x1-c70-k3-n1"),
    pytest.param(check.Case("1d-k1-c12-k40", (2, 12, 29), (40, 12, 1)), id="1d"),
    pytest.param(check.TransposedCase("2d-t-1x1-c9-k11", (2, 9, 5, 6), (9, 11, 1, 1)), id="2d-transposed"),
]
# The passes a 1x1 layer runs in place with x and grad_output channels-last (the bias gradient converts).
IN_PLACE_PASSES = ("forward", "grad_input", "grad_weight")

# Depthwise layers read in place: channels filling whole vectors of 16 and off them (the last vector overlapping
# the one before), fewer channels than 8 and 4 lanes, strides, dilation, asymmetric padding, rows narrower than a
# work-item's columns, kernels of more taps than a weight-gradient work-item holds, a 1-D layer and a transposed
# one (whose forward pass is the input gradient, with a bias).
DEPTHWISE_CASES = [
    pytest.param(check.Case("dw-3x3-c32", (2, 32, 9, 11), (32, 1, 3, 3), padding=1, groups=32), id="3x3-c32"),
    pytest.param(check.Case("dw-3x3-s2-c20", (2, 20, 9, 10), (20, 1, 3, 3), stride=2, padding=1, groups=20),
                 id="3x3-s2-c20"),
    pytest.param(check.Case("dw-5x3-c5-d2x1", (3, 5, 12, 9), (5, 1, 5, 3), stride=(1, 2), padding=((2, 1), (1, 0)),
                            dilation=(2, 1), groups=5), id="5x3-c5-dilated"),
    pytest.param(check.Case("dw-7x7-s3-c19", (1, 19, 15, 16), (19, 1, 7, 7), stride=3, padding=3, groups=19),
                 id="7x7-s3-c19"),
    pytest.param(check.Case("dw-3x3-c2-w4", (2, 2, 5, 4), (2, 1, 3, 3), padding=1, groups=2), id="3x3-c2-w4"),
    pytest.param(check.Case("dw-1d-k5-c12", (2, 12, 23), (12, 1, 5), padding=2, groups=12), id="1d"),
    pytest.param(check.TransposedCase("dw-t-3x3-s2-c24", (2, 24, 5, 6), (24, 1, 3, 3), stride=2, padding=1,
                                      output_padding=1, groups=24), id="2d-transposed"),
]


def to_channels_last(array: np.ndarray) -> np.ndarray:
    """The same values with channels-last memory: the C-contiguous (N, *spatial, C) array, moved back."""
    return np.moveaxis(np.ascontiguousarray(np.moveaxis(array, 1, -1)), -1, 1)


def channels_last_inputs(inputs: dict) -> dict:
    """Every input of at least three axes (x, weight, grad_output) in channels-last memory; the bias as it is."""
    converted = {name: to_channels_last(value) if value.ndim >= 3 else value for name, value in inputs.items()}
    for name, value in converted.items():
        assert value.ndim < 3 or channels_last.is_channels_last(value), name
    return converted


def device_channels_last(queue, array: np.ndarray, spare_images: int = 0) -> cl_array.Array:
    """A channels-last view of a device array holding ``array``'s values, after ``spare_images`` images of
    other data in the same buffer (so that the view starts at an offset)."""
    memory = np.moveaxis(array, 1, -1)
    spare = np.full((spare_images,) + memory.shape[1:], -9, array.dtype)
    whole = cl_array.to_device(queue, np.ascontiguousarray(np.concatenate([spare, memory])))
    view = whole[spare_images:]
    return view.transpose((0, array.ndim - 1) + tuple(range(1, array.ndim - 1)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pass_name", PASSES)
@pytest.mark.parametrize("case", CASES)
def test_numpy_channels_last_gives_the_same_bytes(device, case, pass_name, dtype):
    if dtype == np.float64 and not device.fp64:
        pytest.skip("no cl_khr_fp64")
    inputs = check.random_inputs(case, dtype)
    expected = check.run_pass(pass_name, case, inputs, device=device.device)
    got = check.run_pass(pass_name, case, channels_last_inputs(inputs), device=device.device)
    assert got.dtype == expected.dtype and got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()


@pytest.mark.parametrize("pass_name", PASSES)
@pytest.mark.parametrize("case", CASES)
def test_device_channels_last_views_give_the_same_bytes(device, case, pass_name):
    """Views at an offset into their buffer, results left on the device."""
    inputs = check.random_inputs(case, np.float32)
    expected = check.run_pass(pass_name, case, inputs, device=device.device)
    queue = platforms.resolve(device.device).queue
    on_device = {name: device_channels_last(queue, value, spare_images=1) if value.ndim >= 3
                 else cl_array.to_device(queue, value) for name, value in inputs.items()}
    assert all(not value.flags.c_contiguous for value in on_device.values() if value.ndim >= 3)
    got = check.run_pass(pass_name, case, on_device)
    assert isinstance(got, cl_array.Array) and got.flags.c_contiguous
    assert got.get().tobytes() == expected.tobytes()


@pytest.mark.parametrize("pass_name", ["forward", "grad_weight"])
def test_numpy_channels_last_beside_a_device_array_is_uploaded(device, pass_name):
    """A call with a device array keeps its result on the device: its NumPy inputs are uploaded as they lie,
    then converted there (not wrapped in place: the call returns before its kernels end)."""
    case = CASES[1].values[0]
    inputs = check.random_inputs(case, np.float32)
    expected = check.run_pass(pass_name, case, inputs, device=device.device)
    queue = platforms.resolve(device.device).queue
    mixed = channels_last_inputs(inputs)
    mixed["weight"] = cl_array.to_device(queue, inputs["weight"])
    mixed["grad_output"] = cl_array.to_device(queue, inputs["grad_output"])
    got = check.run_pass(pass_name, case, mixed)
    assert isinstance(got, cl_array.Array)
    assert got.get().tobytes() == expected.tobytes()


class _NumPyWithoutHostGather:
    """NumPy as clconv.arrays sees it, except that gathering an array into C order (a copy: not the
    C-contiguous bias, which comes back as it is) fails the test."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def ascontiguousarray(array, *args, **kwargs):
        if not array.flags.c_contiguous:
            raise AssertionError(f"a host copy of an array with strides {array.strides}")
        return np.ascontiguousarray(array, *args, **kwargs)


@pytest.mark.parametrize("case", CASES[:3])
def test_numpy_channels_last_is_not_copied_on_the_host(monkeypatch, device, case):
    """Every pass reads channels-last NumPy inputs as they lie: no gather into C order, and (every input
    page-aligned, as Intel's runtime wants it for in-place use) no aligned copy either."""
    inputs = check.random_inputs(case, np.float32)
    expected = {name: check.run_pass(name, case, inputs, device=device.device) for name in PASSES}
    aligned = {}
    for name, value in inputs.items():
        memory = np.moveaxis(value, 1, -1) if value.ndim >= 3 else value
        page_aligned = arrays.aligned_empty(memory.shape, value.dtype, 4096)
        page_aligned[...] = memory
        aligned[name] = np.moveaxis(page_aligned, -1, 1) if value.ndim >= 3 else page_aligned
    monkeypatch.setattr(arrays, "np", _NumPyWithoutHostGather())
    monkeypatch.setattr(arrays, "aligned_copy", lambda *args: pytest.fail("an aligned host copy"))
    for name in PASSES:
        assert check.run_pass(name, case, aligned, device=device.device).tobytes() == expected[name].tobytes(), name


def test_other_numpy_layouts_are_still_gathered_on_the_host(monkeypatch, device):
    """Only channels-last memory goes to the device as it lies; a Fortran-order input is gathered first."""
    case = CASES[1].values[0]
    inputs = check.random_inputs(case, np.float32)
    expected = check.run_pass("forward", case, inputs, device=device.device)
    gathered = []

    class CountingNumPy(_NumPyWithoutHostGather):
        @staticmethod
        def ascontiguousarray(array, *args, **kwargs):
            gathered.append(array.strides)
            return np.ascontiguousarray(array, *args, **kwargs)

    monkeypatch.setattr(arrays, "np", CountingNumPy())
    fortran = dict(inputs, x=np.asfortranarray(inputs["x"]))
    assert check.run_pass("forward", case, fortran, device=device.device).tobytes() == expected.tobytes()
    assert fortran["x"].strides in gathered


def test_conversion_waits_for_the_array_and_the_call_waits_for_the_conversion(device):
    """The conversion waits for the events of the device array it reads, and its own event is among those
    every kernel of the call waits for; a second request of the input reuses the conversion."""
    target = platforms.resolve(device.device)
    values = np.arange(2 * 11 * 3 * 5, dtype=np.float32).reshape(2, 11, 3, 5)
    x = device_channels_last(target.queue, values)
    gate = cl.UserEvent(target.context)
    x.add_event(gate)
    call = arrays.CallArrays(target, x=x)
    try:
        tensor = call.device_tensor("x")
        conversion = call.wait_for[-1]
        assert gate in call.wait_for and conversion is not gate
        time.sleep(0.05)
        assert conversion.command_execution_status != cl.command_execution_status.COMPLETE
    finally:
        gate.set_status(cl.command_execution_status.COMPLETE)
    conversion.wait()
    converted = call.arrays["x"]
    assert converted.flags.c_contiguous and conversion in converted.events
    assert (converted.base_data, converted.offset // 4) == tensor
    assert np.array_equal(converted.get(), values)
    assert call.device_tensor("x") == tensor and call.wait_for[-1] is conversion


# (N, S, C): one element; channels and positions below, on and off the 8 (or 4) lanes of a block.
ODD_SHAPES = [(1, 1, 1), (2, 7, 3), (3, 9, 17), (2, 64, 16), (1, 23, 8), (2, 8, 23), (1, 5, 40)]


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_variant_converts_odd_sizes(device, dtype):
    """Each kernel variant, at offsets into both buffers, moves exactly the tensor and nothing around it."""
    if dtype == np.float64 and not device.fp64:
        pytest.skip("no cl_khr_fp64")
    target = platforms.resolve(device.device)
    limit = target.info.vector_bits_limit
    for variant in ({"LANES": 8, "VECTOR_TRANSPOSE": 1}, {"LANES": 4, "VECTOR_TRANSPOSE": 1},
                    {"LANES": 8, "VECTOR_TRANSPOSE": 0}):
        if variant == {"LANES": 8, "VECTOR_TRANSPOSE": 1} and dtype == np.float64 and limit is not None:
            continue  # 8 lanes of double, which a device with a vector limit cannot build (ChannelsFirst knows)
        converter = channels_last.ChannelsFirst(target, np.dtype(dtype))
        converter.variants = (variant,)
        for N, S, C in ODD_SHAPES:
            values = np.random.default_rng(S * C).uniform(-1, 1, (N, S, C)).astype(dtype)
            source = cl_array.to_device(target.queue, np.concatenate([np.full(5, 7, dtype), values.ravel()]))
            target_array = cl_array.to_device(target.queue, np.full(3 + values.size + 4, -1, dtype))
            event = converter.convert(DeviceTensor(source.base_data, 5), DeviceTensor(target_array.base_data, 3),
                                      (N, C, S), [])
            event.wait()
            result = target_array.get()
            assert np.all(result[:3] == -1) and np.all(result[-4:] == -1), (variant, N, S, C)
            assert result[3:-4].tobytes() == np.moveaxis(values, -1, 1).tobytes(), (variant, N, S, C)


def test_a_failed_variant_gives_way_to_the_next(monkeypatch, failing_kernels, device):
    """A vector variant that fails its check is replaced by the element-by-element one, with a warning; when
    none is left the call says so."""
    target = platforms.resolve(device.device)
    failing = set()
    failing_kernels(lambda name, defines: name == "channels_first" and defines["VECTOR_TRANSPOSE"] in failing)
    values = np.random.default_rng(3).standard_normal((2, 5, 4, 6)).astype(np.float32)
    weight = np.random.default_rng(4).standard_normal((3, 5, 3, 3)).astype(np.float32)
    expected = clconv.conv2d(values, weight, device=device.device)
    converters = []
    monkeypatch.setattr(channels_last, "channels_first", lambda target, dtype: converters[-1])

    failing.add(1)
    converters.append(channels_last.ChannelsFirst(target, np.dtype(np.float32)))
    with pytest.warns(clconv.KernelFallbackWarning, match="moved element by element instead"):
        got = clconv.conv2d(to_channels_last(values), weight, device=device.device)
    assert got.tobytes() == expected.tobytes()
    assert [variant["VECTOR_TRANSPOSE"] for variant in converters[-1].variants] == [0]

    failing.add(0)
    converters.append(channels_last.ChannelsFirst(target, np.dtype(np.float32)))
    with pytest.raises(RuntimeError, match="no other kernel variant to fall back to"):
        clconv.conv2d(to_channels_last(values), weight, device=device.device)


@pytest.mark.parametrize("shape, axes", [
    ((2, 3, 4, 5), (0, 3, 1, 2)),     # NHWC memory: channels-last
    ((2, 6, 3), (0, 2, 1)),           # NLC
    ((2, 3, 4, 5, 6), (0, 4, 1, 2, 3)),  # NDHWC
    ((1, 4, 5, 3), (0, 3, 1, 2)),     # one image
    ((2, 1, 5, 3), (0, 3, 1, 2)),     # one row
    ((2, 3, 4, 5), (0, 1, 3, 2)),     # W and H swapped: not channels-last
    ((3, 2, 4, 5), (1, 0, 2, 3)),     # N and C swapped
    ((5, 4, 3, 2), (3, 2, 1, 0)),     # Fortran order
    ((2, 3, 4, 5), (0, 1, 2, 3)),     # C order
    ((2, 3, 4, 1), (0, 3, 1, 2)),     # one channel: C-contiguous as well
])
def test_channels_last_is_what_numpy_strides_say(device, shape, axes):
    """is_channels_last agrees with NumPy's flags (np.moveaxis(a, 1, -1) C-contiguous, a not), and says the
    same of a device array of the same strides."""
    array = np.zeros(shape, np.float32).transpose(axes)
    expected = np.moveaxis(array, 1, -1).flags.c_contiguous and not array.flags.c_contiguous
    assert channels_last.is_channels_last(array) == expected
    queue = platforms.resolve(device.device).queue
    on_device = cl_array.to_device(queue, np.zeros(shape, np.float32)).transpose(axes)
    assert on_device.strides == array.strides
    assert channels_last.is_channels_last(on_device) == expected


def test_device_views_that_are_not_channels_last_are_refused(device):
    queue = platforms.resolve(device.device).queue
    x = cl_array.to_device(queue, np.ones((2, 4, 8, 8), np.float32)).transpose((0, 1, 3, 2))
    with pytest.raises(ValueError, match=r"x must be a C-contiguous device array or a channels-last view of one"):
        clconv.conv2d(x, np.ones((3, 4, 3, 3), np.float32))
    every_other_row = device_channels_last(queue, np.ones((2, 4, 8, 8), np.float32))[:, :, ::2]
    with pytest.raises(ValueError, match=r"x must be a C-contiguous device array or a channels-last view"):
        clconv.conv2d(every_other_row, np.ones((3, 4, 3, 3), np.float32))


def test_a_channels_last_device_out_is_refused(device):
    """The kernels write channels-first results: ``out`` must be C-contiguous."""
    queue = platforms.resolve(device.device).queue
    x = np.ones((2, 4, 6, 6), np.float32)
    out = device_channels_last(queue, np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"out must be a C-contiguous device array \(got strides"):
        clconv.conv2d(cl_array.to_device(queue, x), np.ones((3, 4, 3, 3), np.float32), out=out)


def activations_channels_last(inputs: dict) -> dict:
    """x and grad_output in channels-last memory (a 1x1 weight's is its C order), the rest as they are."""
    return dict(inputs, **channels_last_inputs({name: inputs[name] for name in ("x", "grad_output")}))


@pytest.mark.parametrize("pass_name", PASSES)
def test_plans_keep_their_conversion_buffers_and_share_them_safely_by_threads(monkeypatch, copies_kept, device,
                                                                            pass_name):
    """A plan converts each channels-last input into one buffer it keeps from call to call (a fresh one costs a
    page fault per page); calls from several threads at once, each on its own inputs and with time between
    the conversion and the kernels reading it, still get the bytes of channels-first inputs. A copy for which the
    device's kept memory has no room gets a fresh buffer each call."""
    case = check.Case("3x3-s2-c5-k6", (2, 5, 9, 8), (6, 5, 3, 3), stride=2, padding=1)
    plan = clconv.plan(case.input_shape, case.weight_shape, device=device.device, algo="direct", **case.conv_args)
    names = {"forward": ("x", "weight"), "grad_input": ("grad_output", "weight"),
             "grad_weight": ("x", "grad_output"), "grad_bias": ("grad_output",)}[pass_name]
    inputs = [check.random_inputs(case, np.float32, seed) for seed in range(4)]

    def run(index, layout=channels_last_inputs):
        return getattr(plan, pass_name)(*(layout(inputs[index])[name] for name in names)).tobytes()

    channels_first = [run(index, dict) for index in range(len(inputs))]
    original = channels_last.ChannelsFirst.convert

    def convert_then_pause(self, *args):
        event = original(self, *args)
        time.sleep(0.005)  # time for another thread to come between the conversion and the kernels that read it
        return event

    monkeypatch.setattr(channels_last.ChannelsFirst, "convert", convert_then_pause)
    copies_kept(plan, "_buffers", names, run, channels_first)


@pytest.fixture
def in_place_products(monkeypatch):
    """The launches of cl/pointwise_product.cl a test makes: (rows I, columns J, splits or None)."""
    launches = []
    original = channels_last_pointwise.PointwiseChannelsLast._product

    def counted(self, args, splits, wait_for):
        launches.append((args.I, args.J, splits))
        return original(self, args, splits, wait_for)

    monkeypatch.setattr(channels_last_pointwise.PointwiseChannelsLast, "_product", counted)
    return launches


def assert_matches_oracle(pass_name, case, inputs, got, dtype):
    result = check.compare_with_oracle(pass_name, case, inputs, got, dtype)
    assert result.passed, f"{pass_name} of {case.name}: {result.message}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pass_name", PASSES)
@pytest.mark.parametrize("case", POINTWISE_CASES)
def test_pointwise_layers_read_channels_last_in_place(device, case, pass_name, dtype, in_place_products):
    """x and grad_output channels-last: the 1x1 passes run on their memory as it lies, and match the oracle."""
    if dtype == np.float64 and not device.fp64:
        pytest.skip("no cl_khr_fp64")
    inputs = check.random_inputs(case, dtype)
    got = check.run_pass(pass_name, case, activations_channels_last(inputs), device=device.device)
    assert_matches_oracle(pass_name, case, inputs, got, dtype)
    assert len(in_place_products) == (pass_name in IN_PLACE_PASSES)


@pytest.mark.parametrize("channels_last_input", ["x", "grad_output"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_pointwise_weight_gradient_with_one_input_channels_last(device, dtype, channels_last_input,
                                                                in_place_products):
    """Either input of the weight gradient may be the channels-last one, the other channels-first; a forward
    pass and an input gradient with channels-first inputs stay on the plan's kernels."""
    if dtype == np.float64 and not device.fp64:
        pytest.skip("no cl_khr_fp64")
    case = POINTWISE_CASES[0].values[0]
    inputs = check.random_inputs(case, dtype)
    mixed = dict(inputs, **{channels_last_input: to_channels_last(inputs[channels_last_input])})
    assert_matches_oracle("grad_weight", case, inputs, check.run_pass("grad_weight", case, mixed, device=device.device),
                          dtype)
    assert len(in_place_products) == 1
    pass_name = "grad_input" if channels_last_input == "x" else "forward"
    assert_matches_oracle(pass_name, case, inputs, check.run_pass(pass_name, case, mixed, device=device.device),
                          dtype)
    assert len(in_place_products) == 1


def test_pointwise_weight_gradient_sums_in_splits_deterministically(device, in_place_products):
    """A small weight gradient over a large batch sums in batch splits (their partial sums then added in split
    order): the same bytes on every run, one split within a workspace of 0 bytes, both against the oracle."""
    case = check.Case("1x1-c5-k6-n16", (16, 5, 4, 4), (6, 5, 1, 1))
    inputs = check.random_inputs(case, np.float32)
    moved = activations_channels_last(inputs)
    split = check.run_pass("grad_weight", case, moved, device=device.device)
    assert in_place_products[-1][2] > 1
    assert_matches_oracle("grad_weight", case, inputs, split, np.float32)
    assert check.run_pass("grad_weight", case, moved, device=device.device).tobytes() == split.tobytes()
    whole = check.run_pass("grad_weight", case, moved, device=device.device, max_workspace_bytes=0)
    assert in_place_products[-1][2] == 1
    assert_matches_oracle("grad_weight", case, inputs, whole, np.float32)


def test_pointwise_device_views_read_in_place(device, in_place_products):
    """Channels-last device views at an offset into their buffer, results left on the device."""
    case = POINTWISE_CASES[0].values[0]
    inputs = check.random_inputs(case, np.float32)
    queue = platforms.resolve(device.device).queue
    on_device = {name: device_channels_last(queue, value, spare_images=1) if value.ndim >= 3
                 else cl_array.to_device(queue, value) for name, value in inputs.items()}
    for pass_name in IN_PLACE_PASSES:
        got = check.run_pass(pass_name, case, on_device)
        assert isinstance(got, cl_array.Array) and got.flags.c_contiguous
        assert_matches_oracle(pass_name, case, inputs, got.get(), np.float32)
    assert len(in_place_products) == len(IN_PLACE_PASSES)


@pytest.mark.parametrize("case, algo", [
    pytest.param(POINTWISE_CASES[0].values[0], "direct", id="pointwise"),
    pytest.param(DEPTHWISE_CASES[0].values[0], "tiled", id="depthwise"),
])
def test_a_requested_algorithm_converts_channels_last_inputs(device, case, algo, in_place_products,
                                                             kernel_launches):
    """algo= names the kernels a caller wants: those run, on the converted inputs, with the same bytes out as
    channels-first inputs, not the 1x1 or depthwise kernels that read them in place."""
    inputs = check.random_inputs(case, np.float32)
    for pass_name in IN_PLACE_PASSES:
        expected = check.run_pass(pass_name, case, inputs, device=device.device, algo=algo)
        got = check.run_pass(pass_name, case, activations_channels_last(inputs), device=device.device, algo=algo)
        assert got.tobytes() == expected.tobytes()
    assert not in_place_products and not depthwise_kernels(kernel_launches)


@pytest.mark.parametrize("module, kernel, case", [
    pytest.param(channels_last_pointwise, "pointwise_product", POINTWISE_CASES[0].values[0], id="pointwise"),
    pytest.param(channels_last_depthwise, "conv2d_grad_input_depthwise_channels_last", DEPTHWISE_CASES[0].values[0],
                 id="depthwise"),
])
def test_a_failed_in_place_kernel_gives_way_to_the_conversion(monkeypatch, failing_kernels, device, module, kernel,
                                                             case):
    """The in-place kernel failing its check: a warning, then the conversion and the plan's kernels, with the
    bytes of channels-first inputs."""
    inputs = check.random_inputs(case, np.float32)
    # Before the kernel fails: the plan's own kernels may run it too (a 1x1 input gradient's matrix product).
    expected = check.run_pass("grad_input", case, inputs, device=device.device)
    failing_kernels(lambda name, defines: name == kernel)
    monkeypatch.setattr(module, "launcher", module.launcher.__wrapped__)
    with pytest.warns(clconv.KernelFallbackWarning, match="converted into channels-first memory instead"):
        got = check.run_pass("grad_input", case, activations_channels_last(inputs), device=device.device)
    assert got.tobytes() == expected.tobytes()


def depthwise_kernels(kernel_launches) -> list:
    """The depthwise channels-last kernels among the launches recorded, by name (not reduce_partials after them)."""
    return [name for launcher, name, _ in kernel_launches
            if isinstance(launcher, channels_last_depthwise.DepthwiseChannelsLast) and name != "reduce_partials"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pass_name", PASSES)
@pytest.mark.parametrize("case", DEPTHWISE_CASES)
def test_depthwise_layers_read_channels_last_in_place(device, case, pass_name, dtype, kernel_launches):
    """x and grad_output channels-last: the depthwise passes run on their memory as it lies, and match the
    oracle."""
    if dtype == np.float64 and not device.fp64:
        pytest.skip("no cl_khr_fp64")
    inputs = check.random_inputs(case, dtype)
    got = check.run_pass(pass_name, case, activations_channels_last(inputs), device=device.device)
    assert_matches_oracle(pass_name, case, inputs, got, dtype)
    assert len(depthwise_kernels(kernel_launches)) == (pass_name in IN_PLACE_PASSES)


@pytest.mark.parametrize("channels_last_input", ["x", "grad_output"])
def test_a_depthwise_weight_gradient_with_one_input_channels_last_converts_it(device, channels_last_input,
                                                                               kernel_launches):
    """The depthwise weight gradient reads both inputs channels-last or neither: with one, that one is converted
    and the plan's kernel runs, with the bytes of channels-first inputs."""
    case = DEPTHWISE_CASES[0].values[0]
    inputs = check.random_inputs(case, np.float32)
    mixed = dict(inputs, **{channels_last_input: to_channels_last(inputs[channels_last_input])})
    expected = check.run_pass("grad_weight", case, inputs, device=device.device)
    assert check.run_pass("grad_weight", case, mixed, device=device.device).tobytes() == expected.tobytes()
    assert not depthwise_kernels(kernel_launches)


def test_depthwise_weight_gradient_sums_in_splits_deterministically(device, kernel_launches, monkeypatch):
    """The depthwise weight gradient sums the batch's output rows in splits (their partial sums then added in
    split order): the same bytes on every run, one split within a workspace of 0 bytes, both against the
    oracle."""
    splits = []
    monkeypatch.setattr(channels_last_depthwise.base, "split_batch",
                        lambda *args: splits.append(split_batch(*args)) or splits[-1])
    case = DEPTHWISE_CASES[1].values[0]
    inputs = check.random_inputs(case, np.float32)
    moved = activations_channels_last(inputs)
    split = check.run_pass("grad_weight", case, moved, device=device.device)
    assert splits[-1][1] > 1
    assert_matches_oracle("grad_weight", case, inputs, split, np.float32)
    assert check.run_pass("grad_weight", case, moved, device=device.device).tobytes() == split.tobytes()
    whole = check.run_pass("grad_weight", case, moved, device=device.device, max_workspace_bytes=0)
    assert splits[-1][1] == 1
    assert_matches_oracle("grad_weight", case, inputs, whole, np.float32)
    assert len(depthwise_kernels(kernel_launches)) == 3


def test_depthwise_device_views_read_in_place(device, kernel_launches):
    """Channels-last device views at an offset into their buffer, results left on the device."""
    case = DEPTHWISE_CASES[1].values[0]
    inputs = check.random_inputs(case, np.float32)
    queue = platforms.resolve(device.device).queue
    on_device = {name: device_channels_last(queue, value, spare_images=1) if name in ("x", "grad_output")
                 else cl_array.to_device(queue, value) for name, value in inputs.items()}
    for pass_name in IN_PLACE_PASSES:
        got = check.run_pass(pass_name, case, on_device)
        assert isinstance(got, cl_array.Array) and got.flags.c_contiguous
        assert_matches_oracle(pass_name, case, inputs, got.get(), np.float32)
    assert depthwise_kernels(kernel_launches) == [f"conv2d_{name}depthwise_channels_last"
                                  for name in ("", "grad_input_", "grad_weight_")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pass_name", IN_PLACE_PASSES)
def test_three_d_layers_read_channels_last_inputs_where_they_copy_them_anyway(device, monkeypatch, pass_name, dtype):
    """A 3-D layer copies x into its depth unfolding and grad_output into the 2-D layer's (N, D_out, K, P, Q)
    anyway: a channels-last x is read in place by the unfolding, and a channels-last grad_output is converted
    straight into that layout, neither converted into channels-first memory first. The bytes are those of
    channels-first inputs."""
    if dtype == np.float64 and not device.fp64:
        pytest.skip("no cl_khr_fp64")
    case = CASES[2].values[0]
    inputs = check.random_inputs(case, dtype)
    expected = check.run_pass(pass_name, case, inputs, device=device.device)
    converted = []
    original = arrays.CallArrays._channels_first
    monkeypatch.setattr(arrays.CallArrays, "_channels_first",
                        lambda self, name, array: converted.append(name) or original(self, name, array))
    got = check.run_pass(pass_name, case, activations_channels_last(inputs), device=device.device)
    assert got.tobytes() == expected.tobytes()
    assert not {"x", "grad_output"} & set(converted)


def test_a_depthwise_weight_copy_over_the_workspace_cap_converts_instead(device, kernel_launches):
    """The forward pass and input gradient copy the weight, which a cap below its size keeps out: they convert and
    run the plan's kernels, with the bytes of channels-first inputs; the weight gradient keeps within the cap in one
    split."""
    case = DEPTHWISE_CASES[0].values[0]
    inputs = check.random_inputs(case, np.float32)
    moved = activations_channels_last(inputs)
    for pass_name in ("forward", "grad_input"):
        expected = check.run_pass(pass_name, case, inputs, device=device.device, max_workspace_bytes=0)
        got = check.run_pass(pass_name, case, moved, device=device.device, max_workspace_bytes=0)
        assert got.tobytes() == expected.tobytes()
    assert not depthwise_kernels(kernel_launches)
    got = check.run_pass("grad_weight", case, moved, device=device.device, max_workspace_bytes=0)
    assert_matches_oracle("grad_weight", case, inputs, got, np.float32)
    assert depthwise_kernels(kernel_launches) == ["conv2d_grad_weight_depthwise_channels_last"]


def test_a_failed_in_place_depth_unfolding_gives_way_to_the_conversion(monkeypatch, failing_kernels, device):
    """The unfolding that reads a channels-last x in place failing its check: a warning, then x converted and
    unfolded as a channels-first one, with the same bytes."""
    case = CASES[2].values[0]
    inputs = check.random_inputs(case, np.float32)
    expected = check.run_pass("forward", case, inputs, device=device.device)
    failing_kernels(lambda name, defines: name == "unfold_depth" and defines.get("X_CHANNELS_LAST"))
    monkeypatch.setattr(plan_3d, "_depth_kernels", plan_3d._depth_kernels.__wrapped__)
    with pytest.warns(clconv.KernelFallbackWarning, match="converted into channels-first memory instead"):
        got = check.run_pass("forward", case, activations_channels_last(inputs), device=device.device)
    assert got.tobytes() == expected.tobytes()
