"""The benchmark's layer suite, kept as data: convolution layers of real networks.

Each layer is (network, name, C, H, W, K, R, S, stride, padding, groups) at its real input size, and a kind:
a 2-D convolution by default, or a 1-D, transposed 2-D or 3-D one (:data:`KINDS`; a 3-D layer adds its depth
D and its kernel's T). The batch size is chosen per layer so that one pass costs about a GFLOP, which keeps
the whole suite within minutes on a 2-core CPU while the larger layers keep their real spatial sizes.
"""

from __future__ import annotations

import dataclasses
import typing

from .params import PASS_CALLS, PASSES, TRANSPOSED_PASS_CALLS, Conv2DParams, ConvTranspose2DParams
from .params_1d import Conv1DParams
from .params_3d import Conv3DParams
from .plan_3d import plan_for_3d
from .planning import plan_for


@dataclasses.dataclass(frozen=True)
class LayerKind:
    """What one kind of layer is made of.

    :param create: ``(layer, batch, dtype)`` -> the layer's params (a Conv2DParams, Conv1DParams, ...);
    :param pass_calls: the functions of its passes in :mod:`clconv.api` and :mod:`clconv.reference`
        (``params.PASS_CALLS`` or ``TRANSPOSED_PASS_CALLS``; the rank of the params picks conv1d, conv2d ...);
    :param conv2d: params -> the 2-D layer whose plan clconv runs for them (the params themselves, a 1-D layer
        with H = 1, a transposed layer's convolution, a 3-D layer's on its input unfolded along depth), the
        layer ``clconv tune`` tunes for them;
    :param conv2d_passes: the pass of that 2-D plan computing each of the layer's passes;
    :param own_plan: ``(params, target, algo)`` -> the plan the layer's functions run, where that is not the
        2-D layer's plan itself (a 3-D layer's, which unfolds the input along depth for it).
    """

    create: typing.Callable
    pass_calls: dict
    conv2d: typing.Callable
    conv2d_passes: typing.Mapping[str, str] = dataclasses.field(default_factory=lambda: {p: p for p in PASSES})
    own_plan: typing.Optional[typing.Callable] = None

    @property
    def transposed(self) -> bool:
        return self.pass_calls is TRANSPOSED_PASS_CALLS

    def plan(self, params, target, algo: str = "auto"):
        """The plan that runs the passes of ``params`` on ``target``, as the public functions find it in the plan
        cache: ``own_plan``'s, else that of its 2-D layer (its ``algorithms`` and ``workspace_bytes`` are by the
        passes of that layer: see ``conv2d_passes``)."""
        if self.own_plan is not None:
            return self.own_plan(params, target, algo)
        return plan_for(self.conv2d(params), target, algo)


