"""Channels-last inputs of the suite's 1x1 layers: read in place against converted first, and channels-first.

    python bench/channels_last.py DEVICE          e.g. python bench/channels_last.py pocl:2:0

For each stride-1 1x1 layer of the suite (clconv.layers) and each pass that reads a channels-last input in
place (clconv.channels_last_pointwise), end to end from NumPy, fp32, at the suite's batch size: x and
grad_output channels-first; channels-last and read in place; channels-last and converted into channels-first
memory first (the path every other layer takes); and, where PyTorch is installed, PyTorch on channels-last
tensors (torch.channels_last, its result channels-last too). The runs take turns, three rounds of medians of
5; printed: milliseconds and the speed-up of reading in place over converting.
"""

import sys
import time

import numpy as np

import clconv
from clconv import channels_last_pointwise, check, layers, platforms

PASSES = ("forward", "grad_input", "grad_weight")


def channels_last(array: np.ndarray) -> np.ndarray:
    return np.moveaxis(np.ascontiguousarray(np.moveaxis(array, 1, -1)), -1, 1)


def alternating_seconds(runs: dict, rounds: int = 3, repeats: int = 5) -> dict:
    """For each of ``runs`` (name: a call that waits for its result), the smallest of ``rounds`` medians of
    ``repeats`` calls, the runs taking turns round by round."""
    best = dict.fromkeys(runs, float("inf"))
    for run in runs.values():
        run()
    for _ in range(rounds):
        for name, run in runs.items():
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                run()
                times.append(time.perf_counter() - start)
            best[name] = min(best[name], sorted(times)[repeats // 2])
    return best


def clconv_runs(pass_name: str, p, data: dict, device) -> dict:
    """The three clconv runs of a pass: channels-first, channels-last in place, channels-last converted."""
    last = {name: channels_last(data[name]) for name in ("x", "grad_output")}

    def call(inputs):
        if pass_name == "forward":
            return clconv.conv2d(inputs["x"], data["weight"], device=device)
        if pass_name == "grad_input":
            return clconv.conv2d_grad_input(inputs["grad_output"], data["weight"], p.input_shape, device=device)
        return clconv.conv2d_grad_weight(inputs["x"], inputs["grad_output"], p.weight_shape, device=device)

    def converted():
        in_place = channels_last_pointwise.reads_in_place
        channels_last_pointwise.reads_in_place = lambda *args: False
        try:
            return call(last)
        finally:
            channels_last_pointwise.reads_in_place = in_place

    return {"channels-first": lambda: call(data), "in place": lambda: call(last), "converted": converted}


def torch_run(pass_name: str, p, data: dict):
    """PyTorch's pass on channels-last tensors, or None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None
    tensors = {name: torch.from_numpy(channels_last(value) if value.ndim == 4 else value)
               for name, value in data.items()}
    if pass_name == "forward":
        return lambda: torch.nn.functional.conv2d(tensors["x"], tensors["weight"]).numpy()
    if pass_name == "grad_input":
        return lambda: torch.nn.grad.conv2d_input(p.input_shape, tensors["weight"], tensors["grad_output"]).numpy()
    return lambda: torch.nn.grad.conv2d_weight(tensors["x"], p.weight_shape, tensors["grad_output"]).numpy()


def main(argv):
    target = platforms.resolve(argv[0])
    print(f"{target.info.summary()}\nms end to end from NumPy, fp32: channels-first | channels-last in place | "
          f"converted first (in-place speed-up) | PyTorch channels-last")
    pointwise = [layer for layer in layers.SUITE if layer.kind == "conv2d" and (layer.R, layer.S) == (1, 1)
                 and layer.stride == 1]
    for layer in pointwise:
        p = layer.params(layer.batch_for())
        data = check.layer_inputs(p)
        for pass_name in PASSES:
            runs = clconv_runs(pass_name, p, data, target.info.device)
            peer = torch_run(pass_name, p, data)
            if peer is not None:
                runs["PyTorch"] = peer
            ms = {name: seconds * 1e3 for name, seconds in alternating_seconds(runs).items()}
            torch_ms = f"{ms['PyTorch']:8.2f}" if "PyTorch" in ms else "       -"
            print(f"{layer.label:30s} N={p.N:<3d} {pass_name:11s} {ms['channels-first']:8.2f} | {ms['in place']:8.2f} "
                  f"| {ms['converted']:8.2f} ({ms['converted'] / ms['in place']:.2f}x) | {torch_ms}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
