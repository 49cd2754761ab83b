"""Channels-last inputs of passes whose plan tile converts them: converting against a channels-lanes tile in place.

    python bench/lanes_in_place.py DEVICE [LAYER ...]
    e.g. python bench/lanes_in_place.py pocl:2:0 ResNet-18/layer3.conv

The heuristic's tiles for most stride-1 forward passes and input gradients run their vectors along the columns, and
those of weight gradients with few input channels along the positions, which channels-last memory does not give, so
those passes convert a channels-last input first. The kernels with the channels they write in the lanes
(cl/conv2d_channel_lanes.cl, cl/conv2d_grad_input_channel_lanes.cl, cl/conv2d_grad_weight_channel_lanes.cl) read it
in place instead. For each 2-D suite convolution (or the layers named) and each pass whose heuristic tile converts
and where a lanes tile applies, end to end from NumPy, fp32, at the suite's batch size, alternating: channels-first
inputs; channels-last inputs converted into channels-first memory first, on the heuristic's tile; channels-last
inputs on lanes tiles (forward pass and input gradient: 24 and 28 accumulators; weight gradient: the CPU table's),
read in place. Which of them the plan runs by default is tiled.lanes_in_place_config's choice (last column). Printed:
milliseconds, and each lanes tile's speed-up over converting.
"""

import functools
import sys

from alternating import alternating_seconds
from channels_last import channels_last, converting

from clconv import check, layers, planning, platforms
from clconv.algorithms import tiled
from clconv.params import PASSES, call_plan


def lanes_configs(p, info, pass_name: str) -> dict:
    """The lanes tiles to measure for a pass, by name (none where no lanes kernel applies)."""
    lanes = tiled.widest_vector(p, info)
    if pass_name == "grad_weight":
        if not tiled.grad_weight_lanes_apply(p, lanes):
            return {}
        config = tiled.grad_weight_lanes_config(p, info, lanes)
        return {f"lanes {config.block_k}x{config.block_c}": config}
    applies = tiled.channel_lanes_applies if pass_name == "forward" else tiled.grad_input_lanes_apply
    if not applies(p, lanes):
        return {}
    channels = p.K_per_group if pass_name == "forward" else p.C_per_group
    row = p.Q if pass_name == "forward" else tiled.div_up(p.W, p.stride[1])
    configs = {}
    for accumulators in (24, 28):
        vectors, columns = tiled.channel_lanes_tile(channels, row, lanes, accumulators)
        configs[f"lanes {vectors}x{columns}"] = tiled.CorrelationConfig(vec=lanes, block_k=vectors, block_v=columns,
                                                                        local=(1, 1, 1), channel_lanes=True)
    return configs


def lanes_plans(p, target, pass_name: str) -> dict:
    """Plans running each lanes tile of a pass that reads its channels-last input in place there, by tile name."""
    plans = {}
    for name, config in lanes_configs(p, target.info, pass_name).items():
        choices = {other: planning.Choice("tiled", config if other == pass_name else None, "requested")
                   for other in PASSES}
        plan = planning.Conv2DPlan(p, target, choices=choices)
        if plan.channels_last_reader(pass_name, {"x", "grad_output"}) == "channel lanes":
            plans[name] = plan
    return plans


def converts(plan, pass_name: str) -> bool:
    """Whether the heuristic's own tile for a pass converts its channels-last inputs (no 1x1 or depthwise kernel
    reads them in place either)."""
    if plan._implementation(pass_name).reads_channels_last(pass_name):
        return False
    return plan.channels_last_reader(pass_name, {"x", "grad_output"}) in (None, "channel lanes")


def converted(plan, pass_name: str, inputs: dict):
    with converting():
        return call_plan(plan, pass_name, inputs)


def main(argv):
    target = platforms.resolve(argv[0])
    print(f"{target.info.summary()}\nms end to end from NumPy, fp32: channels-first | channels-last converted | "
          f"channels-last, lanes tiles in place (speed-up over converting) | the plan's choice")
    chosen = [layer for layer in layers.SUITE if layer.kind == "conv2d" and (not argv[1:] or layer.label in argv[1:])]
    for layer in chosen:
        p = layer.params(layer.batch_for())
        first = {name: value for name, value in check.layer_inputs(p).items() if name != "bias"}
        last = {name: channels_last(value) if name in ("x", "grad_output") else value for name, value in first.items()}
        default = planning.plan_for(p, target)
        for pass_name in PASSES:
            if pass_name == "grad_bias" or not converts(default, pass_name):
                continue
            plans = lanes_plans(p, target, pass_name)
            if not plans:
                continue
            runs = {"channels-first": functools.partial(call_plan, default, pass_name, first),
                    "converted": functools.partial(converted, default, pass_name, last)}
            runs.update({name: functools.partial(call_plan, plan, pass_name, last) for name, plan in plans.items()})
            ms = {name: seconds * 1e3 for name, seconds in alternating_seconds(runs).items()}
            lanes = "  ".join(f"{name} {ms[name]:7.2f} ({ms['converted'] / ms[name]:.2f}x)" for name in plans)
            choice = default.channels_last_reader(pass_name, {"x", "grad_output"}) or "converts"
            print(f"{layer.label:28s} N={p.N:<3d} {pass_name:11s} {ms['channels-first']:7.2f} | "
                  f"{ms['converted']:7.2f} | {lanes} | {choice}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
