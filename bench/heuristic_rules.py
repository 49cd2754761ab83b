"""Two of the CPU heuristic's rules against what they replaced, timed in turns in one process.

    python bench/heuristic_rules.py DEVICE RULE [ROUNDS] [N,C,H,W,K,R,PAD,GROUPS,STRIDE ...]

    e.g. python bench/heuristic_rules.py pocl single-tap-phases 6
         python bench/heuristic_rules.py intel small-plane-tiles 6

- ``single-tap-phases``: the input gradient of strided layers runs one phase at a time; a phase with a single tap
  on an axis takes step 1 there and so may run on whole rows, against the step of 0 it had before (rows). Default
  layers: stride-2 3x3 depthwise layers of 28 x 28 and 14 x 14 inputs.
- ``small-plane-tiles``: the device's CPU table's own tile on small whole planes (``CpuTiles.small_plane``,
  Intel's runtime on AMD) against the table's other tiles. Default layers: 3x3 layers of 7 x 7 to 16 x 16 planes.
  On a device whose table has no such tile both sides are the same.
- ``padded-lanes``: padded stride-1 forward passes and input gradients with the channels they write in the lanes, 2
  vectors x 7 columns and the row compiled in (``tiled.padded_lanes_pay``), against the tiles along whole planes
  they replaced. Default layers: the benchmark suite's seven dense 3x3 2-D layers, at batches of about 2-4 GFLOP.

Forward pass (small-plane-tiles, padded-lanes) and input gradient (single-tap-phases, small-plane-tiles,
padded-lanes), device-resident with the output given and end to end from NumPy, each the best of ROUNDS medians
(bench/alternating.py, which turns the order round every other round), and whether both sides gave the same bytes.
"""

import contextlib
import dataclasses
import functools
import sys
from unittest import mock

import numpy as np
from alternating import alternating_seconds

from clconv import check, platforms, tuner
from clconv.algorithms import tiled
from clconv.params import Conv2DParams
from clconv.planning import Conv2DPlan

DEFAULT_LAYERS = {
    "single-tap-phases": ("32,192,28,28,192,3,1,192,2", "64,576,14,14,576,3,1,576,2"),
    "small-plane-tiles": ("4,512,7,7,512,3,1,1,1", "16,64,7,7,64,3,1,1,1", "8,128,10,10,128,3,1,1,1",
                          "4,256,14,14,256,3,1,1,1", "8,96,16,16,96,3,1,1,1"),
    "padded-lanes": ("8,64,56,56,64,3,1,1,1", "8,256,14,14,256,3,1,1,1", "8,512,7,7,512,3,1,1,1",
                     "8,128,28,28,128,3,1,1,1", "1,64,224,224,64,3,1,1,1", "1,256,56,56,256,3,1,1,1",
                     "4,512,14,14,512,3,1,1,1"),
}
PASSES = {"single-tap-phases": ("grad_input",), "small-plane-tiles": ("forward", "grad_input"),
          "padded-lanes": ("forward", "grad_input")}
# The tensors each measured pass reads (bias left out), and the shape it writes.
PASS_INPUTS = {"forward": ("x", "weight"), "grad_input": ("grad_output", "weight")}
RESULT_SHAPES = {"forward": "output_shape", "grad_input": "input_shape"}


PHASE_TAPS, CPU_TILES = tiled._phase_taps, tiled.cpu_tiles


def step_zero(phase, pad, dilation, stride, extent):
    """A phase's taps as before single taps took step 1."""
    taps = PHASE_TAPS(phase, pad, dilation, stride, extent)
    return taps._replace(step=dilation // stride) if taps.count == 1 else taps


def replaced_rule(rule: str):
    """Within it, the heuristic as it was before ``rule``."""
    if rule == "single-tap-phases":
        return mock.patch.object(tiled, "_phase_taps", step_zero)
    if rule == "padded-lanes":
        return mock.patch.object(tiled, "padded_lanes_pay", lambda params, lanes, pass_name: False)
    return mock.patch.object(tiled, "cpu_tiles", lambda info: dataclasses.replace(CPU_TILES(info), small_plane=None))


def layer(spec: str) -> Conv2DParams:
    N, C, H, W, K, R, pad, groups, stride = map(int, spec.split(","))
    return Conv2DParams.create((N, C, H, W), (K, C // groups, R, R), padding=pad, groups=groups, stride=stride)


def compare(target, rule: str, spec: str, p: Conv2DParams, pass_name: str, host: dict, device: dict, rounds: int):
    """Print one pass of one layer: before -> with the rule, device-resident and end to end."""
    queue = target.queue
    out = tuner.to_device(queue, {"out": np.zeros(getattr(p, RESULT_SHAPES[pass_name]), p.dtype)})["out"]
    # One plan a side: a plan picks its tiles on its first call, which for "before" runs under the old rule.
    plans = {"before": Conv2DPlan(p, target), "with": Conv2DPlan(p, target)}

    def run_side(side, tensors, out=None):
        with replaced_rule(rule) if side == "before" else contextlib.nullcontext():
            result = getattr(plans[side], pass_name)(*(tensors[name] for name in PASS_INPUTS[pass_name]), out=out)
            queue.finish()
        return result

    same = run_side("before", host).tobytes() == run_side("with", host).tobytes()
    timed = {}
    for label, tensors, out_array in (("device", device, out), ("e2e", host, None)):
        runs = {side: functools.partial(run_side, side, tensors, out_array) for side in plans}
        timed[label] = alternating_seconds(runs, rounds=rounds)
    device_s, e2e_s = timed["device"], timed["e2e"]
    print(f"{spec:28s} {pass_name:10s} device {device_s['before'] * 1e3:8.2f} -> {device_s['with'] * 1e3:8.2f} "
          f"({device_s['before'] / device_s['with']:.2f}x)  e2e {e2e_s['before'] * 1e3:8.2f} -> "
          f"{e2e_s['with'] * 1e3:8.2f} ({e2e_s['before'] / e2e_s['with']:.2f}x)  same bytes {same}", flush=True)


def main(argv):
    target = platforms.resolve(argv[0])
    rule = argv[1]
    if rule not in DEFAULT_LAYERS:
        raise SystemExit(f"RULE must be one of {', '.join(DEFAULT_LAYERS)}, got {rule!r}")
    rounds = int(argv[2]) if len(argv) > 2 else 6
    print(f"{target.info.summary()}\n{rule}: before -> with the rule, ms, fp32, best of {rounds} medians")
    for spec in argv[3:] or DEFAULT_LAYERS[rule]:
        p = layer(spec)
        host = check.layer_inputs(p)
        device = tuner.to_device(target.queue, host)
        for pass_name in PASSES[rule]:
            compare(target, rule, spec, p, pass_name, host, device, rounds)


if __name__ == "__main__":
    main(sys.argv[1:])
