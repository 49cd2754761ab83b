"""Channels-last inputs of stride-1 layers that convert them: converting against a channels-lanes tile in place.

    python bench/lanes_in_place.py DEVICE [LAYER ...]
    e.g. python bench/lanes_in_place.py pocl:2:0 ResNet-18/layer3.conv

The plan's tiles for a stride-1 3x3 forward pass or input gradient run their vectors along the columns, which
channels-last memory does not give, so those passes convert a channels-last input first. The kernels with the
channels they write in the lanes (cl/conv2d_channel_lanes.cl, cl/conv2d_grad_input_channel_lanes.cl) read it in
place instead. For each dense stride-1 3x3 layer of the suite (or the layers named), end to end from NumPy, fp32,
at the suite's batch size, alternating: channels-first inputs; channels-last inputs converted into channels-first
memory first, on the default plan's tile; channels-last inputs and lanes tiles of 24 and 28 accumulators (read in
place; an input gradient's default on the CPUs whose tiles have 24, see tiled.grad_input_lanes_in_place_config).
Printed: milliseconds, and each lanes tile's speed-up over converting.
"""

import functools
import sys

from channels_last import alternating_seconds, channels_last, converting

from clconv import check, layers, planning, platforms
from clconv.algorithms import tiled
from clconv.params import PASSES, call_plan

LANES_PASSES = ("forward", "grad_input")


def dense_stride_one_3x3(layer) -> bool:
    p = layer.params(1)
    return layer.kind == "conv2d" and (p.R, p.S) == (3, 3) and p.stride == (1, 1) and p.groups == 1


def lanes_plan(p, target, pass_name: str, accumulators: int):
    """A plan whose ``pass_name`` runs a channels-lanes tile of ``accumulators`` vectors, and that tile's name."""
    lanes = tiled.widest_vector(p, target.info)
    channels = p.K_per_group if pass_name == "forward" else p.C_per_group
    row = p.Q if pass_name == "forward" else tiled.div_up(p.W, p.stride[1])
    vectors, columns = tiled.channel_lanes_tile(channels, row, lanes, accumulators)
    config = tiled.CorrelationConfig(vec=lanes, block_k=vectors, block_v=columns, local=(1, 1, 1),
                                     channel_lanes=True)
    choices = {name: planning.Choice("tiled", config if name == pass_name else None, "requested") for name in PASSES}
    plan = planning.Conv2DPlan(p, target, choices=choices)
    if plan.channels_last_reader(pass_name, {"x", "grad_output"}) != "channel lanes":
        return None, None
    return plan, f"lanes {vectors}x{columns}"


def converted(plan, pass_name: str, inputs: dict):
    with converting():
        return call_plan(plan, pass_name, inputs)


def main(argv):
    target = platforms.resolve(argv[0])
    print(f"{target.info.summary()}\nms end to end from NumPy, fp32: channels-first | channels-last converted | "
          f"channels-last, lanes tiles in place (speed-up over converting)")
    chosen = [layer for layer in layers.SUITE
              if dense_stride_one_3x3(layer) and (not argv[1:] or layer.label in argv[1:])]
    for layer in chosen:
        p = layer.params(layer.batch_for())
        first = {name: value for name, value in check.layer_inputs(p).items() if name != "bias"}
        last = {name: channels_last(value) if name in ("x", "grad_output") else value for name, value in first.items()}
        default = planning.plan_for(p, target)
        for pass_name in LANES_PASSES:
            runs = {"channels-first": functools.partial(call_plan, default, pass_name, first),
                    "converted": functools.partial(converted, default, pass_name, last)}
            for accumulators in (24, 28):
                plan, name = lanes_plan(p, target, pass_name, accumulators)
                if plan is not None:
                    runs[name] = functools.partial(call_plan, plan, pass_name, last)
            ms = {name: seconds * 1e3 for name, seconds in alternating_seconds(runs).items()}
            lanes = "  ".join(f"{name} {ms[name]:7.2f} ({ms['converted'] / ms[name]:.2f}x)"
                              for name in runs if name.startswith("lanes"))
            print(f"{layer.label:28s} N={p.N:<3d} {pass_name:10s} {ms['channels-first']:7.2f} | "
                  f"{ms['converted']:7.2f} | {lanes}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
