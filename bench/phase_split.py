"""Phase-split tiles (clconv/algorithms/phases.py) against the default tiles on the strided suite layers.

    python bench/phase_split.py DEVICE          e.g. python bench/phase_split.py pocl:2:0

For each strided pass of the suite that can be split, the 2-D layer behind the suite layer runs with the
heuristic's tile and with the phase split (the phased layer's heuristic tile), alternating, three rounds of
medians of 5; printed: device-resident GFLOP/s (the split's copies included) and end to end from NumPy.
"""

import dataclasses
import sys
import time

from clconv import check, layers, platforms, tuner
from clconv.algorithms.phases import phase_split
from clconv.algorithms.tiled import default_config
from clconv.params import PASSES, call_plan
from clconv.planning import Choice, Conv2DPlan

JOBS = (("ResNet-18/conv1", "grad_weight"), ("ResNet-18/layer2.0.conv1", "grad_weight"),
        ("ResNet-18/layer2.0.downsample", "forward"), ("ResNet-18/layer2.0.downsample", "grad_weight"),
        ("MobileNet-v2/features.2.dw-s2", "grad_weight"), ("wav2vec2/conv_layers.1", "grad_weight"),
        ("DCGAN/main.9", "grad_input"), ("DCGAN/main.9", "grad_weight"))


def alternating_seconds(queue, runs, rounds: int = 3, repeats: int = 5) -> list:
    """For each of ``runs``, the smallest of ``rounds`` medians of ``repeats`` waited-for calls, the runs taking
    turns round by round so that a slower stretch of the machine falls on both."""
    best = [float("inf")] * len(runs)
    for run in runs:
        run()
        queue.finish()
    for _ in range(rounds):
        for index, run in enumerate(runs):
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                run()
                queue.finish()
                times.append(time.perf_counter() - start)
            best[index] = min(best[index], sorted(times)[repeats // 2])
    return best


def main(argv):
    target = platforms.resolve(argv[0])
    queue = target.queue
    print(f"{target.info.summary()}\nGFLOP/s, fp32: default tile -> phase split (speed-up)")
    for label, layer_pass in JOBS:
        layer = layers.select([label])[0]
        params = layer.layer_kind.conv2d(layer.params(layer.batch_for()))
        pass_name = layer.layer_kind.conv2d_passes[layer_pass]
        split = phase_split(params, pass_name)
        config = dataclasses.replace(default_config(split.phased, target.info, pass_name), phase_split=True)
        plans = [Conv2DPlan(params, target),
                 Conv2DPlan(params, target, choices={name: Choice("tiled", config if name == pass_name else None,
                                                                  "requested") for name in PASSES})]
        host = check.layer_inputs(params)
        device = tuner.to_device(queue, host)
        flops = params.flops(pass_name)
        cells = []
        for tensors in (device, host):
            runs = [lambda plan=plan, tensors=tensors, name=pass_name: call_plan(plan, name, tensors) for plan in plans]
            plain, phased = alternating_seconds(queue, runs)
            cells.append(f"{flops / plain / 1e9:6.1f} -> {flops / phased / 1e9:6.1f} ({plain / phased:.2f}x)")
        workspace = plans[1].workspace_bytes[pass_name] / 1e6
        print(f"{label:32s} {layer_pass:11s} device {cells[0]}   end to end {cells[1]}   workspace {workspace:.1f} MB")


if __name__ == "__main__":
    main(sys.argv[1:])
