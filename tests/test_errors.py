"""Every class of bad input gets a ValueError or TypeError that names the argument."""

import dataclasses
import re

import numpy as np
import pyopencl as cl
import pyopencl.array as cl_array
import pytest

import clconv
from clconv import platforms


def f32(*shape):
    return np.ones(shape, np.float32)


X, W, GY = f32(2, 4, 8, 8), f32(6, 4, 3, 3), f32(2, 6, 6, 6)

BAD_FORWARD = [
    ("x-ndim", dict(x=f32(4, 8, 8)), ValueError, "x must be a 4-D array"),
    ("weight-ndim", dict(weight=f32(6, 4, 3)), ValueError, "weight must be a 4-D array"),
    ("channel-mismatch", dict(weight=f32(6, 3, 3, 3)), ValueError, "channel mismatch"),
    ("groups-not-dividing-C", dict(groups=3, weight=f32(6, 1, 3, 3)), ValueError, "must divide the input channels"),
    ("groups-not-dividing-K", dict(groups=2, weight=f32(5, 2, 3, 3)), ValueError, "must divide the output channels"),
    ("stride-zero", dict(stride=0), ValueError, "stride must be >= 1"),
    ("stride-negative-h", dict(stride=(-1, 1)), ValueError, r"stride\[0\] must be >= 1"),
    ("stride-float", dict(stride=1.5), TypeError, "stride must be an int"),
    ("stride-triple", dict(stride=(1, 1, 1)), ValueError, "stride must be an int or a pair"),
    ("dilation-zero", dict(dilation=0), ValueError, "dilation must be >= 1"),
    ("groups-zero", dict(groups=0), ValueError, "groups must be >= 1"),
    ("padding-negative", dict(padding=-1), ValueError, "padding must be >= 0"),
    ("padding-negative-pair", dict(padding=((0, -1), (0, 0))), ValueError, r"padding\[h\]\[1\] must be >= 0"),
    ("padding-unknown-string", dict(padding="full"), ValueError, "padding must be"),
    ("padding-same-strided", dict(padding="same", stride=2), ValueError, "only defined for stride 1"),
    ("kernel-larger-than-input", dict(x=f32(2, 4, 2, 8)), ValueError, "larger than the padded input"),
    ("dilated-kernel-too-large", dict(dilation=5), ValueError, "dilated kernel 11x11"),
    ("bias-shape", dict(bias=f32(5)), ValueError, r"bias must have shape \(K,\)"),
    ("x-int", dict(x=np.ones((2, 4, 8, 8), np.int32)), TypeError, "x must have dtype float16, float32 or float64"),
    ("x-complex", dict(x=np.ones((2, 4, 8, 8), np.complex64)), TypeError, "x must have dtype"),
    ("mixed-dtypes", dict(weight=np.ones((6, 4, 3, 3), np.float64)), TypeError, "must share one dtype"),
    ("bias-mixed-dtype", dict(bias=np.ones(6, np.float16)), TypeError, "must share one dtype"),
    ("x-list", dict(x=[[1.0]]), TypeError, "x must be a numpy.ndarray"),
    ("device-unknown", dict(device="no-such-device"), ValueError, "matches no OpenCL device"),
    ("device-type", dict(device=3.5), TypeError, "device must be"),
]


BAD_GRAD_INPUT = [
    ("grad-output-shape", dict(grad_output=f32(2, 6, 5, 6)), ValueError, r"grad_output must have the output shape"),
    ("grad-output-ndim", dict(grad_output=f32(6, 6, 6)), ValueError, "grad_output must be a 4-D array"),
    ("input-shape-length", dict(input_shape=(2, 4, 8)), ValueError, "input_shape must have 4 dimensions"),
    ("input-shape-channels", dict(input_shape=(2, 5, 8, 8)), ValueError, "channel mismatch"),
    ("input-shape-batch", dict(input_shape=(3, 4, 8, 8)), ValueError, r"input_shape\[0\]=3 must equal the batch"),
    ("input-shape-type", dict(input_shape=7), TypeError, "input_shape must be a 4-tuple"),
    ("mixed-dtypes", dict(weight=np.ones((6, 4, 3, 3), np.float16)), TypeError, "must share one dtype"),
]


