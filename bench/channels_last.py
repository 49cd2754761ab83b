"""Channels-last inputs of the suite's convolutions: read in place against converted first, and channels-first.

    python bench/channels_last.py DEVICE [LAYER ...]
    e.g. python bench/channels_last.py pocl:2:0 ResNet-18/layer1.conv

For each 1-D, 2-D and 3-D convolution of the suite (clconv.layers; or the layers named) and each pass, end to end
from NumPy, fp32, at the suite's batch size: x and grad_output channels-first; channels-last (NLC, NHWC, NDHWC),
read in place where a kernel reads them so and else converted; channels-last and converted into channels-first
memory first; and, where PyTorch is installed, PyTorch on the same channels-last tensors (torch.channels_last and
channels_last_3d for 2-D and 3-D; its result channels-last too). The runs take turns, three rounds of medians of
5; printed: milliseconds, the speed-up of the default over converting, and what read in place
(Conv2DPlan.channels_last_reader: "channel lanes", "pointwise", "depthwise"; "depth unfolding" for a 3-D layer,
whose unfolding reads x and whose grad_output is converted straight into the 2-D layer's layout; "-": none,
both runs convert).
"""

import contextlib
import sys

import numpy as np
from alternating import alternating_seconds

import clconv
from clconv import arrays, bench_peers, check, layers, planning, platforms
from clconv.params import call_function

PASSES = ("forward", "grad_input", "grad_weight")


def channels_last(array: np.ndarray) -> np.ndarray:
    return np.moveaxis(np.ascontiguousarray(np.moveaxis(array, 1, -1)), -1, 1)


@contextlib.contextmanager
def converting():
    """Within it, every channels-last input is converted into channels-first memory first: no kernel reads one in
    place."""
    names = arrays.CallArrays.channels_last_names
    arrays.CallArrays.channels_last_names = lambda self: set()  # every input goes through device_tensor
    try:
        yield
    finally:
        arrays.CallArrays.channels_last_names = names


def clconv_runs(pass_name: str, p, data: dict, device) -> dict:
    """The three clconv runs of a pass: channels-first, channels-last (the default path), channels-last converted."""
    last = dict(data, **{name: channels_last(data[name]) for name in ("x", "grad_output")})

    def call(inputs):
        return call_function(clconv, pass_name, p, {name: value for name, value in inputs.items() if name != "bias"},
                             device=device)

    def converted():
        with converting():
            return call(last)

    return {"channels-first": lambda: call(data), "in place": lambda: call(last), "converted": converted}


def torch_run(pass_name: str, layer, p, data: dict):
    """PyTorch's pass on channels-last tensors, or None without PyTorch."""
    peer = bench_peers.TorchPeer()
    if peer.applies(layer, p):
        return None
    run, _ = peer.runner(pass_name, layer, p, {name: channels_last(value) if value.ndim >= 3 else value
                                                for name, value in data.items()})
    return run


def reader_name(layer, p, pass_name: str, device) -> str:
    """What reads the pass's channels-last x and grad_output in place, or "-"."""
    if layer.kind == "conv3d":
        return "depth unfolding"
    plan = planning.plan_for(p if layer.kind == "conv2d" else p.layer, platforms.resolve(device))
    return plan.channels_last_reader(pass_name, {"x", "grad_output"}) or "-"


def main(argv):
    target = platforms.resolve(argv[0])
    print(f"{target.info.summary()}\nms end to end from NumPy, fp32: channels-first | channels-last (default) | "
          f"converted first (default's speed-up, kernel read in place) | PyTorch channels-last")
    chosen = [layer for layer in layers.SUITE
              if layer.kind in ("conv1d", "conv2d", "conv3d") and (not argv[1:] or layer.label in argv[1:])]
    for layer in chosen:
        p = layer.params(layer.batch_for())
        data = check.layer_inputs(p)
        for pass_name in PASSES:
            runs = clconv_runs(pass_name, p, data, target.info.device)
            peer = torch_run(pass_name, layer, p, data)
            if peer is not None:
                runs["PyTorch"] = peer
            ms = {name: seconds * 1e3 for name, seconds in alternating_seconds(runs).items()}
            torch_ms = f"{ms['PyTorch']:8.2f}" if "PyTorch" in ms else "       -"
            print(f"{layer.label:30s} N={p.N:<3d} {pass_name:11s} {ms['channels-first']:8.2f} | {ms['in place']:8.2f} "
                  f"| {ms['converted']:8.2f} ({ms['converted'] / ms['in place']:.2f}x, "
                  f"{reader_name(layer, p, pass_name, target.info.device)}) | {torch_ms}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