def _conv2d(layer: "Layer", batch: int, dtype) -> Conv2DParams:
    return Conv2DParams.create((batch, layer.C, layer.H, layer.W), (layer.K, layer.C // layer.groups, layer.R, layer.S),
                               layer.stride, layer.padding, 1, layer.groups, dtype)


def _conv1d(layer: "Layer", batch: int, dtype) -> Conv1DParams:
    return Conv1DParams.create((batch, layer.C, layer.W), (layer.K, layer.C // layer.groups, layer.S), layer.stride,
                               layer.padding, 1, layer.groups, dtype)


def _conv_transpose2d(layer: "Layer", batch: int, dtype) -> ConvTranspose2DParams:
    # PyTorch's weight layout: (C_in, C_out/groups, kH, kW).
    return ConvTranspose2DParams.create((batch, layer.C, layer.H, layer.W),
                                        (layer.C, layer.K // layer.groups, layer.R, layer.S), layer.stride,
                                        layer.padding, layer.output_padding, layer.groups, 1, dtype)


def _conv3d(layer: "Layer", batch: int, dtype) -> Conv3DParams:
    return Conv3DParams.create((batch, layer.C, layer.D, layer.H, layer.W),
                               (layer.K, layer.C // layer.groups, layer.T, layer.R, layer.S), layer.stride,
                               layer.padding, 1, layer.groups, dtype)


#: Every kind of layer the suite holds, by the name of its forward function in clconv.api.
KINDS = {
    "conv2d": LayerKind(_conv2d, PASS_CALLS, lambda p: p),
    "conv1d": LayerKind(_conv1d, PASS_CALLS, lambda p: p.layer),
    "conv_transpose2d": LayerKind(_conv_transpose2d, TRANSPOSED_PASS_CALLS, lambda p: p.conv,
                                  ConvTranspose2DParams.CONV_PASSES),
    "conv3d": LayerKind(_conv3d, PASS_CALLS, lambda p: p.layer, own_plan=plan_for_3d),
}


@dataclasses.dataclass(frozen=True)
class Layer:
    """One layer of a real network at its real input size.

    C input and K output channels, an H x W input and an R x S kernel; ``kind`` (a key of :data:`KINDS`) says
    what convolution it is. A 1-D layer (``conv1d``) has H = R = 1: W is its length and S its kernel. A
    transposed layer (``conv_transpose2d``) maps C channels to K with PyTorch's weight (C, K/groups, R, S),
    and ``output_padding`` only applies to it. A 3-D layer (``conv3d``) has a D x H x W input and a T x R x S
    kernel; the other kinds have D = T = 1. stride, padding and output_padding are given as the kind's
    function in :mod:`clconv.api` takes them (an int, or a 1-D layer's (left, right) padding, say).
    """

    network: str
    name: str
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    stride: object = 1
    padding: object = 0
    groups: int = 1
    kind: str = "conv2d"
    output_padding: object = 0
    D: int = 1
    T: int = 1

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"{self.label}: kind must be one of {tuple(KINDS)}, got {self.kind!r}")
        if self.kind == "conv1d" and (self.H, self.R) != (1, 1):
            raise ValueError(f"{self.label}: a 1-D layer has H = R = 1 (W is its length, S its kernel), "
                             f"got H={self.H}, R={self.R}")
        if self.kind != "conv3d" and (self.D, self.T) != (1, 1):
            raise ValueError(f"{self.label}: only a 3-D layer has a depth, got D={self.D}, T={self.T} for {self.kind}")
        if self.output_padding and not self.layer_kind.transposed:
            raise ValueError(f"{self.label}: output_padding is for transposed layers, not {self.kind}")

    @property
    def label(self) -> str:
        return f"{self.network}/{self.name}"

    @property
    def layer_kind(self) -> LayerKind:
        return KINDS[self.kind]

    @property
    def pass_calls(self) -> dict:
        """The functions that run its passes (see :class:`LayerKind`)."""
        return self.layer_kind.pass_calls

    def params(self, batch: int, dtype="float32"):
        """The layer at batch size ``batch``: a Conv2DParams, Conv1DParams, ConvTranspose2DParams or Conv3DParams,
        by kind."""
        return self.layer_kind.create(self, batch, dtype)

    def batch_for(self, flops_per_pass: float = 1e9, largest: int = 64) -> int:
        per_image = self.params(1).flops("forward")
        return max(1, min(largest, round(flops_per_pass / per_image)))


SUITE = (
    Layer("LeNet-5", "conv1", 1, 32, 32, 6, 5, 5),
    Layer("LeNet-5", "conv2", 6, 14, 14, 16, 5, 5),
    Layer("ResNet-18", "conv1", 3, 224, 224, 64, 7, 7, stride=2, padding=3),
    Layer("ResNet-18", "layer1.conv", 64, 56, 56, 64, 3, 3, padding=1),
    Layer("ResNet-18", "layer2.0.conv1", 64, 56, 56, 128, 3, 3, stride=2, padding=1),
    Layer("ResNet-18", "layer2.0.downsample", 64, 56, 56, 128, 1, 1, stride=2),
    Layer("ResNet-18", "layer3.conv", 256, 14, 14, 256, 3, 3, padding=1),
    Layer("ResNet-18", "layer4.conv", 512, 7, 7, 512, 3, 3, padding=1),
    Layer("ResNet-50", "layer1.0.conv1", 64, 56, 56, 64, 1, 1),
    Layer("ResNet-50", "layer1.0.conv3", 64, 56, 56, 256, 1, 1),
    Layer("ResNet-50", "layer2.1.conv2", 128, 28, 28, 128, 3, 3, padding=1),
    Layer("ResNet-50", "layer3.1.conv1", 1024, 14, 14, 256, 1, 1),
    Layer("ResNet-50", "layer4.1.conv3", 512, 7, 7, 2048, 1, 1),
    Layer("VGG-16", "conv1_2", 64, 224, 224, 64, 3, 3, padding=1),
    Layer("VGG-16", "conv3_2", 256, 56, 56, 256, 3, 3, padding=1),
    Layer("VGG-16", "conv5_2", 512, 14, 14, 512, 3, 3, padding=1),
    Layer("MobileNet-v2", "features.1.dw", 32, 112, 112, 32, 3, 3, padding=1, groups=32),
    Layer("MobileNet-v2", "features.2.expand", 16, 112, 112, 96, 1, 1),
    Layer("MobileNet-v2", "features.2.dw-s2", 96, 112, 112, 96, 3, 3, stride=2, padding=1, groups=96),
    Layer("MobileNet-v2", "features.14.dw", 576, 14, 14, 576, 3, 3, padding=1, groups=576),
    Layer("MobileNet-v2", "features.18.pw", 320, 7, 7, 1280, 1, 1),
    # The feature encoder's second convolution (feature_extractor.conv_layers.1) on one second of 16 kHz audio:
    # the first one (kernel 10, stride 5) leaves 3199 frames.
    Layer("wav2vec2", "conv_layers.1", 512, 1, 3199, 512, 1, 3, stride=2, kind="conv1d"),
    # The DCGAN generator of PyTorch's tutorial (ngf = 64): its transposed convolution main.9, from 16x16 to 32x32.
    Layer("DCGAN", "main.9", 128, 16, 16, 64, 4, 4, stride=2, padding=1, kind="conv_transpose2d"),
    # torchvision's r3d_18 on 16-frame 112x112 clips: layer3 runs on 4 frames of 14x14.
    Layer("R3D-18", "layer3.conv", 256, 14, 14, 256, 3, 3, padding=1, kind="conv3d", D=4, T=3),
)

QUICK = ("LeNet-5/conv2", "ResNet-18/layer1.conv", "ResNet-18/layer2.0.conv1", "ResNet-50/layer3.1.conv1",
         "MobileNet-v2/features.1.dw")


def select(names=None, quick: bool = False) -> list[Layer]:
    """Layers by label (or by network name), the quick subset, or the whole suite."""
    if quick:
        names = QUICK
    if not names:
        return list(SUITE)
    chosen = [layer for layer in SUITE if layer.label in names or layer.network in names]
    unknown = [n for n in names if not any(n in (layer.label, layer.network) for layer in SUITE)]
    if unknown:
        raise ValueError(f"unknown layers {unknown}; known: {[layer.label for layer in SUITE]}")
    return chosen