BAD_GRAD_WEIGHT = [
    ("grad-output-shape", dict(grad_output=f32(2, 6, 6, 5)), ValueError, "grad_output must have the output shape"),
    ("weight-shape-channels", dict(weight_shape=(6, 3, 3, 3)), ValueError, "channel mismatch"),
    ("weight-shape-K", dict(weight_shape=(5, 4, 3, 3)), ValueError, "grad_output must have the output shape"),
    ("weight-shape-zero", dict(weight_shape=(6, 4, 0, 3)), ValueError, "weight_shape must have every dimension"),
    ("weight-shape-negative", dict(weight_shape=(6, 4, -3, 3)), ValueError, "weight_shape must hold non-negative"),
    ("x-ndim", dict(x=f32(2, 4, 8, 8, 1)), ValueError, "x must be a 4-D array"),
]


BAD_GRAD_BIAS = [
    ("ndim", dict(grad_output=f32(2, 6, 6)), ValueError, "grad_output must be a 4-D array"),
    ("int", dict(grad_output=np.ones((2, 6, 6, 6), np.int64)), TypeError, "grad_output must have dtype"),
    ("no-channels", dict(grad_output=f32(2, 0, 6, 6)), ValueError, "grad_output must have K, P and Q >= 1"),
]

X1, W1, GY1 = f32(2, 4, 8), f32(6, 4, 3), f32(2, 6, 6)

# 1-D: the messages speak of (N, C, L) and (K, C/groups, S), never of the 2-D layer the functions run.
BAD_FORWARD_1D = [
    ("x-ndim", dict(x=f32(2, 4, 8, 8)), ValueError, r"x must be a 3-D array \(N, C, L\), got shape \(2, 4, 8, 8\)"),
    ("weight-ndim", dict(weight=f32(6, 4, 1, 3)), ValueError, r"weight must be a 3-D array \(K, C/groups, S\)"),
    ("channel-mismatch", dict(weight=f32(6, 3, 3)), ValueError, "channel mismatch: x has C=4 channels"),
    ("groups-not-dividing-C", dict(groups=3, weight=f32(6, 1, 3)), ValueError, "must divide the input channels"),
    ("stride-zero", dict(stride=0), ValueError, "stride must be >= 1"),
    ("stride-pair", dict(stride=(1, 2)), ValueError, "stride must be an int or a 1-tuple"),
    ("stride-float", dict(stride=(1.5,)), TypeError, r"stride\[0\] must be an int"),
    ("dilation-zero", dict(dilation=(0,)), ValueError, r"dilation\[0\] must be >= 1"),
    ("groups-zero", dict(groups=0), ValueError, "groups must be >= 1"),
    ("padding-negative", dict(padding=-1), ValueError, "padding must be >= 0"),
    ("padding-negative-right", dict(padding=(0, -1)), ValueError, r"padding\[1\] must be >= 0"),
    ("padding-triple", dict(padding=(1, 1, 1)), ValueError, r"padding must be an int, \(p,\) or \(left, right\)"),
    ("padding-2d-form", dict(padding=((0, 0), (1, 1))), TypeError, r"padding\[0\] must be an int"),
    ("padding-unknown-string", dict(padding="full"), ValueError, r"padding must be an int, \(p,\), \(left, right\)"),
    ("padding-same-strided", dict(padding="same", stride=2), ValueError, "only defined for stride 1, got stride=2;"),
    ("kernel-longer-than-input", dict(x=f32(2, 4, 2)), ValueError,
     r"dilated kernel of length 3 \(weight 3, dilation 1\) is longer than the padded input, 2"),
    ("dilated-kernel-too-long", dict(dilation=5), ValueError, "dilated kernel of length 11"),
    ("x-no-length", dict(x=f32(2, 4, 0)), ValueError, r"x must have C and L >= 1 \(only N may be 0\)"),
    ("bias-shape", dict(bias=f32(5)), ValueError, r"bias must have shape \(K,\)"),
    ("x-int", dict(x=np.ones((2, 4, 8), np.int32)), TypeError, "x must have dtype float16, float32 or float64"),
    ("mixed-dtypes", dict(weight=np.ones((6, 4, 3), np.float64)), TypeError, "must share one dtype"),
    ("x-list", dict(x=[[1.0]]), TypeError, "x must be a numpy.ndarray"),
]

