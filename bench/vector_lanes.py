"""Tiled kernels with the heuristic's tiles at several vector widths, device-resident GFLOP/s.

    python bench/vector_lanes.py DEVICE [LANES,LANES...]      e.g. python bench/vector_lanes.py pocl 8,16

Measures what the 16-lane default buys over narrower vectors on one device (the widths must compile
there; a width that fails its kernel check is reported, not run).
"""

import dataclasses
import sys

import numpy as np

from clconv import check, platforms, tuner
from clconv.algorithms.tiled import default_config
from clconv.params import Conv2DParams
from clconv.planning import Choice, Conv2DPlan

LAYERS = (  # (input shape, weight shape, padding): ResNet-18 layer1 and layer3 3x3, a ResNet-50 1x1
    ((8, 64, 28, 28), (64, 64, 3, 3), 1),
    ((8, 128, 14, 14), (128, 128, 3, 3), 1),
    ((8, 256, 14, 14), (64, 256, 1, 1), 0),
)


def main(argv):
    target = platforms.resolve(argv[0])
    widths = [int(v) for v in (argv[1] if len(argv) > 1 else "8,16").split(",")]
    print(f"{target.info.summary()}\nGFLOP/s, median of 7, fp32")
    for input_shape, weight_shape, padding in LAYERS:
        params = Conv2DParams.create(input_shape, weight_shape, 1, padding, 1, 1, np.float32)
        tensors = tuner.to_device(target.queue, check.layer_inputs(params))
        cells = []
        for pass_name in ("forward", "grad_input", "grad_weight"):
            tile = default_config(params, target.info, pass_name)
            for lanes in widths:
                choice = Choice("tiled", dataclasses.replace(tile, vec=lanes), "requested")
                plan = Conv2DPlan(params, target, fallback=False, choices={pass_name: choice})
                try:
                    seconds = tuner.device_seconds(target.queue, tuner.pass_runner(plan, pass_name, tensors), 7)
                except RuntimeError as error:
                    cells.append(f"{pass_name} {lanes}: failed ({str(error)[:60]})")
                    continue
                cells.append(f"{pass_name} {lanes}: {params.flops(pass_name) / seconds / 1e9:.1f}")
        print(f"{params.C}->{params.K} {params.H}x{params.W} {params.label:20} " + "  ".join(cells))


if __name__ == "__main__":
    main(sys.argv[1:])
