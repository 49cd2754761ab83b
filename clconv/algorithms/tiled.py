"""The tiled algorithm: register-tiled, vectorised direct kernels with no im2col workspace.

Forward and input gradient share cl/conv2d_tiled.cl: the input gradient is a correlation of grad_output
with the flipped, channel-swapped kernel, computed one output phase at a time when the stride exceeds 1.
The weight gradient uses cl/conv2d_grad_weight_tiled.cl. On CPUs with 16-lane vectors a pass may instead put
the channels it writes in the lanes, from a copy of the weight or of grad_output made for each call:
cl/conv2d_channel_lanes.cl (forward: strided layers, narrow unpadded rows), cl/conv2d_grad_input_channel_lanes.cl
(strided input gradients) and cl/conv2d_grad_weight_channel_lanes.cl (most weight gradients). Pointwise layers'
forward passes and input gradients run as matrix products (cl/pointwise_product.cl); the bias gradient runs the
direct kernel.

Tile parameters are compile-time constants (``-D``); shapes are kernel arguments, so one build serves
every layer with the same tiles, dtype and device.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import typing

import numpy as np

from .. import channels_last
from ..kernel_signatures import ChannelLanesArgs, CorrelationArgs, GradInputLanesArgs, PointwiseProductArgs
from ..params import Conv2DParams
from .base import AlgorithmBase, DeviceTensor, bias_args, div_up, dtype_accumulator_bytes
from .direct import DirectAlgorithm
from .phases import PhaseRunner, phase_split

# Vector widths OpenCL C has (2, 3, 4, 8, 16); 3 is left out because vload3 packs differently.
VECTOR_WIDTHS = (2, 4, 8, 16)


@dataclasses.dataclass(frozen=True)
class CorrelationConfig:
    """Tile of cl/conv2d_tiled.cl (forward, grad_input) and its work-group shape."""

    vec: int = 16  # lanes of each output vector: consecutive output columns (or plane elements)
    block_k: int = 14  # output channels per work-item
    # Output vectors per channel and work-item: on BLOCK_V consecutive rows, or consecutive on a whole plane.
    block_v: int = 2
    local: tuple = (1, 1, 4)
    # Forward only: run a strided layer as the stride-1 layer on its input's phases, with this tile
    # (algorithms/phases.py; workspace, so only the tuner picks it).
    phase_split: bool = False
    # The BLOCK_V vectors lie side by side on one row instead of one on each of BLOCK_V rows (ALONG_ROW in
    # the kernel; ignored on whole planes): for outputs of one row, such as 1-D layers.
    along_row: bool = False
    # An ungrouped pointwise layer as one matrix product per image (cl/pointwise_product.cl, see
    # matrix_product_applies): block_k output channels (ROWS, 4, 8 or 16) x block_v vectors along the plane.
    matrix_product: bool = False
    # The output channels in the lanes (forward: cl/conv2d_channel_lanes.cl, see channel_lanes_applies), or the input
    # channels (grad_input: cl/conv2d_grad_input_channel_lanes.cl, see grad_input_lanes_apply): block_k vectors of
    # vec channels x block_v consecutive columns (of one phase, for the input gradient) per work-item; its copy of
    # the weight is workspace.
    channel_lanes: bool = False

    def defines(self) -> dict:
        if self.channel_lanes:
            return {"VEC": self.vec, "BLOCK_K": self.block_k, "COLUMNS": self.block_v}
        return {"VEC": self.vec, "BLOCK_K": self.block_k, "BLOCK_V": self.block_v}


@dataclasses.dataclass(frozen=True)
class GradWeightConfig:
    """Tile of cl/conv2d_grad_weight_tiled.cl, its work-group shape and how far the batch is split."""

    vec: int = 16  # output columns per step, as one vector
    block_k: int = 6  # output channels per work-item
    block_c: int = 6  # input channels per work-item
    local: tuple = (1, 1, 1)  # the kernel runs on one axis: the first two are merged into it
    target_items: int = 64  # work-items the batch split aims for
    k_group: int = 1  # output-channel blocks that consecutive work-items take side by side
    # Run a strided layer as the stride-1 layer on its input's phases, with this tile (algorithms/phases.py;
    # workspace, so only the tuner picks it).
    phase_split: bool = False
    # Two neighbouring taps of a row per work-item, from the same loads, where rows are read at stride 2
    # (TAP_PAIR in the kernel; ignored elsewhere, see row_taps).
    tap_pair: bool = False
    # Consecutive taps of a row per work-item, where rows are read at stride 1 (TAP_RUN in the kernel; capped at
    # the row's taps, ignored elsewhere, see row_taps).
    tap_run: int = 1
    # The output channels in the lanes (cl/conv2d_grad_weight_channel_lanes.cl, see grad_weight_lanes_apply):
    # block_k vectors of vec output channels x block_c input channels per work-item, at one tap; its copy of
    # grad_output is workspace. k_group, tap_pair and tap_run do not apply.
    channel_lanes: bool = False

    def defines(self) -> dict:
        if self.channel_lanes:
            return {"VEC": self.vec, "BLOCK_K": self.block_k, "BLOCK_C": self.block_c}
        return {"VEC": self.vec, "BLOCK_K": self.block_k, "BLOCK_C": self.block_c, "K_GROUP": self.k_group}

    @property
    def merged_local(self) -> tuple:
        return one_axis(self.local)

    def pairs_taps(self, p: Conv2DParams) -> bool:
        """Whether the work-items own pairs of neighbouring taps (TAP_PAIR): ``tap_pair`` on a layer where pairs
        apply, with vectors of 4 lanes or more (2 output columns of 2 taps)."""
        return self.tap_pair and tap_pairs_apply(p) and self.vec >= 4

    def row_taps(self, p: Conv2DParams) -> int:
        """Taps of one kernel row a work-item owns: ``tap_run`` pairs (at most enough for S) where it pairs taps,
        ``tap_run`` (at most S) on a layer whose rows are read at column stride 1; else 1."""
        if self.pairs_taps(p):
            return 2 * min(self.tap_run, div_up(p.S, 2))
        return min(self.tap_run, p.S) if p.stride[1] == 1 else 1

    def row_tap_defines(self, p: Conv2DParams) -> dict:
        """The kernel's TAP_PAIR and TAP_RUN for ``row_taps``."""
        taps = self.row_taps(p)
        if self.pairs_taps(p):
            return {"TAP_PAIR": 1, "TAP_RUN": taps // 2}
        return {"TAP_RUN": taps} if taps > 1 else {}

    def items(self, p: Conv2DParams) -> int:
        """Work-items per batch chunk."""
        if self.channel_lanes:
            return self.tap_items(p) * self.k_items(p)
        return (div_up(p.C_per_group, self.block_c) * p.R * div_up(p.S, self.row_taps(p)) * p.groups
                * div_up(p.K_per_group, self.block_k))

    def tap_items(self, p: Conv2DParams) -> int:
        """With the output channels in the lanes: work-items per block of output channels (input-channel blocks
        x taps), the first axis of the kernel's NDRange."""
        return div_up(p.C_per_group, self.block_c) * p.R * p.S

    def k_items(self, p: Conv2DParams) -> int:
        """With the output channels in the lanes: blocks of output channels, the NDRange's second axis."""
        return p.groups * div_up(p.K_per_group, self.vec * self.block_k)


def tap_pairs_apply(p: Conv2DParams) -> bool:
    """Whether the weight gradient can pair neighbouring taps of a row (cl/conv2d_grad_weight_tiled.cl's
    TAP_PAIR): rows read at column stride 2, dilation 1 along them, two taps or more."""
    return p.stride[1] == 2 and p.dilation[1] == 1 and p.S >= 2


def tap_run_length(taps: int, most: int) -> int:
    """The length of the runs of equal length, at most ``most``, that cover a kernel row of ``taps`` taps (the last
    one may be shorter): 5 taps, at most 6: one run of 5; 7 taps: 4 and 3."""
    return div_up(taps, div_up(taps, most))


def narrower_config(config):
    """The same tile with half the vector lanes, or None at the narrowest: the next-best variant when a
    device's compiler cannot build a tile (kernel_check)."""
    index = VECTOR_WIDTHS.index(config.vec) if config.vec in VECTOR_WIDTHS else 0
    return dataclasses.replace(config, vec=VECTOR_WIDTHS[index - 1]) if index > 0 else None


def one_axis(local: tuple) -> tuple:
    """A work-group shape with its first two axes merged into the first, for kernels run on one axis."""
    return (local[0] * local[1], 1, local[2])


CONFIG_TYPES = {"forward": CorrelationConfig, "grad_input": CorrelationConfig, "grad_weight": GradWeightConfig}
KERNELS = {"forward": "conv2d_tiled", "grad_input": "conv2d_tiled", "grad_weight": "conv2d_grad_weight_tiled"}
# The passes that may run with the channels they write in the lanes, and the kernel each then runs.
CHANNEL_LANES_KERNELS = {"forward": "conv2d_channel_lanes", "grad_input": "conv2d_grad_input_channel_lanes",
                         "grad_weight": "conv2d_grad_weight_channel_lanes"}
# The input each of those kernels also reads in its channels-last memory (the weight gradient's x too).
CHANNELS_LAST_READS = {"forward": "x", "grad_input": "grad_output", "grad_weight": "grad_output"}
# The most of a device's memory their copies may take with no max_workspace_bytes: beyond it (grad_output of a large
# batch) the pass runs the other tiles rather than risk the device's memory for a 2x.
LANES_COPY_MEMORY_SHARE = 1 / 8


# Input channels per group from which forward and input gradient run along whole planes (FLAT_PLANE).
FLAT_PLANE_MIN_CHANNELS = 8

# Channel blocks the heuristic picks from; a short list keeps the number of distinct builds small.
CHANNEL_BLOCKS = (1, 2, 3, 4, 6, 8, 14, 28)


@dataclasses.dataclass(frozen=True)
class CpuTiles:
    """The CPU heuristic's register tiles for one kind of CPU and OpenCL implementation, as measured there."""

    accumulators: int  # accumulator vectors of a forward or input-gradient tile
    channels: int  # output channels of that tile (a listed block); the rest of it goes to rows or plane vectors
    pointwise_channels: int  # the same on 1x1 layers, whose single tap gives each input vector one use per channel
    grad_weight_accumulators: int  # block_k * block_c (times a run's taps) of a weight-gradient tile
    grad_weight_pair_accumulators: int  # the same with paired taps (times the pairs), see GradWeightConfig.tap_pair
    matrix_product: tuple  # (rows, vectors) of cl/pointwise_product.cl's tile, see matrix_product_tile
    # Its tile on planes of at most SMALL_PLANE positions, where that differs.
    small_plane_matrix_product: tuple | None = None
    # (channels, vectors) of a forward or input-gradient tile on whole planes of at most SMALL_PLANE positions, where
    # that differs from the tile the accumulators give (and covers the plane with no more vectors than that one).
    small_plane: tuple | None = None
    grad_weight_channels: int = 6  # the most input channels of a weight-gradient tile (a listed block)
    # (vectors of output channels, input channels) of a weight-gradient tile with the output channels in the lanes
    # (cl/conv2d_grad_weight_channel_lanes.cl); a layer with fewer vectors takes more input channels, up to as many
    # accumulators. PoCL 3.1 on Zen 5: 4 x 6 1.3-2.5x faster than 2 x 12 and 3 x 8, 0.98-1.07x of 2 x 14.
    grad_weight_lanes: tuple = (4, 6)
    # The most input channels per group of a stride-1 input gradient that takes the lanes on a channels-last
    # grad_output (lanes_in_place_config): 0 for none, None for any.
    grad_input_lanes_in_place_channels: int | None = 0

    def listed_block(self, largest: int) -> int:
        """The largest listed channel block up to ``largest``."""
        return max(b for b in CHANNEL_BLOCKS if b <= largest)


# Measured on an Intel Xeon (AVX-512) with PoCL: 28 accumulators (with the input vectors and a broadcast
# weight, AVX-512's 32 registers), 14 channels x 2 rows faster than 28 x 1 on every benchmark layer; weight
# gradient 6 x 6 10-30% faster than 4 x 4 on the 3x3 and 1x1 layers. Paired taps: PyPI's PoCL 3.0 on Zen 4,
# which takes these tiles, ran 4 x 3 x 2 pairs 1.13-1.15x faster than 3 x 3 x 2 (not measured on a Xeon).
XEON_TILES = CpuTiles(accumulators=28, channels=14, pointwise_channels=14, grad_weight_accumulators=36,
                      grad_weight_pair_accumulators=24, matrix_product=(8, 2))
# AMD Zen 4 executes a 512-bit operation as two 256-bit halves, and there the tiles that keep every
# accumulator in a register won (PoCL 3.1, interleaved in one process, `perf annotate` showing 6 x 6 weight
# gradients reloading accumulators from the stack): forward 3x3 6 channels x 4 vectors 1.2-1.4x faster
# than 14 x 2, 1x1 8 x 3 1.7x; weight gradient 4 x 6 1.15-1.4x faster than 6 x 6; paired taps 3 x 3 x 2 pairs
# 1.03x faster than 4 x 3 x 2 and 1.15x than 4 x 6 x 1 (ResNet-18 layer2.0.conv1, DCGAN main.9).
ZEN4_POCL_TILES = CpuTiles(accumulators=24, channels=6, pointwise_channels=8, grad_weight_accumulators=24,
                           grad_weight_pair_accumulators=18, matrix_product=(4, 4),
                           grad_input_lanes_in_place_channels=256)
# Intel's runtime on the same CPU: forward 8 x 3 1.2-1.5x faster than 14 x 2; weight-gradient tiles within
# noise of each other, so the Xeon's stay; paired taps 3 x 3 x 2 0.96-1.11x as fast as 4 x 3 x 2. With the output
# channels in the lanes (measured on Zen 5, which takes this table too): 2 vectors x 14 input channels 1.5x faster
# than 4 x 6 on 7x7 and 14x14 planes (ResNet-18 layer4.conv, VGG-16 conv5_2, ResNet-50 layer4.1.conv3), 1.0-1.2x
# on most other suite layers, 0.86-0.95x on ResNet-50 layer1.0.conv1 and ResNet-18 layer1.conv (56x56).
# On whole planes of at most SMALL_PLANE positions, 8 channels x 2 vectors (Zen 4, not measured on Zen 5; alternating
# in one process, end to end, forward / input gradient): ResNet-18 layer4.conv (7 x 7, where 6 x 4 took a plane per
# work-item) 1.13x / 1.12x, layer3.conv and VGG-16 conv5_2 (14 x 14) 1.03x / 1.05x and 1.09x / 1.13x over 8 x 3, 3x3
# layers of 7 x 7, 14 x 14 and 16 x 16 planes with 64-128 channels 1.04-1.11x (device-resident 1.02-1.15x).
ZEN4_INTEL_TILES = CpuTiles(accumulators=24, channels=8, pointwise_channels=8, grad_weight_accumulators=36,
                            grad_weight_pair_accumulators=18, matrix_product=(8, 2), grad_weight_lanes=(2, 14),
                            grad_input_lanes_in_place_channels=None, small_plane=(8, 2))


# AMD Zen 5 (x86 family 26) executes 512-bit operations whole. Against the Xeon's tables, the Zen 4 ones stayed
# ahead there (PoCL 3.1, device-resident, alternating: 3x3 forward 0.8-1.0x with 14 x 2, weight gradient
# 0.78-0.96x with 6 x 6; Intel's runtime: forward 0.72-0.77x with 14 x 2, weight gradient 4 x 4 0.83-0.91x of
# 6 x 6), but for two of PoCL 3.1's: matrix products of small planes, 8 rows x 2 vectors 1.2-1.5x faster than
# 4 x 4 on 7x7 and 14x14 planes (ResNet-50 layer3.1.conv1, layer4.1.conv3, MobileNet-v2 features.18.pw, forward
# and input gradient) and 0.7-1.0x on 56x56 and 112x112 ones; weight gradients of 4 x 4 channels, 0.97-1.32x
# of 4 x 6 on nine 3x3 and 1x1 suite layers (4 x 3, 6 x 4 and 8 x 2: 0.8-1.1x).
ZEN5_POCL_TILES = dataclasses.replace(ZEN4_POCL_TILES, grad_weight_accumulators=16, grad_weight_channels=4,
                                      small_plane_matrix_product=(8, 2), grad_input_lanes_in_place_channels=0)
SMALL_PLANE = 256
ZEN5_FAMILY = 26


def cpu_tiles(info) -> CpuTiles:
    """The register tiles for a CPU device: by CPU maker, implementation and (PoCL on AMD) x86 family where
    measured, the Xeon's otherwise (PyPI's PoCL 3.0 on Zen 4 runs 256-bit vectors, where those measured best
    too)."""
    zen4 = info.cpu_maker == "amd" and info.native_float_lanes >= 16 and info.vector_bits_limit is None
    if not zen4:
        return XEON_TILES
    if info.implementation != "pocl":
        return ZEN4_INTEL_TILES
    return ZEN5_POCL_TILES if info.cpu_family == ZEN5_FAMILY else ZEN4_POCL_TILES


# cl/pointwise_product.cl's tile where vectors have 8 lanes or fewer (AVX2's 16 registers): 12 accumulators.
NARROW_MATRIX_PRODUCT_TILE = (4, 3)
# Its work-group on CPUs: consecutive row tiles of one column tile (the kernel's NDRange has two axes).
MATRIX_PRODUCT_LOCAL = (8, 1, 1)


def matrix_product_tile(info, plane: int | None = None) -> tuple[int, int]:
    """(rows, vectors) of cl/pointwise_product.cl's tile on a device: 16 accumulators where vectors are 16 lanes
    wide, 12 where they are 8, as measured on Zen 4 (the six stride-1 1x1 suite layers, forward and input
    gradient, device-resident, best of three rounds, fp32; speed of the chosen tile over the others): PoCL 3.1
    4 x 4 0.95-1.7x of 8 x 2 and 0.9-1.5x of 4 x 3; Intel's runtime 8 x 2 0.8-1.5x of 4 x 3 and 0.85-1.3x of 4 x 4
    (ahead on the larger layers); PyPI's PoCL 3.0 (8 lanes) 4 x 3 1.1-2.2x of 8 x 2 and 4 x 4. On a plane of at
    most SMALL_PLANE positions a table's small-plane tile where it has one (PoCL 3.1 on Zen 5)."""
    if info.native_float_lanes < 16 or info.vector_bits_limit is not None:
        return NARROW_MATRIX_PRODUCT_TILE
    tiles = cpu_tiles(info)
    if tiles.small_plane_matrix_product is not None and plane is not None and plane <= SMALL_PLANE:
        return tiles.small_plane_matrix_product
    return tiles.matrix_product


def matrix_product_applies(params: Conv2DParams) -> bool:
    """Whether a layer's forward pass and input gradient can run as matrix products over its channels: pointwise
    and ungrouped, so that one image's output is the (K, C) weight times its (C, H*W) input."""
    return reads_planes_in_place(params) and params.groups == 1


def channel_lanes_applies(params: Conv2DParams, lanes: int) -> bool:
    """Whether a forward pass can run with ``lanes`` output channels in each vector (cl/conv2d_channel_lanes.cl):
    each group's output channels in whole vectors. Any padding, stride and dilation."""
    return params.K_per_group % lanes == 0


# The output channels in the lanes, measured against this heuristic's other tiles (Zen 5, fp32, device-resident,
# alternating in one process, the weight's copy included), PoCL 3.1 / Intel's runtime:
# - unpadded stride-1 layers whose output rows are narrower than the input's, one vector per work-item: LeNet-5
#   conv2 (6 -> 16 channels, 14 -> 10 columns, 5x5) 1.5x / 1.55x; 16 -> 32 channels, 12 -> 8 columns, 5x5: 1.1x /
#   1.45x. Where the rows lose few lanes on whole planes the gain was small (16 -> 14 columns, 3x3, 32 channels:
#   1.1x; 30 -> 28: 1.05-1.1x), and it lost with 1 or 3 input channels (32 -> 28 columns, 5x5: 0.75-0.95x) and on
#   128 channels of 9 -> 7 columns (0.9-0.98x);
# - layers of several taps read at a column stride (whose rows the other tiles read with two loads and a shuffle per
#   vector), 4 vectors x 6 columns: ResNet-18 layer2.0.conv1 (3x3, stride 2) 2.0x / 1.9x, the RGB stem (7x7, stride
#   2) 1.3x / 2.1x, wav2vec2's 1-D layer (3 taps, stride 2) 1.15x / 1.25x, the stride-2 convolution whose forward
#   pass is DCGAN main.9's input gradient 1.7x / 1.9x. It lost on a strided 1x1 layer (ResNet-18
#   layer2.0.downsample, 0.9x / 0.8x) and on padded stride-1 3x3 layers (0.6-0.9x on PoCL 3.1).
CHANNEL_LANES_MIN_CHANNELS = 4
CHANNEL_LANES_MOST_ROW_SHARE = 0.75
CHANNEL_LANES_VECTORS = 4


def channel_lanes_pays(params: Conv2DParams, lanes: int) -> bool:
    """Whether the heuristic runs a forward pass with the output channels in the lanes: where it applies, on rows
    read at a column stride by several taps, or on an unpadded ungrouped stride-1 layer with a few input channels
    or more and output rows narrow enough against the input's that vectors along whole planes leave a quarter of
    their lanes unstored."""
    if not channel_lanes_applies(params, lanes):
        return False
    if params.stride[1] > 1:
        return params.R * params.S > 1
    return (params.groups == 1 and params.stride == (1, 1) and params.dilation == (1, 1) and not any(params.padding)
            and params.R * params.S > 1 and params.C >= CHANNEL_LANES_MIN_CHANNELS
            and params.Q <= CHANNEL_LANES_MOST_ROW_SHARE * params.W)


# Padded stride-1 forward passes and input gradients of many channels (the dense 3x3 layers), measured on Zen 4
# against this heuristic's tiles along whole planes (6 or 8 channels x 2 to 4 vectors), device-resident, alternating
# in one process, fp32, 2 vectors x 7 columns with the row compiled in (fixed_row_defines), over 64 to 512 channels
# of 56 x 56 to 7 x 7 planes, forward / input gradient: 1.14-1.51x / 1.15-1.23x faster on PoCL 3.1, 1.05-1.31x /
# 1.10-1.35x on Intel's runtime, 1.06-1.41x / 1.32-1.78x on PyPI's PoCL 3.0 (2 vectors of 8 lanes). Larger tiles lost
# on the forward pass: 4 x 6 0.6-0.83x, 2 x 14 0.65-0.83x, 1 x 28 0.52-0.61x. 1 x 14 matched 2 x 7 or beat it on
# some input gradients (PoCL 3.0 up to 2.3x, PoCL 3.1 and Intel's runtime 1.2-1.4x on 14 x 14 planes), and lost on
# 7 x 7 ones. fp16 (computed in float), 14 x 14 and 28 x 28 planes: forward 1.22-1.36x / 1.24-1.62x / 1.56-1.79x,
# input gradients 0.73-0.79x / 0.92-1.19x / 1.10-1.23x, so fp16 input gradients keep the planes.
PADDED_LANES_MIN_CHANNELS = 16
PADDED_LANES_VECTORS = 2
PADDED_LANES_COLUMNS = 7


def padded_lanes_pay(params: Conv2DParams, lanes: int, pass_name: str = "forward") -> bool:
    """Whether the heuristic runs a padded stride-1 forward pass (output channels in the lanes) or input gradient
    (input channels in the lanes) in PADDED_LANES_VECTORS vectors x PADDED_LANES_COLUMNS columns: an ungrouped layer
    of several taps, no dilation, that many vectors of the channels it writes and at least PADDED_LANES_MIN_CHANNELS
    of those it sums; fp32, and fp16 forward passes (fp64 was not measured)."""
    applies = channel_lanes_applies if pass_name == "forward" else grad_input_lanes_apply
    written, summed = (params.K, params.C) if pass_name == "forward" else (params.C, params.K)
    return (applies(params, lanes) and params.groups == 1 and params.stride == (1, 1)
            and params.dilation == (1, 1) and any(params.padding) and params.R * params.S > 1
            and summed >= PADDED_LANES_MIN_CHANNELS and written >= PADDED_LANES_VECTORS * lanes
            and (params.dtype == np.float32 or (params.dtype == np.float16 and pass_name == "forward")))


# FIXED_ROW in cl/conv2d_channel_lanes.cl and cl/conv2d_grad_input_channel_lanes.cl (the row's geometry compiled in,
# so that no column is checked at run time): on tiles of at most this many accumulators. On the 2 x 7 tiles of padded
# dense layers (64 to 512 channels of 56 x 56 to 7 x 7 planes, same bytes) forward passes ran 1.32-1.82x faster with it
# on PoCL 3.1 and 1.19-1.81x on Intel's runtime, input gradients 1.00-1.19x and 1.06-1.20x; the 4 x 6 tiles of
# strided forward passes ran 0.52-0.87x as fast with it as without (their three copies of the unrolled channel loop
# outgrow the registers), on both.
FIXED_ROW_MOST_ACCUMULATORS = 16


def fixed_row_defines(params: Conv2DParams, config, pass_name: str = "forward") -> dict:
    """The FIXED_ROW defines of cl/conv2d_channel_lanes.cl (``pass_name`` forward) or
    cl/conv2d_grad_input_channel_lanes.cl (grad_input) on a tile of at most FIXED_ROW_MOST_ACCUMULATORS
    accumulators, where every block between a row's first and last reads inside the row it reads at every tap:
    forward passes of padded layers whose column stride is compiled in (COL_STRIDE: 1 or 2), input gradients of
    layers of column stride 1, padded or not (grad_output's rows are read past both ends either way); none
    otherwise."""
    columns = config.block_v
    stride, pad_left, reach = params.stride[1], params.padding[2], (params.S - 1) * params.dilation[1]
    if config.block_k * columns > FIXED_ROW_MOST_ACCUMULATORS:
        return {}
    if pass_name == "forward":
        blocks = div_up(params.Q, columns)
        between_inside = blocks <= 2 or (columns * stride - pad_left >= 0
                                         and ((blocks - 1) * columns - 1) * stride - pad_left + reach < params.W)
        applies = any(params.padding) and stride <= 2
    else:
        # Column j of block b reads grad_output column b * columns + j + pad_left - s * dil_w at tap s: lowest in
        # block 1 (j = 0, the last tap), highest in block blocks - 2 (j = columns - 1, the first tap).
        blocks = div_up(params.W, columns)
        between_inside = blocks <= 2 or (columns + pad_left - reach >= 0
                                         and (blocks - 1) * columns + pad_left <= params.Q)
        applies = stride == 1
    if not (applies and between_inside):
        return {}
    return {"FIXED_ROW": 1, "FIXED_W": params.W, "FIXED_Q": params.Q, "FIXED_S": params.S, "FIXED_PAD_LEFT": pad_left,
            "FIXED_DIL_W": params.dilation[1]}


def channel_lanes_tile(channels: int, row: int, lanes: int, accumulators: int) -> tuple[int, int]:
    """(vectors, columns) of a forward or input-gradient tile with the channels it writes in the lanes: up to
    CHANNEL_LANES_VECTORS vectors of a group's ``channels``, the rest of ``accumulators`` columns of a ``row`` (an
    output row, or the widest phase of an input row)."""
    vectors = min(CHANNEL_LANES_VECTORS, channels // lanes)
    return vectors, channel_lanes_columns(row, accumulators // vectors)


def grad_input_lanes_apply(params: Conv2DParams, lanes: int) -> bool:
    """Whether an input gradient can run with ``lanes`` input channels in each vector
    (cl/conv2d_grad_input_channel_lanes.cl): each group's input channels in whole vectors. Any padding, stride and
    dilation."""
    return params.C_per_group % lanes == 0


# The input channels in the lanes against the tiles' phases, measured on Zen 5 (fp32, device-resident, alternating,
# the weight's copy included, PoCL 3.1 / Intel's runtime), 4 vectors x 6 columns of a phase: ResNet-18
# layer2.0.conv1 (3x3, stride 2) 1.4x / 1.3x, the stride-2 4x4 convolution whose input gradient is DCGAN main.9's
# forward pass 1.25x / 1.25x, wav2vec2's 1-D layer (3 taps, stride 2) 1.35x / 0.93x. (A first version with 2
# vectors x 12 columns ran 0.75-1.6x of 4 x 6.)
def grad_input_lanes_pay(params: Conv2DParams, lanes: int) -> bool:
    """Whether the heuristic runs an input gradient with the input channels in the lanes: where it applies, on
    layers of several taps read at a column stride."""
    return grad_input_lanes_apply(params, lanes) and params.stride[1] > 1 and params.R * params.S > 1


# A pass on a channels-last input whose heuristic tile would convert it (its vectors run along rows or positions,
# which channels-last memory does not give) runs the kernel with the channels it writes in the lanes instead, which
# broadcasts its input from either layout and so reads it in place (CHANNELS_LAST_READS), where that measured faster
# than converting. Zen 4, end to end from NumPy, alternating, two runs of bench/lanes_in_place.py per implementation,
# PoCL 3.1 / Intel's runtime:
# - forward passes read at a column stride (the conversion would copy the pixels the stride skips): ResNet-18's 1x1
#   stride-2 downsample 1.68x / 1.49x. Stride-1 forward passes keep converting: 0.63-1.13x / 0.87-1.17x over the
#   seven dense 3x3 suite layers.
# - input gradients: the downsample 1.36x / 1.12x; stride-1 ones (24-accumulator tiles) on the dense 3x3 layers of
#   64 to 256 input channels 1.04-1.27x on PoCL (0.96-1.00x on VGG-16 conv3_2), 0.99-1.19x on Intel's runtime. On
#   512 input channels PoCL ran 0.76-1.23x (ResNet-18 layer4.conv) and 0.86-1.13x (VGG-16 conv5_2) in its runs,
#   Intel's runtime 1.02-1.27x: CpuTiles.grad_input_lanes_in_place_channels, which is off where not measured (Zen 5's
#   PoCL table, the Xeon's, whose 28 accumulators give 4 x 7 tiles: 0.75-1.14x here).
# - weight gradients of fewer than 4 input channels per group (the RGB stem, ResNet-18 conv1, whose tile runs along
#   the positions): 1.72x / 1.11x, reading x in place too (faster than channels-first inputs on PoCL 3.1).
# fp32 as measured, and fp16, which computes in float (not the weight gradient on PoCL, grad_weight_lanes_pay);
# fp64's accumulators would take twice the registers.
def lanes_in_place_config(params: Conv2DParams, info, pass_name: str):
    """The tile with the channels it writes in the lanes that ``pass_name`` runs on a channels-last input
    (CHANNELS_LAST_READS) instead of the heuristic's own, or None where it keeps its own: on CPUs with 16-lane
    vectors, fp16 or fp32, a forward pass read at a column stride, an input gradient read at a column stride or
    (where the CPU's table says so) a stride-1 one of more than one tap and no dilation, or a weight gradient of more
    than one tap; each where its kernel applies (the heuristic's own tile takes it in most of these already)."""
    if (info.type == "GPU" or info.native_float_lanes < 16 or info.vector_bits_limit is not None
            or params.dtype.itemsize > 4):
        return None
    tiles = cpu_tiles(info)
    params = kernel_layer(params)
    lanes = widest_vector(params, info)
    strided = params.stride[1] > 1
    if pass_name == "forward":
        if not strided or not channel_lanes_applies(params, lanes):
            return None
        vectors, columns = channel_lanes_tile(params.K_per_group, params.Q, lanes, tiles.accumulators)
        return CorrelationConfig(vec=lanes, block_k=vectors, block_v=columns, local=(1, 1, 1), channel_lanes=True)
    if pass_name == "grad_input":
        most = tiles.grad_input_lanes_in_place_channels
        stride_one = (params.stride == (1, 1) and params.dilation == (1, 1) and params.R * params.S > 1 and most != 0
                      and (most is None or params.C_per_group <= most))
        if not (strided or stride_one) or not grad_input_lanes_apply(params, lanes):
            return None
        vectors, columns = channel_lanes_tile(params.C_per_group, div_up(params.W, params.stride[1]), lanes,
                                              tiles.accumulators)
        return CorrelationConfig(vec=lanes, block_k=vectors, block_v=columns, local=(1, 1, 1), channel_lanes=True)
    if pass_name == "grad_weight":
        if (params.R * params.S == 1 or not grad_weight_lanes_apply(params, lanes)
                or (params.dtype == np.float16 and info.implementation == "pocl")):
            return None
        return grad_weight_lanes_config(params, info, lanes)
    return None


def grad_weight_lanes_config(params: Conv2DParams, info, lanes: int) -> GradWeightConfig:
    """The weight-gradient tile with the output channels in vectors of ``lanes`` lanes on a CPU: the CPU table's
    block of vectors x input channels (cl/conv2d_grad_weight_channel_lanes.cl)."""
    most_vectors, most_channels = cpu_tiles(info).grad_weight_lanes
    vectors = min(most_vectors, params.K_per_group // lanes)
    # Channel blocks that cover the group's channels with little padding (16 in two blocks of 8, not one of 28).
    tiles = cpu_tiles(info)
    largest = min(tiles.listed_block(most_vectors * most_channels // vectors), tiles.listed_block(params.C_per_group))
    return GradWeightConfig(vec=lanes, block_k=vectors, block_c=_channel_block(params.C_per_group, largest),
                            target_items=info.compute_units, channel_lanes=True)


def channel_lanes_columns(Q: int, most: int) -> int:
    """Output columns per work-item of cl/conv2d_channel_lanes.cl: a row in as few equal blocks of at most ``most``
    columns as cover it (28 columns, at most 24: two blocks of 14)."""
    return div_up(Q, div_up(Q, most))


def grad_weight_lanes_apply(params: Conv2DParams, lanes: int) -> bool:
    """Whether a weight gradient can run with ``lanes`` output channels in each vector
    (cl/conv2d_grad_weight_channel_lanes.cl): each group's output channels in whole vectors. Any padding,
    stride and dilation."""
    return params.K_per_group % lanes == 0


# The output channels in the lanes against the tiles along the positions, measured on Zen 5 (fp32, device-resident,
# alternating in one process, the copy of grad_output included, PoCL 3.1 / Intel's runtime): the 3x3 suite layers
# 1.4-2.5x / 1.7-2.6x (ResNet-18, ResNet-50, VGG-16; the 7x7 and 14x14 planes gain most on PoCL 3.1), ResNet-18
# layer2.0.conv1 (stride 2) 1.9x / 2.1x, pointwise layers on planes of 7x7 to 28x28 1.6-2.1x / 1.7-2.35x, LeNet-5
# conv2 3.9x / 2.75x, DCGAN main.9 1.7x / 1.6x, wav2vec2's 1-D layer 1.4x / 1.1x. It lost on pointwise layers of
# large planes whose grad_output rows hold more output channels than one work-item's block (ResNet-50
# layer1.0.conv1, 56x56, 64 channels in blocks of 32 on Intel's runtime: 0.87x, where PoCL 3.1's blocks of 64 ran
# 1.7x; layer1.0.conv3, 256 channels: 0.6x; MobileNet-v2 features.2.expand, 112x112, 96 channels: 0.57x, most of
# it the copy): each work-item streams a part of every row of that copy, once per input-channel block. With 3
# input channels (the RGB stem) it ran 0.94x on PoCL 3.1. In fp64 it ran 1.3-1.8x on PoCL 3.1; in fp16 1.0-1.9x on
# Intel's runtime but 0.63-1.64x on PoCL 3.1 (ResNet-50 layer3.1.conv1 0.63x, VGG-16 conv3_2 0.72x, ResNet-18
# layer3.conv 0.99x, layer4.conv 1.64x), whose half loads of single input elements cost more than its vector ones:
# fp16 on PoCL keeps the tiles along the positions.
GRAD_WEIGHT_LANES_MIN_CHANNELS = 4
GRAD_WEIGHT_LANES_POINTWISE_PLANE = 1024


def grad_weight_lanes_pay(params: Conv2DParams, info, lanes: int) -> bool:
    """Whether the heuristic runs a weight gradient with the output channels in the lanes: on a CPU with 16-lane
    float vectors (where it was measured; fp16 not on PoCL), a layer where it applies with 4 input channels per group
    or more, and either more than one tap, a small plane, or a group's output channels in one block of the CPU's
    tile."""
    if info.type == "GPU" or info.native_float_lanes < 16 or info.vector_bits_limit is not None:
        return False
    if params.dtype == np.float16 and info.implementation == "pocl":
        return False
    block = cpu_tiles(info).grad_weight_lanes[0] * lanes
    return (grad_weight_lanes_apply(params, lanes) and params.C_per_group >= GRAD_WEIGHT_LANES_MIN_CHANNELS
            and (params.R * params.S > 1 or params.P * params.Q <= GRAD_WEIGHT_LANES_POINTWISE_PLANE
                 or params.K_per_group <= block))


def widest_vector(params: Conv2DParams, info) -> int:
    """The most lanes a kernel vector (of accumulators: float for fp16 and fp32, double for fp64) may have on
    a device: 16, or fewer where the device's compiler cannot build wider ones (vector_bits_limit)."""
    return widest_lanes(params.dtype, info)


def widest_lanes(dtype: np.dtype, info) -> int:
    """widest_vector for a layer of ``dtype``."""
    limit = info.vector_bits_limit
    if limit is None:
        return VECTOR_WIDTHS[-1]
    lanes = limit // (8 * dtype_accumulator_bytes(dtype))
    return max(v for v in VECTOR_WIDTHS if v <= lanes)


def _vector_width(width: int, widest: int) -> int:
    """The narrowest vector that covers a row, up to ``widest`` lanes: a wider one would waste lanes."""
    return next((v for v in VECTOR_WIDTHS if v >= width or v == widest), widest)


def _channel_block(channels: int, largest: int) -> int:
    """The smallest listed block that covers ``channels``, capped at ``largest`` (a listed block); above the
    cap, the largest listed block that pads the channels by at most a quarter (16 channels in blocks of
    14 would compute 28, in blocks of 8 exactly 16)."""
    if channels <= largest:
        return next(b for b in CHANNEL_BLOCKS if b >= channels)
    return max(b for b in CHANNEL_BLOCKS if b <= largest and div_up(channels, b) * b - channels <= channels / 4)


def kernel_layer(params: Conv2DParams) -> Conv2DParams:
    """The layer as the tiled kernels see it: a pointwise layer (1x1, stride 1, no padding) maps each
    input element to the output element at the same plane index, so its H x W planes are read as one row
    of H * W, along which the vectors run with a mask only on the last one (on whole planes, see
    ``whole_planes``, the shape of the plane does not matter; on rows a 7 x 7 plane would fill 8-lane
    vectors at 7/8 instead of 16-lane ones at 49/64)."""
    if not reads_planes_in_place(params):
        return params
    return dataclasses.replace(params, H=1, W=params.H * params.W, dilation=(1, 1))


# Input channels per group of a forward pass or input gradient on rows of one vector each from which the channel
# loop runs inside the taps' (CHANNELS_INNER in cl/conv2d_tiled.cl). Measured on Zen 4 against the taps inside
# the channels': ResNet-18 layer2.0.conv1 forward 1.0-1.3x faster on PoCL 3.1, 1.2x on Intel's runtime, 1.05x on
# PoCL 3.0, its input gradient 1.2-1.5x, 1.0x, 1.25x; DCGAN main.9's input gradient 1.0-1.05x, 1.2x. One input
# channel (LeNet-5 conv1, depthwise layers) ran 0.5x on Intel's runtime and 0.4x on PoCL 3.0, and a row of
# vectors side by side (wav2vec2's 1-D layer, 512 channels) 0.65x on Intel's runtime: those keep the taps inside.
CHANNELS_INNER_MIN = 8


def channels_inner(params: Conv2DParams, pass_name: str) -> bool:
    """Whether a forward pass or input gradient on rows runs its channel loop inside the taps'."""
    in_channels = params.K_per_group if pass_name == "grad_input" else params.C_per_group
    return in_channels >= CHANNELS_INNER_MIN


# The accumulator vectors a tile of whole rows (WHOLE_ROWS) keeps: its rows are as many as fit beside its channels.
WHOLE_ROWS_ACCUMULATORS = 24


def whole_rows(info, config: CorrelationConfig, channels: int, in_w: int, grid_w: int, taps, offset_w: int,
               stride, dilation) -> bool:
    """Whether a forward pass or input gradient on rows (not whole planes) takes each input row as one vector
    (WHOLE_ROWS in cl/conv2d_tiled.cl), its taps reading it rotated: where the kernel can (stride 1, no dilation,
    and every tap's rotation of a row of ``in_w`` elements brings zero lanes, not the row's other end, into the
    ``grid_w`` output columns: rows of 7 or 14 columns with 3x3 or 5x5 kernels) and where that pays
    (``whole_rows_pay``, for ``channels`` input channels per group). ``taps``: (R, S) of the launch, of which a
    phase of a transposed convolution's input gradient may have none."""
    first_shift, last_shift = offset_w, offset_w + taps[1] - 1
    return (not config.along_row and not config.channel_lanes and min(taps) > 0 and tuple(stride) == (1, 1)
            and tuple(dilation) == (1, 1) and in_w + max(0, -first_shift) <= config.vec
            and grid_w + max(0, last_shift) <= config.vec and whole_rows_pay(info, channels))


def whole_rows_pay(info, channels: int) -> bool:
    """On CPUs, with fewer than FLAT_PLANE_MIN_CHANNELS input channels per group: more share each tap's lane masks
    on the other tiles (LeNet-5 conv2's input gradient, 16 channels, ran 0.8x on whole rows). Measured on Zen 4,
    see the README: stride-1 layers, and the phases of stride-2 depthwise input gradients (1.1-1.15x those of several
    taps on each axis, then 1.06-1.54x more those of a single tap on an axis)."""
    return info.type == "CPU" and channels < FLAT_PLANE_MIN_CHANNELS


def whole_rows_block(rows: int, block_k: int) -> int:
    """Output rows per work-item on whole rows: the grid's rows split evenly into the fewest tiles of at most
    WHOLE_ROWS_ACCUMULATORS / block_k rows, so that each loaded row serves as many tap rows as it can."""
    most = max(1, WHOLE_ROWS_ACCUMULATORS // block_k)
    return div_up(rows, div_up(rows, most))


def reads_planes_in_place(params: Conv2DParams) -> bool:
    """Whether a layer is pointwise (1x1, stride 1, no padding): each output element reads the input element
    at its own plane index."""
    return (params.R, params.S) == (1, 1) and params.stride == (1, 1) and not any(params.padding)


def across_images(params: Conv2DParams, config: GradWeightConfig) -> bool:
    """Whether the weight gradient reads a channel's planes of consecutive images as one sequence
    (ACROSS_IMAGES in cl/conv2d_grad_weight_tiled.cl): pointwise layers whose planes hold at least one
    vector. A 7 x 7 plane is 3.06 vectors of 16 lanes, which took 4 vectors one image at a time."""
    return reads_planes_in_place(params) and params.H * params.W >= config.vec


def grids_across_images(info, n: int, grid_plane: int, in_image_elements: int, config: CorrelationConfig) -> bool:
    """Whether a forward pass or input gradient on whole planes runs the grids of its ``n`` images (``grid_plane``
    elements each) as one sequence (ACROSS_IMAGES in cl/conv2d_tiled.cl): where the kernel can, a grid holding at
    least a vector (so that no vector spans three images) and an image's input (``in_image_elements``, all its
    channels) at least a grid (its jump from one image to the next), and where that pays
    (``image_grids_joined_pay``)."""
    return (n > 1 and grid_plane >= config.vec and in_image_elements >= grid_plane
            and image_grids_joined_pay(info, n, grid_plane, config))


# Grids of consecutive images as one sequence against one image at a time, measured on Zen 4 (fp32, 3x3 layers,
# device-resident, alternating in one process, three to five runs). PoCL 3.1 (tiles of 4 x 16 lanes): 14 x 14
# planes at N = 4 (13 tiles for 16) 1.12-1.17x, at N = 16 1.08-1.16x, at N = 2 (7 for 8) 1.04-1.10x; 7 x 7 planes
# at N = 16 (13 for 16) 1.01-1.04x; 28 x 28 planes at N = 8 (98 for 104) 0.98-1.04x. PyPI's PoCL 3.0 (tiles of
# 2 x 8 lanes): 14 x 14 at N = 4 (49 for 52) 1.09-1.11x, 7 x 7 at N = 16 (49 for 64) 1.30-1.35x. Intel's runtime:
# 0.94-1.09x, no rule. A tile with a vector that crosses into the next image runs a slower loop (two loads for that
# vector, behind a branch), so the rule joins where that saves a twentieth of the tiles or more, on PoCL.
JOINED_GRIDS_LEAST_SAVING = 0.05


def image_grids_joined_pay(info, n: int, grid_plane: int, config: CorrelationConfig) -> bool:
    """Whether joining the grids of ``n`` images into one sequence saves enough tiles to pay on this device."""
    tile = config.vec * config.block_v
    separate = n * div_up(grid_plane, tile)
    return (info.type == "CPU" and info.implementation == "pocl"
            and div_up(n * grid_plane, tile) <= (1 - JOINED_GRIDS_LEAST_SAVING) * separate)


def whole_planes(params: Conv2DParams, pass_name: str) -> bool:
    """Whether a pass runs its vectors along whole planes (FLAT_PLANE in its kernel): stride 1 and output
    rows as wide as the input's; forward and input gradient also need enough input channels to share each
    tap's lane masks (depthwise layers measured 1.6x slower on planes). A forward pass whose output rows
    are narrower than the input's runs on planes where that fills its vectors better (``narrow_rows_pay``)."""
    if params.stride != (1, 1) or params.Q > params.W:
        return False
    if params.Q < params.W:
        return pass_name == "forward" and narrow_rows_pay(params)
    if pass_name == "grad_weight":
        return True
    channels = params.K_per_group if pass_name == "grad_input" else params.C_per_group
    return channels >= FLAT_PLANE_MIN_CHANNELS


def narrow_rows_pay(params: Conv2DParams) -> bool:
    """Whether a stride-1 forward pass with output rows narrower than the input's should run on whole planes.

    There its kernel computes rows as wide as the input's and stores the first Q columns of each: Q / W of
    the lanes are used, against Q / (16 * ceil(Q / 16)) on rows, whose vectors also need lane masks at
    every row end. Planes measured 1.3-1.9x faster where they use a tenth more lanes (LeNet-5 conv2, 14 ->
    10 columns; 3x3 on 20 -> 18, 64 channels), even with 2 input channels, and as fast where the two
    use the same (5x5 on 32 -> 28); with one input channel rows stay 1.4x faster (LeNet-5 conv1).
    """
    row_lanes = params.Q / (16 * div_up(params.Q, 16))
    return params.C_per_group >= 2 and params.Q / params.W > 1.1 * row_lanes


def default_config(params: Conv2DParams, info, pass_name: str, channel_lanes: bool = True):
    """Heuristic tile for an untuned layer, for CPUs and GPUs alike (``channel_lanes``: whether it may pick the
    pass's kernel with the channels it writes in the lanes, CHANNEL_LANES_KERNELS, whose copy of the weight or of
    grad_output is workspace).

    CPU: the vector runs along the output row and the tile holds as many accumulator vectors as the CPU's
    registers keep (``cpu_tiles``), split into output channels and rows; layers with few channels per group
    (depthwise) take more rows instead; on whole planes the rows become consecutive vectors of a plane. GPU:
    small tiles per work-item, parallelism from work-groups.
    """
    pointwise = (params.R, params.S) == (1, 1)
    params = kernel_layer(params)
    width = div_up(params.W, params.stride[1]) if pass_name == "grad_input" else params.Q
    out_channels = params.C_per_group if pass_name == "grad_input" else params.K_per_group
    height = params.H if pass_name == "grad_input" else params.P
    gpu = info.type == "GPU"
    widest = widest_vector(params, info)
    if pass_name == "grad_weight":
        if gpu:
            return GradWeightConfig(vec=4, block_k=_channel_block(params.K_per_group, 4),
                                    block_c=_channel_block(params.C_per_group, 4), local=(16, 4, 1),
                                    target_items=16384)
        tiles = cpu_tiles(info)
        if channel_lanes and grad_weight_lanes_pay(params, info, widest):
            return grad_weight_lanes_config(params, info, widest)
        if whole_planes(params, pass_name):
            width = params.P * params.Q
        # Fewer input channels (an RGB layer's 3) leave room for more output channels, up to 8: 8 x 3
        # measured 1.2x faster than 6 x 4 with one of the four channels wasted.
        # At column stride 2 the work-items own pairs of neighbouring taps, two pairs where the row has them
        # (3 taps: 0-1 and 2, 7 taps: two work-items of 4), with vectors along input columns (TAP_PAIR). Measured
        # on Zen 4 against one tap per work-item (two loads and a shuffle per input vector): ResNet-18
        # layer2.0.conv1 2.2x faster on Intel's runtime, 1.3x on PoCL 3.0; DCGAN main.9 2.5x, 1.6x; the RGB stem
        # 1.6x on PoCL 3.1. Against the pairs of shuffled stride-2 loads they replaced (PoCL 3.1's default):
        # layer2.0.conv1 1.35x, DCGAN 1.55x, the RGB stem 1.45x, wav2vec2's 1-D layer 1.35x.
        pairs = tap_pairs_apply(params)
        if pairs:
            tap_run = tap_run_length(div_up(params.S, 2), 2)
            row_taps, width = 2 * tap_run, 2 * width
        # One or two input channels per group (LeNet-5 conv1, depthwise layers) leave the tile nearly empty:
        # runs of a row's taps fill it, up to 6 input vectors a step in runs of equal length (5 taps: one run;
        # 7: 4 + 3). Measured on Zen 4: MobileNet-v2's depthwise weight gradients 1.25-1.7x faster on PoCL 3.1,
        # 1.2-1.7x on Intel's runtime, 1.5-1.6x on PoCL 3.0; LeNet-5 conv1's 1.3-1.5x at batch 64, 1.7-2.2x at 640.
        elif params.stride[1] == 1 and params.C_per_group <= 2 and params.S > 1:
            tap_run = row_taps = tap_run_length(params.S, 6 // params.C_per_group)
        else:
            tap_run = row_taps = 1
        # A tile holds tap_run accumulator vectors per output and input channel: one per tap, or per pair of taps.
        accumulators = tiles.grad_weight_pair_accumulators if pairs else tiles.grad_weight_accumulators
        block_c = _channel_block(params.C_per_group, min(tiles.grad_weight_channels, 6 // tap_run))
        block_k = _channel_block(params.K_per_group, tiles.listed_block(min(8, accumulators // (block_c * tap_run))))
        # Output-channel blocks side by side while their grad_output fits 256 KiB of cache: 4 measured up to
        # 1.2x faster than 1 on the benchmark's layers; 16 helped 1x1 layers a little and slowed 3x3 ones.
        # Where they do not fit and the whole input overflows the device's cache (so that it comes from memory
        # again for every output-channel block), all of a group's blocks go side by side where that streams
        # fewer bytes: the input block once for all of them, every grad_output block once per input block and
        # tap. ResNet-18 layer2.0.downsample (1x1 stride 2, 50 MB of input) 2.2-3.2x faster on PoCL 3.1, 1.5x
        # on Intel's runtime, 1.2x on PoCL 3.0; layers whose input stays in the cache (ResNet-50
        # layer1.0.conv3, VGG-16 conv5_2) measured up to 1.4x slower that way.
        item = params.dtype.itemsize
        block_bytes = block_k * params.N * params.P * params.Q * item
        k_blocks = div_up(params.K_per_group, block_k)
        input_bytes = params.N * params.C_per_group * params.H * params.W * item
        side_by_side = (div_up(params.C_per_group, block_c) * params.R * div_up(params.S, row_taps) * k_blocks
                        * block_bytes)
        if 4 * block_bytes <= 256 * 1024:
            k_group = 4
        elif input_bytes > info.device.global_mem_cache_size and side_by_side < k_blocks * input_bytes:
            k_group = k_blocks
        else:
            k_group = 1
        # One work-item per core keeps a CPU busy; splitting the batch for more only adds partial sums, so CPUs
        # default to no workspace for this pass. Measured: MobileNet's expand layer as fast or faster unsplit;
        # LeNet-5 conv1 (5 work-items) within 5% of two chunks on Intel's runtime on Zen 5 (0.225 against
        # 0.215 ms, device-resident), which split it while the target was 4 work-items per core.
        return GradWeightConfig(vec=_vector_width(width, widest), block_k=block_k, block_c=block_c,
                                target_items=info.compute_units, k_group=k_group, tap_pair=pairs,
                                tap_run=tap_run)
    if gpu:
        return CorrelationConfig(vec=4, block_k=_channel_block(out_channels, 4), block_v=2, local=(16, 4, 1))
    # Ungrouped pointwise layers as matrix products: the weight's elements broadcast against vectors of an
    # image's channels, no lane masks but at the plane's end, no tap loops. Measured on Zen 4 against this
    # heuristic's tiles (device-resident, three rounds, fp32), forward / input gradient: ResNet-50's four 1x1
    # layers 1.1-1.4x / 1.05-2.0x faster on PoCL 3.1, 1.3-2.5x / 1.3-2.3x on Intel's runtime, 1.1-2.9x / 0.94-2.4x
    # on PyPI's PoCL 3.0; MobileNet-v2 features.2.expand's forward pass (16 channels in) 4.4x, 2.9x, 5.1x.
    if matrix_product_applies(params):
        rows, vectors = matrix_product_tile(info, params.H * params.W)
        return CorrelationConfig(vec=widest, block_k=rows, block_v=vectors, local=MATRIX_PRODUCT_LOCAL,
                                 matrix_product=True)
    tiles = cpu_tiles(info)
    if pass_name == "forward" and channel_lanes and channel_lanes_pays(params, widest):
        vectors, columns = channel_lanes_tile(params.K_per_group, params.Q, widest, tiles.accumulators)
        return CorrelationConfig(vec=widest, block_k=vectors, block_v=columns, local=(1, 1, 1), channel_lanes=True)
    if channel_lanes and padded_lanes_pay(params, widest, pass_name):
        return CorrelationConfig(vec=widest, block_k=PADDED_LANES_VECTORS,
                                 block_v=channel_lanes_columns(width, PADDED_LANES_COLUMNS), local=(1, 1, 1),
                                 channel_lanes=True)
    if pass_name == "grad_input" and channel_lanes and grad_input_lanes_pay(params, widest):
        vectors, columns = channel_lanes_tile(params.C_per_group, div_up(params.W, params.stride[1]), widest,
                                              tiles.accumulators)
        return CorrelationConfig(vec=widest, block_k=vectors, block_v=columns, local=(1, 1, 1), channel_lanes=True)
    channels = tiles.pointwise_channels if pointwise else tiles.channels
    if whole_planes(params, pass_name):
        # A tile's vectors are consecutive on a plane (of rows as wide as the input's); a plane of at most 4
        # vectors goes to one work-item (7 x 7: 6 channels x 4 vectors measured 1.2x faster than 14 x 2,
        # and 1.9x faster than 28 x 1).
        plane = height * params.W
        vectors = div_up(plane, widest)
        if vectors <= 4:
            block_v, largest = vectors, tiles.accumulators // vectors
        else:
            block_v = max(1, min(4, tiles.accumulators // channels))
            largest = min(channels, tiles.accumulators // block_v)
            # 3 vectors, and the channels the registers then hold, where 4 would compute a tenth more vectors
            # or more: LeNet-5 conv2's planes (10 rows 14 wide, 9 vectors) took 3 tiles of 4; 8 channels x 3
            # vectors measured 1.25x faster there than 6 x 4 (6 x 3: 1.19x).
            if block_v == 4 and div_up(vectors, 3) * 3 * 1.1 <= div_up(vectors, 4) * 4:
                block_v, largest = 3, tiles.accumulators // 3
        # A table's own tile on small planes (Intel's runtime on AMD), where its tiles cover the plane with no more
        # vectors: a plane of 1 or 3 vectors keeps the tile above (4 x 4 and 6 x 6 planes measured 0.87-0.99x and
        # 0.75-0.8x with 8 x 1 and 8 x 2, against 14 x 1 and 8 x 3).
        if tiles.small_plane is not None and plane <= SMALL_PLANE:
            small_largest, small_v = tiles.small_plane
            if vectors >= small_v and div_up(vectors, small_v) * small_v <= div_up(vectors, block_v) * block_v:
                block_v, largest = small_v, small_largest
        block_k = _channel_block(out_channels, tiles.listed_block(largest))
        return CorrelationConfig(vec=_vector_width(plane, widest), block_k=block_k, block_v=block_v)
    block_k = _channel_block(out_channels, channels)
    block_v = max(1, min(4, tiles.accumulators // block_k))
    vec = _vector_width(width, widest)
    if height == 1:
        # One row (a 1-D layer, a pointwise layer seen as one long row): the tile's vectors go side by side
        # along it. wav2vec2's strided 1-D layer, forward and input gradient: 6 channels x 4 vectors and 8 x 3
        # measured 1.3-1.6x faster than 14 channels x 1 vector, which loaded a weight for every multiply-add.
        return CorrelationConfig(vec=vec, block_k=block_k, block_v=max(1, min(block_v, div_up(width, vec))),
                                 along_row=True)
    # Tiles of one output channel (depthwise layers) in work-groups of one work-item: on Zen 5, MobileNet-v2's
    # depthwise forward passes and features.14.dw's input gradient 1.07-1.48x faster than in groups of 4 on
    # PoCL 3.1, features.1.dw's and features.14.dw's forward passes 1.07-1.11x on Intel's runtime.
    if block_k == 1:
        return CorrelationConfig(vec=vec, block_k=block_k, block_v=block_v, local=(1, 1, 1))
    return CorrelationConfig(vec=vec, block_k=block_k, block_v=block_v)


def candidate_configs(params: Conv2DParams, info, pass_name: str):
    """The tiles the tuner tries: the heuristic's first, then a grid within the device's limits."""
    params = kernel_layer(params)
    seen = []

    def fits(config):
        local = config.merged_local if isinstance(config, GradWeightConfig) else config.local
        return (int(np.prod(local)) <= info.device.max_work_group_size
                and all(width <= most for width, most in zip(local, info.device.max_work_item_sizes)))

    heuristic = default_config(params, info, pass_name)
    grid = []
    locals_ = [(16, 4, 1), (32, 2, 1), (8, 8, 1)] if info.type == "GPU" else [(1, 1, 1), (1, 1, 4)]
    vectors = sorted({heuristic.vec, 4 if info.type == "GPU" else widest_vector(params, info)})
    # CPU tiles up to the register file of AVX-512 (32 vectors) and a little past it: every CPU table of
    # cpu_tiles lies inside, and so do its neighbours.
    if pass_name == "grad_weight":
        # Row taps per work-item: single; at stride 2 one or two pairs; at stride 1 a run as the heuristic cuts
        # them, for which one or two input channels fill the tile. (bc, accumulators per channel pair, pairs)
        tiles = [(bc, 1, False) for bc in (2, 3, 4, 6)]
        if tap_pairs_apply(params):
            tiles += [(bc, pairs, True) for bc in (2, 3, 4, 6) for pairs in (1, 2)]
        elif params.stride[1] == 1 and params.S > 1:
            tiles += [(bc, tap_run_length(params.S, 6), False) for bc in (1, 2)]
        for vec, bk, (bc, run, pair), local in itertools.product(vectors, (2, 3, 4, 6, 8), tiles, locals_):
            if bk * bc * run <= 36:
                grid.append(GradWeightConfig(vec, min(bk, params.K_per_group), min(bc, params.C_per_group), local,
                                             heuristic.target_items, heuristic.k_group, tap_pair=pair,
                                             tap_run=run))
        # The output channels in the lanes: vectors of them x input channels, up to the register file.
        if info.type != "GPU":
            grid += [GradWeightConfig(vec, min(count, params.K_per_group // vec), min(bc, params.C_per_group),
                                      (1, 1, 1), heuristic.target_items, channel_lanes=True)
                     for vec, count, bc in itertools.product(vectors, (1, 2, 3, 4), (3, 4, 6, 8, 14))
                     if count * bc <= 28 and grad_weight_lanes_apply(params, vec)]
    else:
        out_channels = params.C_per_group if pass_name == "grad_input" else params.K_per_group
        # Row tiles only where rows are what the kernel walks (on whole planes they would be the same tile).
        one_row = (params.H if pass_name == "grad_input" else params.P) == 1 and not whole_planes(params, pass_name)
        blocks = (2, 4, 8) if info.type == "GPU" else (6, 8, 14, 28)
        for vec, bk, bp, local in itertools.product(vectors, blocks, (1, 2, 3, 4), locals_):
            if bk * bp <= 32:
                grid.append(CorrelationConfig(vec, min(bk, out_channels), bp, local, along_row=one_row and bp > 1))
        if matrix_product_applies(params) and info.type != "GPU":
            grid += [CorrelationConfig(vec, rows, bp, MATRIX_PRODUCT_LOCAL, matrix_product=True)
                     for vec, rows, bp in itertools.product(vectors, (4, 8, 16), (1, 2, 3, 4)) if rows * bp <= 32]
        if pass_name in CHANNEL_LANES_KERNELS and info.type != "GPU":
            # Output columns of the forward pass, columns of the widest phase of the input gradient.
            row = params.Q if pass_name == "forward" else div_up(params.W, params.stride[1])
            applies = channel_lanes_applies if pass_name == "forward" else grad_input_lanes_apply
            grid += [CorrelationConfig(vec, count, channel_lanes_columns(row, most), (1, 1, 1), channel_lanes=True)
                     for vec, count, most in itertools.product(vectors, (1, 2, 4), (4, 6, 8, 12, 16, 24, 28))
                     if count * most <= 28 and count <= out_channels // vec and applies(params, vec)]
    split = phase_split(params, pass_name)
    if split is not None:  # the phased layer's own heuristic tile
        grid.append(dataclasses.replace(default_config(split.phased, info, pass_name), phase_split=True))
    for config in [heuristic] + grid:
        if config not in seen and fits(config):
            seen.append(config)
    return seen


class PhaseTaps(typing.NamedTuple):
    """The kernel taps that reach one output phase of the input gradient, read backwards."""

    count: int  # taps reaching the phase (0: the phase gets no contribution, it is written as zeros)
    last: int  # index of the last such tap (the first one read)
    spacing: int  # distance between consecutive such taps
    offset: int  # grad_output row (column) of the first tap read, relative to the phase's own index
    step: int  # grad_output rows (columns) between consecutive taps read


def _phase_taps(phase: int, pad: int, dilation: int, stride: int, extent: int) -> PhaseTaps:
    """Taps t < extent with (phase + pad - t*dilation) divisible by stride."""
    taps = [t for t in range(extent) if (phase + pad - t * dilation) % stride == 0]
    if not taps:
        return PhaseTaps(0, 0, 1, 0, 1)
    offset = (phase + pad - taps[-1] * dilation) // stride
    if len(taps) == 1:
        # A single tap has no step to take; 1 (not dilation // stride, 0 at stride 2) keeps the phase a plain
        # stride-1 correlation, which may then take whole rows (whole_rows).
        return PhaseTaps(1, taps[0], 1, offset, 1)
    spacing = taps[1] - taps[0]
    return PhaseTaps(len(taps), taps[-1], spacing, offset, spacing * dilation // stride)


# The column stride each pass reads its input at (grad_input reads grad_output at stride 1, phase by phase).
def _column_stride(params: Conv2DParams, pass_name: str) -> int:
    return 1 if pass_name == "grad_input" else params.stride[1]


def column_stride_define(stride: int) -> dict:
    """COL_STRIDE (cl/vector.h): the column stride fixed at compile time where it is 1 or 2, so that the loads in
    the hot loops carry no branch on it; 0 (read from the argument) otherwise."""
    return {"COL_STRIDE": stride if stride <= 2 else 0}


class TiledAlgorithm(AlgorithmBase):
    name = "tiled"

    candidates = staticmethod(candidate_configs)
    narrower = staticmethod(narrower_config)

    @staticmethod
    def config_record(config) -> dict | None:
        return dataclasses.asdict(config) if config is not None else None

    @staticmethod
    def config_from_record(pass_name: str, fields: dict | None):
        """The tile a tuning record's fields describe; TypeError for fields of another clconv version."""
        if fields is None:
            return None
        fields = dict(fields)
        if "local" in fields:
            fields["local"] = tuple(fields["local"])  # JSON stores the tuple as a list
        return CONFIG_TYPES[pass_name](**fields)

    def __init__(self, params: Conv2DParams, target, configs: dict | None = None, max_workspace_bytes=None):
        super().__init__(params, target, max_workspace_bytes)
        self.kernel_layer = kernel_layer(params)
        configs = configs or {}
        # The channels a pass writes in the lanes only where its copy of the weight or grad_output fits.
        self.configs = {name: configs.get(name) or default_config(params, target.info, name, self._copy_fits(name))
                        for name in KERNELS}
        # A given tile (a tuning record, a caller's) with the channels in the lanes where they cannot run there (the
        # copy does not fit, or the record is another layer's) gives way to the heuristic's other tile: the other
        # kernels read a lanes tile's fields as something else (cover other work-items, or none).
        self.configs.update({name: default_config(params, target.info, name, channel_lanes=False)
                             for name, config in self.configs.items()
                             if getattr(config, "channel_lanes", False) and not self._runs_channel_lanes(name)})
        self._direct = None  # the bias gradient's kernels, built on first use
        self._phase_runners = {}  # pass name -> its PhaseRunner, or None where its tile does not split

    def _phase_runner(self, pass_name: str) -> PhaseRunner | None:
        """The phase split a pass runs through: where its tile asks for one, the layer has one, and it fits
        max_workspace_bytes (else the pass runs unsplit)."""
        config = self.configs.get(pass_name)
        if not getattr(config, "phase_split", False):
            return None
        if pass_name not in self._phase_runners:
            split = phase_split(self.params, pass_name)
            runner = None
            if split is not None:
                cap = self.max_workspace_bytes
                inner_cap = None if cap is None else max(0, cap - split.workspace_bytes)
                inner = TiledAlgorithm(split.phased, self.target,
                                       {pass_name: dataclasses.replace(config, phase_split=False)}, inner_cap)
                runner = PhaseRunner(self, split, inner)
                if cap is not None and runner.workspace_bytes(pass_name) > cap:
                    runner = None
            self._phase_runners[pass_name] = runner
        return self._phase_runners[pass_name]

    def workspace_bytes(self, pass_name: str) -> int:
        runner = self._phase_runner(pass_name)
        if runner is not None:
            return runner.workspace_bytes(pass_name)
        if self._runs_channel_lanes(pass_name):
            return self._copy_bytes(pass_name) + super().workspace_bytes(pass_name)
        return super().workspace_bytes(pass_name)

    def _copy_bytes(self, pass_name: str) -> int:
        """The bytes of the copy a pass makes to run with the channels it writes in the lanes: the weight's for the
        forward pass and input gradient, grad_output's for the weight gradient."""
        shape = self.params.output_shape if pass_name == "grad_weight" else self.params.weight_shape
        return math.prod(shape) * self.params.dtype.itemsize

    def _copy_fits(self, pass_name: str) -> bool:
        """Whether a pass may run with the channels it writes in the lanes: it has a kernel for that, and the copy it
        makes fits max_workspace_bytes and LANES_COPY_MEMORY_SHARE of the device's memory."""
        if pass_name not in CHANNEL_LANES_KERNELS:
            return False
        copy = self._copy_bytes(pass_name)
        cap = self.max_workspace_bytes
        return (cap is None or copy <= cap) and copy <= LANES_COPY_MEMORY_SHARE * self.target.info.global_mem_bytes

    def reduction(self, pass_name: str):
        if pass_name == "grad_weight":
            config = self.configs["grad_weight"]
            return config.items(self.params), config.target_items, int(np.prod(self.params.weight_shape))
        return super().reduction(pass_name)

    def _pass_defines(self, pass_name: str, flat_plane: bool = False, images_joined: bool = False,
                      rows_taps: dict | None = None) -> dict:
        """The kernel's defines for a pass; ``rows_taps``: WHOLE_ROWS's (BLOCK_V, TAPS_R, TAPS_S, OFFSET_W) where
        its input rows are vectors."""
        config = self.configs[pass_name]
        defines = dict(config.defines(), **column_stride_define(_column_stride(self.params, pass_name)))
        if rows_taps:
            defines.update(rows_taps, WHOLE_ROWS=1)
        elif flat_plane:
            defines["FLAT_PLANE"] = 1
            if images_joined:
                defines["ACROSS_IMAGES"] = 1
        elif isinstance(config, CorrelationConfig) and config.along_row:
            defines["ALONG_ROW"] = 1
        if (isinstance(config, CorrelationConfig) and not flat_plane and not config.along_row and not rows_taps
                and channels_inner(self.kernel_layer, pass_name)):
            defines["CHANNELS_INNER"] = 1
        if isinstance(config, GradWeightConfig):
            defines.update(config.row_tap_defines(self.kernel_layer))
        if isinstance(config, GradWeightConfig) and flat_plane and across_images(self.params, config):
            defines["ACROSS_IMAGES"] = 1
        return defines

    def _correlate(self, pass_name, source, weight, bias, out, *, in_shape, grid, out_shape, placement, taps,
                   stride, offsets, dilation, weight_strides, wait_for):
        """One launch of cl/conv2d_tiled.cl: the (grid) output positions of a correlation of ``source``.

        in_shape: (N, channels, H, W) of source; grid: (channels, rows, columns) computed; out_shape:
        (rows, columns) of the output tensor; placement: (step_h, step_w, start_h, start_w) of the grid in it;
        taps: (R, S) of this launch.
        """
        p = self.kernel_layer
        config = self.configs[pass_name]
        n, ci_total, h_in, w_in = in_shape
        co_total, h_grid, w_grid = grid
        co = co_total // p.groups
        out_step_h, out_step_w, out_start_h, out_start_w = placement
        ws_group, ws_co, ws_ci, ws_r, ws_s = weight_strides
        args = CorrelationArgs(
            in_=source.buffer, in_offset=source.offset, weight=weight.buffer, weight_offset=weight.offset,
            **bias_args(bias), out=out.buffer, out_offset=out.offset, out_height=out_shape[0], out_width=out_shape[1],
            out_step_h=out_step_h, out_step_w=out_step_w, out_start_h=out_start_h, out_start_w=out_start_w,
            N=n, Ci=ci_total // p.groups, Hin=h_in, Win=w_in, Co=co, R=taps[0], S=taps[1], Hout=h_grid, Wout=w_grid,
            groups=p.groups, stride_h=stride[0], stride_w=stride[1], offset_h=offsets[0], offset_w=offsets[1],
            dil_h=dilation[0], dil_w=dilation[1], ws_group=ws_group, ws_co=ws_co, ws_ci=ws_ci, ws_r=ws_r, ws_s=ws_s)
        # On whole planes the plane is one NDRange axis: the work-group's first two axes merge into the first.
        local = config.local
        flat_local = one_axis(local)
        flat_plane = (whole_planes(p, pass_name)
                      and flat_local[0] <= self.target.info.device.max_work_item_sizes[0])
        blocks = n * p.groups * div_up(co, config.block_k)
        grid_plane = h_grid * w_in
        images_joined = flat_plane and grids_across_images(self.target.info, n, grid_plane, ci_total * h_in * w_in,
                                                           config)
        rows_taps = None
        if not flat_plane and whole_rows(self.target.info, config, ci_total // p.groups, w_in, w_grid, taps,
                                         offsets[1], stride, dilation):
            rows_taps = {"BLOCK_V": whole_rows_block(h_grid, config.block_k), "TAPS_R": taps[0], "TAPS_S": taps[1],
                         "OFFSET_W": offsets[1]}
        if images_joined:  # the images' grids as one sequence
            size, local = (div_up(n * grid_plane, config.vec * config.block_v), 1, blocks // n), flat_local
        elif flat_plane:  # rows as wide as the input's (see cl/conv2d_tiled.cl)
            size, local = (div_up(grid_plane, config.vec * config.block_v), 1, blocks), flat_local
        elif rows_taps:  # one vector per row
            size = (1, div_up(h_grid, rows_taps["BLOCK_V"]), blocks)
        elif config.along_row:
            size = (div_up(w_grid, config.vec * config.block_v), h_grid, blocks)
        else:
            size = (div_up(w_grid, config.vec), div_up(h_grid, config.block_v), blocks)
        defines = self._pass_defines(pass_name, flat_plane, images_joined, rows_taps)
        return self.launch(KERNELS[pass_name], defines, size, local, args, wait_for)

    def _matrix_product(self, pass_name, source, weight, bias, out, wait_for):
        """A pointwise layer's forward pass or input gradient (``source``: x or grad_output) as one matrix
        product per image, cl/pointwise_product.cl's rows i the output channels, its columns j the plane, its
        sum over the source's channels; ``bias`` per output channel."""
        p = self.params
        config = self.configs[pass_name]
        plane = p.H * p.W
        rows, summed = (p.K, p.C) if pass_name == "forward" else (p.C, p.K)
        # The (K, C) weight's element (k, c) is at k*C + c: A[r, i] is (i, r) forward and (r, i) backward.
        a_r, a_i = (1, p.C) if pass_name == "forward" else (p.C, 1)
        args = PointwiseProductArgs(
            a=weight.buffer, a_offset=weight.offset, a_batch=0, a_r=a_r, a_i=a_i,
            b=source.buffer, b_offset=source.offset, b_batch=summed * plane, b_r=plane, **bias_args(bias),
            out=out.buffer, out_offset=out.offset, out_batch=rows * plane, out_i=plane, out_j=1,
            partial=None, n_per_split=1, N=p.N, I=rows, J=plane, R=summed)
        defines = {"VEC": config.vec, "ROWS": config.block_k, "VECS": config.block_v, "OUT_ALONG_J": 1,
                   "BIAS_ON_ROWS": 1}
        size = (div_up(rows, config.block_k), div_up(plane, config.vec * config.block_v) * p.N)
        return self.launch("pointwise_product", defines, size, config.local[:2], args, wait_for)

    def _runs_matrix_product(self, pass_name: str) -> bool:
        """Whether a pass runs as a matrix product: its tile says so and the layer is one (a phase-split tile
        asks it of the phased layer, and a tuning record of another layer may ask it of any)."""
        return (self.configs[pass_name].matrix_product and not self.configs[pass_name].phase_split
                and matrix_product_applies(self.params))

    def _runs_channel_lanes(self, pass_name: str) -> bool:
        """Whether a pass runs with the channels it writes in the lanes: its tile says so, the layer has them in
        whole vectors of the tile's width (a tuning record of another layer may ask it of any), a forward tile's
        columns fit in an output row, and the copy it needs fits (``_copy_fits``)."""
        config = self.configs.get(pass_name)
        if not getattr(config, "channel_lanes", False) or config.phase_split or not self._copy_fits(pass_name):
            return False
        if pass_name == "forward" and config.block_v > self.params.Q:
            return False
        applies = {"forward": channel_lanes_applies, "grad_input": grad_input_lanes_apply,
                   "grad_weight": grad_weight_lanes_apply}[pass_name]
        return applies(self.params, config.vec)

    def _channel_lanes(self, x, weight, bias, y, wait_for, x_channels_last: bool = False):
        """The forward pass by cl/conv2d_channel_lanes.cl, after the (K, Cg*R*S) weight is copied as (Cg*R*S, K); x
        channels-first or (``x_channels_last``) channels-last."""
        p = self.params
        config = self.configs["forward"]
        with self.scratch("forward weight by tap", self._copy_bytes("forward"), wait_for) as by_tap:
            _, copied = channels_last.transposed(self.target, p.dtype, weight, p.K, p.C_per_group * p.R * p.S,
                                                 by_tap.wait_for, into=by_tap.buffer)
            args = ChannelLanesArgs(x=x.buffer, x_offset=x.offset, weight_by_tap=by_tap.buffer, **bias_args(bias),
                                    y=y.buffer, y_offset=y.offset, **self.geometry._asdict())
            size = (p.P * div_up(p.Q, config.block_v),
                    p.groups * div_up(p.K_per_group, config.vec * config.block_k), p.N)
            defines = dict(config.defines(), PADDED=int(any(p.padding)), X_CHANNELS_LAST=int(x_channels_last),
                           **column_stride_define(p.stride[1]))
            defines.update(fixed_row_defines(p, config))
            by_tap.last_read = self.launch(CHANNEL_LANES_KERNELS["forward"], defines, size, config.local, args,
                                           [copied])
            return by_tap.last_read

    def _grad_input_lanes(self, grad_output, weight, bias, grad_input, wait_for, grad_output_channels_last=False):
        """The input gradient by cl/conv2d_grad_input_channel_lanes.cl, after the (K, Cg, R*S) weight is copied as
        (R*S, K, Cg); grad_output channels-first or (``grad_output_channels_last``) channels-last."""
        p = self.params
        config = self.configs["grad_input"]
        with self.scratch("grad_input weight by tap", self._copy_bytes("grad_input"), wait_for) as by_tap:
            _, copied = channels_last.transposed(self.target, p.dtype, weight, p.K * p.C_per_group, p.R * p.S,
                                                 by_tap.wait_for, into=by_tap.buffer)
            args = GradInputLanesArgs(grad_output=grad_output.buffer, grad_output_offset=grad_output.offset,
                                      weight_by_tap=by_tap.buffer, **bias_args(bias), grad_input=grad_input.buffer,
                                      grad_input_offset=grad_input.offset, **self.geometry._asdict())
            size = (p.H * p.stride[1] * div_up(div_up(p.W, p.stride[1]), config.block_v),
                    p.groups * div_up(p.C_per_group, config.vec * config.block_k), p.N)
            defines = dict(config.defines(), GRAD_OUTPUT_CHANNELS_LAST=int(grad_output_channels_last),
                           **fixed_row_defines(p, config, "grad_input"))
            by_tap.last_read = self.launch(CHANNEL_LANES_KERNELS["grad_input"], defines, size, config.local, args,
                                           [copied])
            return by_tap.last_read

    def reads_channels_last(self, pass_name: str) -> bool:
        """Whether a pass runs a kernel with the channels it writes in the lanes, which reads its channels-last
        input (CHANNELS_LAST_READS) in that input's own memory: a weight gradient's grad_output is the
        (N, P, Q, K) copy it would otherwise make."""
        if self._phase_runner(pass_name) is not None:
            return False
        if pass_name != "grad_weight" and self._runs_matrix_product(pass_name):
            return False
        return self._runs_channel_lanes(pass_name)

    def run_channels_last(self, pass_name: str, tensors: dict, channels_last_inputs, out, wait_for):
        """Enqueue a pass that ``reads_channels_last``, its input CHANNELS_LAST_READS[pass_name] in its channels-last
        memory (``tensors`` by input name), a weight gradient's x too where it is among ``channels_last_inputs``;
        returns the last event."""
        if pass_name == "forward":
            return self._channel_lanes(tensors["x"], tensors["weight"], tensors.get("bias"), out, wait_for,
                                       x_channels_last=True)
        if pass_name == "grad_input":
            return self._grad_input_lanes(tensors["grad_output"], tensors["weight"], tensors.get("bias"), out,
                                          wait_for, grad_output_channels_last=True)
        return self._grad_weight_lanes(tensors["x"], tensors["grad_output"], out, wait_for,
                                       x_channels_last="x" in channels_last_inputs, grad_output_by_position=True)

    def _grad_weight_lanes(self, x, grad_output, grad_weight, wait_for, x_channels_last: bool = False,
                           grad_output_by_position: bool = False):
        """The weight gradient by cl/conv2d_grad_weight_channel_lanes.cl, after grad_output is copied from
        (N, K, P*Q) to (N, P*Q, K) unless it is given that way (``grad_output_by_position``); x channels-first or
        (``x_channels_last``) channels-last."""
        p = self.kernel_layer
        config = self.configs["grad_weight"]
        defines = dict(config.defines(), X_CHANNELS_LAST=int(x_channels_last), **column_stride_define(p.stride[1]))

        def launch_split(by_position, partial, n_per_split, splits, wait_for):
            args = self.grad_weight_args(x, by_position, partial, grad_weight, n_per_split, splits, layer=p)
            size = (config.tap_items(p), config.k_items(p), splits)
            return self.launch(CHANNEL_LANES_KERNELS["grad_weight"], defines, size, config.local, args, wait_for)

        if grad_output_by_position or grad_output.buffer is None:  # nothing to copy (an empty batch: nothing read)
            return self.split_sum("grad_weight", grad_weight, functools.partial(launch_split, grad_output), wait_for)
        with self.scratch("grad_output by position", self._copy_bytes("grad_weight"), wait_for) as by_position:
            _, copied = channels_last.transposed(self.target, p.dtype, grad_output, p.K, p.P * p.Q,
                                                 by_position.wait_for, matrices=p.N, into=by_position.buffer)
            by_position.last_read = self.split_sum(
                "grad_weight", grad_weight, functools.partial(launch_split, DeviceTensor(by_position.buffer, 0)),
                [copied])
            return by_position.last_read

    def forward(self, x, weight, bias, y, wait_for=None):
        if self._runs_matrix_product("forward"):
            return self._matrix_product("forward", x, weight, bias, y, wait_for)
        if self._runs_channel_lanes("forward"):
            return self._channel_lanes(x, weight, bias, y, wait_for)
        runner = self._phase_runner("forward")
        if runner is not None:
            return runner.forward(x, weight, bias, y, wait_for)
        p = self.kernel_layer
        RS = p.R * p.S
        return self._correlate(
            "forward", x, weight, bias, y, in_shape=p.input_shape, grid=(p.K, p.P, p.Q), out_shape=(p.P, p.Q),
            placement=(1, 1, 0, 0), taps=(p.R, p.S), stride=p.stride, offsets=(-p.padding[0], -p.padding[2]),
            dilation=p.dilation, weight_strides=(p.K_per_group * p.C_per_group * RS, p.C_per_group * RS, RS, p.S, 1),
            wait_for=wait_for)

    def grad_input(self, grad_output, weight, bias, grad_input, wait_for=None):
        """grad_input one phase (h mod stride_h, w mod stride_w) at a time; one phase at stride 1.

        Row h = h0 + stride_h*i receives tap r from grad_output row p = (h0 + pad_top - r*dil_h)/stride_h + i
        when that division is exact. Those taps are evenly spaced; walked backwards they read grad_output at
        i + offset + m*step (m = 0, 1, ...), a stride-1 correlation. Columns likewise.

        ``bias`` (C entries, or None) is added by every phase's launch: phases write disjoint elements, and a
        phase that no tap reaches still writes its elements (bias only, or zeros).
        """
        if self._runs_matrix_product("grad_input"):
            return self._matrix_product("grad_input", grad_output, weight, bias, grad_input, wait_for)
        if self._runs_channel_lanes("grad_input"):
            return self._grad_input_lanes(grad_output, weight, bias, grad_input, wait_for)
        p = self.kernel_layer
        RS = p.R * p.S
        event = None
        events = list(wait_for or [])
        for h0 in range(min(p.stride[0], p.H)):
            rows = _phase_taps(h0, p.padding[0], p.dilation[0], p.stride[0], p.R)
            for w0 in range(min(p.stride[1], p.W)):
                cols = _phase_taps(w0, p.padding[2], p.dilation[1], p.stride[1], p.S)
                # The first tap read is the last one listed: the weight walks backwards from it.
                flipped = weight._replace(offset=weight.offset + rows.last * p.S + cols.last)
                event = self._correlate(
                    "grad_input", grad_output, flipped, bias, grad_input, in_shape=p.output_shape,
                    grid=(p.C, div_up(p.H - h0, p.stride[0]), div_up(p.W - w0, p.stride[1])), out_shape=(p.H, p.W),
                    placement=(p.stride[0], p.stride[1], h0, w0), taps=(rows.count, cols.count), stride=(1, 1),
                    offsets=(rows.offset, cols.offset), dilation=(rows.step, cols.step),
                    weight_strides=(p.K_per_group * p.C_per_group * RS, RS, p.C_per_group * RS,
                                    -rows.spacing * p.S, -cols.spacing),
                    wait_for=events)
                events = [event]  # phases write disjoint outputs; the chain keeps one event to wait on
        return event

    def grad_weight(self, x, grad_output, grad_weight, wait_for=None):
        runner = self._phase_runner("grad_weight")
        if runner is not None:
            return runner.grad_weight(x, grad_output, grad_weight, wait_for)
        if self._runs_channel_lanes("grad_weight"):
            return self._grad_weight_lanes(x, grad_output, grad_weight, wait_for)
        p = self.kernel_layer
        config = self.configs["grad_weight"]
        defines = self._pass_defines("grad_weight", whole_planes(p, "grad_weight"))

        def launch_split(partial, n_per_split, splits, wait_for):
            args = self.grad_weight_args(x, grad_output, partial, grad_weight, n_per_split, splits, layer=p)
            size = (config.items(p), 1, splits)
            return self.launch(KERNELS["grad_weight"], defines, size, config.merged_local, args, wait_for)

        return self.split_sum("grad_weight", grad_weight, launch_split, wait_for)

    def grad_bias(self, grad_output, grad_bias, wait_for=None):
        if self._direct is None:
            self._direct = DirectAlgorithm(self.params, self.target, max_workspace_bytes=self.max_workspace_bytes)
        return self._direct.grad_bias(grad_output, grad_bias, wait_for)