BAD_GRAD_INPUT_1D = [
    ("grad-output-shape", dict(grad_output=f32(2, 6, 5)), ValueError,
     r"grad_output must have the output shape \(N, K, L_out\) = \(2, 6, 6\) computed from x\(2, 4, 8\) "
     r"w\(6, 4, 3\) -> y\(2, 6, 6\) stride=1 padding\(l,r\)=\(0, 0\) dilation=1 groups=1 fp32, got \(2, 6, 5\)"),
    ("grad-output-ndim", dict(grad_output=f32(2, 6, 1, 6)), ValueError,
     r"grad_output must be a 3-D array \(N, K, L_out\)"),
    ("input-shape-length", dict(input_shape=(2, 4, 1, 8)), ValueError,
     r"input_shape must have 3 dimensions \(N, C, L\)"),
    ("input-shape-channels", dict(input_shape=(2, 5, 8)), ValueError, "channel mismatch"),
    ("input-shape-batch", dict(input_shape=(3, 4, 8)), ValueError, r"input_shape\[0\]=3 must equal the batch"),
    ("input-shape-type", dict(input_shape=7), TypeError, r"input_shape must be a 3-tuple \(N, C, L\)"),
]

BAD_GRAD_WEIGHT_1D = [
    ("grad-output-shape", dict(grad_output=f32(2, 6, 7)), ValueError,
     r"grad_output must have the output shape \(N, K, L_out\)"),
    ("weight-shape-zero", dict(weight_shape=(6, 4, 0)), ValueError,
     r"weight_shape must have every dimension >= 1 \(K, C/groups, S\), got \(6, 4, 0\)"),
    ("weight-shape-negative", dict(weight_shape=(6, 4, -3)), ValueError, "weight_shape must hold non-negative"),
    ("weight-shape-2d", dict(weight_shape=(6, 4, 1, 3)), ValueError, r"weight_shape must have 3 dimensions"),
]

BAD_GRAD_BIAS_1D = [
    ("ndim", dict(grad_output=f32(2, 6, 1, 6)), ValueError, r"grad_output must be a 3-D array \(N, K, L_out\)"),
    ("no-length", dict(grad_output=f32(2, 6, 0)), ValueError, "grad_output must have K and L_out >= 1"),
]

# Transposed convolutions: their own arguments (output_padding) and words.
XT, WT, GYT = f32(2, 4, 5, 5), f32(4, 3, 3, 3), f32(2, 6, 11, 11)  # stride 2, output_padding 0: 11 x 11
XT1, WT1, GYT1 = f32(2, 4, 5), f32(4, 3, 3), f32(2, 3, 11)

VALID_TRANSPOSED = {
    "conv_transpose2d": dict(x=XT, weight=WT, stride=2),
    "conv_transpose2d_grad_input": dict(grad_output=GYT, weight=WT, input_shape=XT.shape, stride=2),
    "conv_transpose2d_grad_weight": dict(x=XT, grad_output=GYT, weight_shape=WT.shape, stride=2),
    "conv_transpose2d_grad_bias": dict(grad_output=GYT),
    "conv_transpose1d": dict(x=XT1, weight=WT1, stride=2),
    "conv_transpose1d_grad_input": dict(grad_output=GYT1, weight=WT1, input_shape=XT1.shape, stride=2),
    "conv_transpose1d_grad_weight": dict(x=XT1, grad_output=GYT1, weight_shape=WT1.shape, stride=2),
}

