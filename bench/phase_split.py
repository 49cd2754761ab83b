"""Phase-split tiles (clconv/algorithms/phases.py) against the default tiles on the strided suite layers.

    python bench/phase_split.py DEVICE          e.g. python bench/phase_split.py pocl:2:0

For each strided pass of the suite that can be split, the 2-D layer behind the suite layer runs with the
heuristic's tile and with the phase split (the phased layer's heuristic tile), alternating, three rounds of
medians of 5; printed: device-resident GFLOP/s (the split's copies included) and end to end from NumPy.
"""

import dataclasses
import functools
import sys

from alternating import alternating_seconds

from clconv import check, layers, platforms, tuner
from clconv.algorithms.phases import phase_split
from clconv.algorithms.tiled import default_config
from clconv.params import PASSES, call_plan
from clconv.planning import Choice, Conv2DPlan

JOBS = (("ResNet-18/conv1", "grad_weight"), ("ResNet-18/layer2.0.conv1", "grad_weight"),
        ("ResNet-18/layer2.0.downsample", "forward"), ("ResNet-18/layer2.0.downsample", "grad_weight"),
        ("MobileNet-v2/features.2.dw-s2", "grad_weight"), ("wav2vec2/conv_layers.1", "grad_weight"),
        ("DCGAN/main.9", "grad_input"), ("DCGAN/main.9", "grad_weight"))


def finished(queue, plan, pass_name: str, tensors) -> None:
    """One call of a pass, waited for."""
    call_plan(plan, pass_name, tensors)
    queue.finish()


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
            runs = {name: functools.partial(finished, queue, plan, pass_name, tensors)
                    for name, plan in zip(("default", "phase split"), plans)}
            seconds = alternating_seconds(runs)
            plain, phased = seconds["default"], seconds["phase split"]
            cells.append(f"{flops / plain / 1e9:6.1f} -> {flops / phased / 1e9:6.1f} ({plain / phased:.2f}x)")
        workspace = plans[1].workspace_bytes[pass_name] / 1e6
        print(f"{label:32s} {layer_pass:11s} device {cells[0]}   end to end {cells[1]}   workspace {workspace:.1f} MB")


if __name__ == "__main__":
    main(sys.argv[1:])
