"""Device-resident calls with new results: from the Target's memory pool against fresh buffers, timed in turns in
one process.

    python bench/memory_pool.py DEVICE [ROUNDS] [LAYER ...]

    e.g. python bench/memory_pool.py intel 4 MobileNet-v2/features.14.dw ResNet-50/layer1.0.conv1

Each pass of each suite layer (default: one memory-heavy and one compute-heavy layer per network family) runs on
device arrays and returns a new device array, the way a framework calls it, once with the pool (platforms.Target's
``memory_pool``) and once on the same device without one, each the best of ROUNDS medians (bench/alternating.py,
the order turned round every other round); then whether both gave the same bytes.
"""

import dataclasses
import functools
import sys

from alternating import alternating_seconds

from clconv import check, layers, platforms, tuner
from clconv.params import call_plan
from clconv.planning import Conv2DPlan

DEFAULT_LAYERS = ("MobileNet-v2/features.2.dw-s2", "MobileNet-v2/features.14.dw", "ResNet-50/layer1.0.conv1",
                  "ResNet-18/layer2.0.conv1", "VGG-16/conv3_2")
PASSES = ("forward", "grad_input", "grad_weight")


def compare(targets: dict, name: str, rounds: int) -> None:
    layer = layers.select([name])[0]
    p = layer.layer_kind.conv2d(layer.params(layer.batch_for()))
    queue = targets["pool"].queue
    device = tuner.to_device(queue, check.layer_inputs(p))
    plans = {side: Conv2DPlan(p, target) for side, target in targets.items()}

    def run(side, pass_name):
        result = call_plan(plans[side], pass_name, device)
        queue.finish()
        return result

    for pass_name in PASSES:
        same = run("fresh", pass_name).get().tobytes() == run("pool", pass_name).get().tobytes()
        seconds = alternating_seconds({side: functools.partial(run, side, pass_name) for side in plans}, rounds=rounds)
        fresh, pooled = seconds["fresh"], seconds["pool"]
        print(f"{name:30s} N={p.N:<3d} {pass_name:11s} fresh {fresh * 1e3:8.2f} ms  pool {pooled * 1e3:8.2f} ms "
              f"({fresh / pooled:.2f}x, {p.flops(pass_name) / pooled / 1e9:.1f} GFLOP/s)  same bytes {same}",
              flush=True)


def main(argv):
    target = platforms.resolve(argv[0])
    rounds = int(argv[1]) if len(argv) > 1 else 4
    targets = {"fresh": dataclasses.replace(target, memory_pool=None), "pool": target}
    print(f"{target.info.summary()}\ndevice-resident, new results: fresh buffers -> the pool, fp32, best of {rounds} "
          "medians")
    for name in argv[2:] or DEFAULT_LAYERS:
        compare(targets, name, rounds)


if __name__ == "__main__":
    main(sys.argv[1:])