BAD_TRANSPOSED = {
    "conv_transpose2d": [
        ("output-padding-not-below-stride", dict(output_padding=2), ValueError,
         "output_padding must be smaller than stride or dilation, got output_padding 2, stride 2 and dilation 1"),
        ("output-padding-at-stride-1", dict(stride=1, output_padding=(0, 1)), ValueError,
         "output_padding must be smaller than stride or dilation.* along w"),
        ("output-padding-negative", dict(output_padding=-1), ValueError, "output_padding must be >= 0"),
        ("output-padding-float", dict(output_padding=0.5), TypeError, "output_padding must be an int"),
        ("output-padding-triple", dict(output_padding=(1, 1, 1)), ValueError,
         "output_padding must be an int or a pair"),
        ("padding-same", dict(padding="same"), ValueError, "'same' and 'valid' are not defined there"),
        ("padding-negative", dict(padding=-1), ValueError, "padding must be >= 0"),
        ("padding-too-large", dict(padding=6), ValueError,
         r"the output would have -1 rows: padding \(6, 6\) along h is too large"),
        ("x-ndim", dict(x=f32(4, 5, 5)), ValueError, r"x must be a 4-D array \(N, C_in, H, W\)"),
        ("weight-ndim", dict(weight=f32(4, 3, 3)), ValueError, r"weight must be a 4-D array \(C_in, C_out/groups"),
        ("channel-mismatch", dict(weight=f32(3, 3, 3, 3)), ValueError,
         r"channel mismatch: x has C_in=4 channels but weight.shape\[0\]=3"),
        ("groups-not-dividing-C-in", dict(groups=3, weight=f32(4, 1, 3, 3)), ValueError,
         "groups=3 must divide the input channels C_in=4"),
        ("stride-zero", dict(stride=0), ValueError, "stride must be >= 1"),
        ("dilation-float", dict(dilation=1.5), TypeError, "dilation must be an int"),
        ("bias-shape", dict(bias=f32(4)), ValueError, r"bias must have shape \(C_out,\) = \(3,\)"),
        ("mixed-dtypes", dict(weight=np.ones((4, 3, 3, 3), np.float64)), TypeError, "must share one dtype"),
        ("x-list", dict(x=[[1.0]]), TypeError, "x must be a numpy.ndarray"),
    ],
    "conv_transpose2d_grad_input": [
        ("grad-output-shape", dict(grad_output=f32(2, 6, 12, 11)), ValueError,
         r"grad_output must have the output shape \(N, C_out, H_out, W_out\) = \(2, 3, 11, 11\)"),
        ("input-shape-batch", dict(input_shape=(3, 4, 5, 5)), ValueError, r"input_shape\[0\]=3 must equal the batch"),
        ("input-shape-type", dict(input_shape=7), TypeError, "input_shape must be a 4-tuple"),
        ("output-padding", dict(output_padding=3), ValueError, "output_padding must be smaller than stride"),
    ],
    "conv_transpose2d_grad_weight": [
        ("weight-shape-channels", dict(weight_shape=(3, 3, 3, 3)), ValueError,
         r"channel mismatch: x has C_in=4 channels but weight_shape\[0\]=3"),
        ("grad-output-shape", dict(grad_output=f32(2, 6, 11, 10)), ValueError,
         "grad_output must have the output shape"),
    ],
    "conv_transpose2d_grad_bias": [
        ("ndim", dict(grad_output=f32(2, 6, 6)), ValueError, "grad_output must be a 4-D array"),
    ],
    "conv_transpose1d": [
        ("x-ndim", dict(x=XT), ValueError, r"x must be a 3-D array \(N, C_in, L\)"),
        ("stride-pair", dict(stride=(2, 2)), ValueError, "stride must be an int or a 1-tuple"),
        ("output-padding", dict(output_padding=2), ValueError,
         "output_padding must be smaller than stride or dilation, got output_padding 2, stride 2 and dilation 1"),
        ("padding-same", dict(padding="same"), ValueError, "'same' and 'valid' are not defined there"),
        ("dilation-zero", dict(dilation=0), ValueError, "dilation must be >= 1"),
    ],
    "conv_transpose1d_grad_input": [
        ("input-shape-length", dict(input_shape=(2, 4, 5, 5)), ValueError, "input_shape must have 3 dimensions"),
    ],
    "conv_transpose1d_grad_weight": [
        ("weight-shape-type", dict(weight_shape=3), TypeError, "weight_shape must be a 3-tuple"),
    ],
}

X3, W3, GY3 = f32(2, 4, 5, 8, 8), f32(6, 4, 3, 3, 3), f32(2, 6, 3, 6, 6)
XT3, WT3 = f32(2, 4, 3, 5, 5), f32(4, 3, 3, 3, 3)
GYT3 = f32(2, 3, 7, 11, 11)  # conv_transpose3d(XT3, WT3, stride=2) has this shape

