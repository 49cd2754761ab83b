"""NumPy inputs off the device's alignment by whole elements, end to end: read in place through a buffer that starts
on the boundary before them (arrays.CallArrays._wrap_input) against an aligned copy of each, timed in turns in one
process.

    python bench/unaligned_inputs.py DEVICE [ROUNDS] [LAYER ...]

    e.g. python bench/unaligned_inputs.py intel 4

Only a device that asks NumPy inputs for an alignment (Intel's CPU runtime: a page) has anything to compare; NumPy's
large arrays start 16 bytes past a page. Each pass of each suite layer, each the best of ROUNDS medians
(bench/alternating.py, the order turned round every other round), and whether both gave the same bytes.
"""

import contextlib
import functools
import sys
from unittest import mock

from alternating import alternating_seconds

from clconv import arrays, check, layers, platforms
from clconv.params import call_plan
from clconv.planning import Conv2DPlan

DEFAULT_LAYERS = ("MobileNet-v2/features.1.dw", "ResNet-50/layer1.0.conv1", "ResNet-18/layer1.conv", "VGG-16/conv3_2")
PASSES = ("forward", "grad_input", "grad_weight")
WRAP_INPUT = arrays.CallArrays._wrap_input


def wrap_copying(self, name, host):
    """Inputs as they were wrapped before they were read in place: one off the alignment is copied, into the plan's
    kept memory (else fresh), and the aligned copy wrapped."""
    if host.ctypes.data % self.target.info.host_pointer_alignment:
        host = self._aligned_copy(name, host)
    return WRAP_INPUT(self, name, host)


def compare(target, name: str, rounds: int) -> None:
    layer = layers.select([name])[0]
    p = layer.layer_kind.conv2d(layer.params(layer.batch_for()))
    host = check.layer_inputs(p)
    alignment = target.info.host_pointer_alignment
    offsets = " ".join(f"{key} +{value.ctypes.data % alignment}" for key, value in host.items())
    plan = Conv2DPlan(p, target)

    def run(side, pass_name):
        copying = mock.patch.object(arrays.CallArrays, "_wrap_input", wrap_copying)
        with copying if side == "copy" else contextlib.nullcontext():
            return call_plan(plan, pass_name, host)

    for pass_name in PASSES:
        same = run("copy", pass_name).tobytes() == run("in place", pass_name).tobytes()
        seconds = alternating_seconds({side: functools.partial(run, side, pass_name) for side in ("copy", "in place")},
                                      rounds=rounds)
        copied, in_place = seconds["copy"], seconds["in place"]
        print(f"{name:30s} N={p.N:<3d} {pass_name:11s} copy {copied * 1e3:8.2f} ms  in place {in_place * 1e3:8.2f} "
              f"ms ({copied / in_place:.2f}x)  same bytes {same}  ({offsets})", flush=True)


def main(argv):
    target = platforms.resolve(argv[0])
    rounds = int(argv[1]) if len(argv) > 1 else 4
    print(f"{target.info.summary()}\nend to end from NumPy inputs off a {target.info.host_pointer_alignment}-byte "
          f"boundary by whole elements: aligned copies -> in place, fp32, best of {rounds} medians")
    for name in argv[2:] or DEFAULT_LAYERS:
        compare(target, name, rounds)


if __name__ == "__main__":
    main(sys.argv[1:])
