"""Convolution algorithms: each module drives the kernels of one family for all passes.

Every algorithm runs every valid layer (:class:`~clconv.params.Conv2DParams`) on every device, so a plan
may pick any of them for any pass. An algorithm class has a ``name`` and owns its search space: a pass
runs with one of its configs (a tile; None stands for the one its own heuristic picks for the layer and
device), and the class answers

- ``candidates(params, info, pass_name)``: the configs the tuner times for a layer on a device;
- ``config_record(config)``: the JSON fields a tuning record stores for a config, and
  ``config_from_record(pass_name, fields)`` the config they describe (it raises TypeError for fields it
  does not know, as from another clconv version);
- ``narrower(config)``: the next-best variant of a config whose kernel failed its check on a device, or
  None when there is none.

Instantiated for (params, target, configs, max_workspace_bytes) it builds its kernels on first use;
``workspace_bytes(pass_name)`` says what a pass allocates besides its inputs and output, and its
``forward``, ``grad_input``, ``grad_weight`` and ``grad_bias`` methods take :class:`DeviceTensor` tensors,
enqueue work on ``target.queue`` and return the last event.
"""

from .base import DeviceTensor
from .direct import DirectAlgorithm
from .tiled import TiledAlgorithm

ALGORITHMS = {algorithm.name: algorithm for algorithm in (DirectAlgorithm, TiledAlgorithm)}

# The order a plan prefers them in: an untuned layer runs the first, and a pass whose kernels fail their
# check on a device ends at the last, the simplest.
PREFERENCE = (TiledAlgorithm.name, DirectAlgorithm.name)


def get_algorithm(name: str):
    if name not in ALGORITHMS:
        raise ValueError(f"algo must be 'auto' or one of {sorted(ALGORITHMS)}, got {name!r}")
    return ALGORITHMS[name]


__all__ = ["ALGORITHMS", "PREFERENCE", "DeviceTensor", "DirectAlgorithm", "TiledAlgorithm", "get_algorithm"]