VALID_3D = {
    "conv3d": dict(x=X3, weight=W3, bias=None, stride=1, padding=0, dilation=1, groups=1),
    "conv3d_grad_input": dict(grad_output=GY3, weight=W3, input_shape=X3.shape),
    "conv3d_grad_weight": dict(x=X3, grad_output=GY3, weight_shape=W3.shape),
    "conv3d_grad_bias": dict(grad_output=GY3),
    "conv_transpose3d": dict(x=XT3, weight=WT3, bias=None, stride=2),
    "conv_transpose3d_grad_input": dict(grad_output=GYT3, weight=WT3, input_shape=XT3.shape, stride=2),
    "conv_transpose3d_grad_weight": dict(x=XT3, grad_output=GYT3, weight_shape=WT3.shape, stride=2),
    "conv_transpose3d_grad_bias": dict(grad_output=GYT3),
}
BAD_3D = {
    "conv3d": [
        ("x-ndim", dict(x=X), ValueError, r"x must be a 5-D array \(N, C, D, H, W\)"),
        ("weight-ndim", dict(weight=W), ValueError, r"weight must be a 5-D array \(K, C/groups, T, R, S\)"),
        ("channel-mismatch", dict(weight=f32(6, 3, 3, 3, 3)), ValueError, "channel mismatch"),
        ("groups-not-dividing-C", dict(groups=3, weight=f32(6, 1, 3, 3, 3)), ValueError,
         "must divide the input channels"),
        ("stride-pair", dict(stride=(1, 1)), ValueError, r"stride must be an int or a triple \(d, h, w\)"),
        ("stride-zero-d", dict(stride=(0, 1, 1)), ValueError, r"stride\[0\] must be >= 1"),
        ("dilation-float", dict(dilation=1.5), TypeError, "dilation must be an int"),
        ("padding-negative-d", dict(padding=((-1, 0), 0, 0)), ValueError, r"padding\[d\]\[0\] must be >= 0"),
        ("padding-pair", dict(padding=(1, 1)), ValueError, "padding must be an int, a triple"),
        ("padding-same-strided", dict(padding="same", stride=(2, 1, 1)), ValueError, "only defined for stride 1"),
        ("kernel-deeper-than-input", dict(x=f32(2, 4, 2, 8, 8)), ValueError,
         "dilated kernel 3x3x3 .* is larger than the padded input 2x8x8"),
        ("bias-shape", dict(bias=f32(5)), ValueError, r"bias must have shape \(K,\)"),
        ("mixed-dtypes", dict(weight=np.ones((6, 4, 3, 3, 3), np.float64)), TypeError, "must share one dtype"),
    ],
    "conv3d_grad_input": [
        ("grad-output-shape", dict(grad_output=f32(2, 6, 4, 6, 6)), ValueError,
         "grad_output must have the output shape"),
        ("input-shape-length", dict(input_shape=(2, 4, 8, 8)), ValueError, "input_shape must have 5 dimensions"),
        ("input-shape-batch", dict(input_shape=(3, 4, 5, 8, 8)), ValueError, r"input_shape\[0\]=3 must equal"),
    ],
    "conv3d_grad_weight": [
        ("weight-shape-type", dict(weight_shape=3), TypeError, "weight_shape must be a 5-tuple"),
        ("grad-output-ndim", dict(grad_output=GY), ValueError, "grad_output must be a 5-D array"),
    ],
    "conv3d_grad_bias": [
        ("ndim", dict(grad_output=GY), ValueError, r"grad_output must be a 5-D array \(N, K, D_out, P, Q\)"),
        ("empty-frames", dict(grad_output=f32(2, 6, 0, 6, 6)), ValueError, "grad_output must have K, D_out, P and Q"),
    ],
    "conv_transpose3d": [
        ("x-ndim", dict(x=X), ValueError, r"x must be a 5-D array \(N, C_in, D, H, W\)"),
        ("channel-mismatch", dict(weight=f32(3, 3, 3, 3, 3)), ValueError, r"channel mismatch: x has C_in=4"),
        ("output-padding", dict(output_padding=(0, 2, 0)), ValueError,
         "output_padding must be smaller than stride or dilation, got output_padding 2, stride 2 and dilation 1 "
         "along h"),
        ("padding-same", dict(padding="same"), ValueError, "'same' and 'valid' are not defined there"),
        ("padding-too-large", dict(padding=(5, 0, 0)), ValueError, "the output would have -3 frames"),
    ],
    "conv_transpose3d_grad_input": [
        ("grad-output-shape", dict(grad_output=f32(2, 3, 7, 11, 10)), ValueError,
         "grad_output must have the output shape"),
    ],
    "conv_transpose3d_grad_weight": [
        ("weight-shape-length", dict(weight_shape=(4, 3, 3, 3)), ValueError, "weight_shape must have 5 dimensions"),
    ],
    "conv_transpose3d_grad_bias": [
        ("ndim", dict(grad_output=GY), ValueError, "grad_output must be a 5-D array"),
    ],
}

