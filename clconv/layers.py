"""The benchmark's layer suite, kept as data: convolution layers of real networks.

Each layer is (network, name, C, H, W, K, R, S, stride, padding, groups) at its real input size; the
batch size is chosen per layer so that one pass costs about a GFLOP, which keeps the whole suite within
minutes on a 2-core CPU while the larger layers keep their real spatial sizes.
"""

from __future__ import annotations

import dataclasses

from .params import Conv2DParams


@dataclasses.dataclass(frozen=True)
class Layer:
    network: str
    name: str
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    stride: int = 1
    padding: int = 0
    groups: int = 1

    @property
    def label(self) -> str:
        return f"{self.network}/{self.name}"

    def params(self, batch: int, dtype="float32") -> Conv2DParams:
        return Conv2DParams.create((batch, self.C, self.H, self.W), (self.K, self.C // self.groups, self.R, self.S),
                                   self.stride, self.padding, 1, self.groups, dtype)

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