# Each function's valid arguments, which every bad case changes in one place.
VALID = {
    "conv2d": dict(x=X, weight=W, bias=None, stride=1, padding=0, dilation=1, groups=1),
    "conv2d_grad_input": dict(grad_output=GY, weight=W, input_shape=X.shape),
    "conv2d_grad_weight": dict(x=X, grad_output=GY, weight_shape=W.shape),
    "conv2d_grad_bias": dict(grad_output=GY),
    "conv1d": dict(x=X1, weight=W1, bias=None, stride=1, padding=0, dilation=1, groups=1),
    "conv1d_grad_input": dict(grad_output=GY1, weight=W1, input_shape=X1.shape),
    "conv1d_grad_weight": dict(x=X1, grad_output=GY1, weight_shape=W1.shape),
    "conv1d_grad_bias": dict(grad_output=GY1),
    **VALID_TRANSPOSED,
    **VALID_3D,
}
BAD = {"conv2d": BAD_FORWARD, "conv2d_grad_input": BAD_GRAD_INPUT, "conv2d_grad_weight": BAD_GRAD_WEIGHT,
       "conv2d_grad_bias": BAD_GRAD_BIAS, "conv1d": BAD_FORWARD_1D, "conv1d_grad_input": BAD_GRAD_INPUT_1D,
       "conv1d_grad_weight": BAD_GRAD_WEIGHT_1D, "conv1d_grad_bias": BAD_GRAD_BIAS_1D, **BAD_TRANSPOSED, **BAD_3D}


@pytest.mark.parametrize("function, overrides, error, message", [
    pytest.param(function, overrides, error, message, id=f"{function}-{name}")
    for function, cases in BAD.items() for name, overrides, error, message in cases])
def test_bad_arguments(function, overrides, error, message):
    """clconv and its oracle refuse the same bad arguments with the same error (the oracle has no device)."""
    args = dict(VALID[function], **overrides)
    with pytest.raises(error, match=message):
        getattr(clconv, function)(**args)
    if "device" not in overrides:
        with pytest.raises(error, match=message):
            getattr(clconv.reference, function)(**args)


def test_device_arrays_from_another_context(device):
    own = platforms.resolve(device.device)
    other_context = cl.Context([device.device])
    other_queue = cl.CommandQueue(other_context)
    x_own = cl_array.to_device(own.queue, X)
    w_other = cl_array.to_device(other_queue, W)
    with pytest.raises(ValueError, match="weight lives on a different OpenCL context than x"):
        clconv.conv2d(x_own, w_other)
    with pytest.raises(ValueError, match="lives on another OpenCL context"):
        clconv.conv2d(cl_array.to_device(other_queue, X), W, device=device.device)


def test_non_contiguous_device_array(device):
    queue = platforms.resolve(device.device).queue
    x_dev = cl_array.to_device(queue, np.ones((2, 4, 8, 8), np.float32))
    transposed = x_dev.transpose((0, 1, 3, 2))
    with pytest.raises(ValueError, match="x must be a C-contiguous device array"):
        clconv.conv2d(transposed, W)


def test_fp64_on_device_without_fp64(monkeypatch, device):
    """A device that lacks cl_khr_fp64 refuses float64 with the device and extension named."""
    target = platforms.resolve(device.device)
    crippled = dataclasses.replace(target, info=dataclasses.replace(target.info, fp64=False))
    monkeypatch.setattr(platforms, "resolve", lambda spec=None: crippled)
    with pytest.raises(TypeError, match=re.escape(device.name)) as raised:
        clconv.conv2d(X.astype(np.float64), W.astype(np.float64))
    assert "cl_khr_fp64" in str(raised.value)


def test_tensor_over_the_device_allocation_limit(monkeypatch, device):
    """One image too big for an allocation is refused; so is a device-array call whose output would be."""
    target = platforms.resolve(device.device)
    small = dataclasses.replace(target, info=dataclasses.replace(target.info, max_alloc_bytes=1000))
    monkeypatch.setattr(platforms, "resolve", lambda spec=None: small)
    with pytest.raises(ValueError, match="a single image of .* exceeds the device's allocation limit of 1000 bytes"):
        clconv.conv2d(X, W)
    x_dev = cl_array.to_device(small.queue, np.ones((4, 1, 8, 8), np.float32))
    with pytest.raises(ValueError, match="y of shape .* more than the 1000 bytes"):
        clconv.conv2d(x_dev, np.ones((6, 1, 1, 1), np.float32), device=small)
