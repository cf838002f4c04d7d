"""PyTorch reference of the authors' architectures, written for the speed benchmarks only.

Same layers, shapes and parameter counts as `tfminv.models.build_classifier` / `build_inverter`
(checked by bench/tests), so a training step does the same arithmetic in both frameworks.
Tensors are NCHW (PyTorch's native layout); `channels_last` is applied by the caller.
PyTorch is an optional dependency (`pip install tfminv[bench]`); nothing outside bench/ imports it.
"""

from __future__ import annotations

import torch
from torch import nn

FACE_CLASSIFIER_CHANNELS = (128, 256, 512, 1024)
DIGIT_CLASSIFIER_CHANNELS = (128, 256, 512)
FACE_INVERTER_CHANNELS = (1024, 512, 256, 128)
DIGIT_INVERTER_CHANNELS = (512, 256, 128)


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


class Classifier(nn.Module):
    """Conv3x3 -> BN -> MaxPool2 -> ReLU blocks, Flatten, Dense(hidden), Dropout 0.5, Dense(m)."""

    def __init__(self, num_classes: int, image_size: int, width: float = 1.0):
        super().__init__()
        face = image_size == 64
        channels = FACE_CLASSIFIER_CHANNELS if face else DIGIT_CLASSIFIER_CHANNELS
        hidden = 5 * num_classes if face else 50
        layers, cin = [], 1
        for ch in channels:
            ch = _scaled(ch, width)
            layers += [nn.Conv2d(cin, ch, 3, padding=1), nn.BatchNorm2d(ch, eps=1e-5, momentum=0.1),
                       nn.MaxPool2d(2), nn.ReLU(inplace=True)]
            cin = ch
        self.features = nn.Sequential(*layers)
        spatial = image_size // 2 ** len(channels)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(cin * spatial * spatial, hidden),
                                  nn.Dropout(0.5), nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.head(self.features(x))


class Inverter(nn.Module):
    """Vector -> 1x1 -> ConvT 4x4 valid -> [BN, Tanh, ConvT 4x4 s2]... -> 1 channel -> Sigmoid."""

    def __init__(self, input_dim: int, image_size: int, width: float = 1.0):
        super().__init__()
        channels = FACE_INVERTER_CHANNELS if image_size == 64 else DIGIT_INVERTER_CHANNELS
        layers, cin = [], input_dim
        for i, ch in enumerate(channels):
            ch = _scaled(ch, width)
            conv = (nn.ConvTranspose2d(cin, ch, 4, 1, 0) if i == 0
                    else nn.ConvTranspose2d(cin, ch, 4, 2, 1))
            layers += [conv, nn.BatchNorm2d(ch, eps=1e-5, momentum=0.1), nn.Tanh()]
            cin = ch
        layers += [nn.ConvTranspose2d(cin, 1, 4, 2, 1), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)
        self.input_dim = input_dim

    def forward(self, v):
        return self.net(v.reshape(v.shape[0], self.input_dim, 1, 1))


def build(kind: str, m: int, image_size: int, width: float = 1.0) -> nn.Module:
    """`kind` is 'classifier' or 'inverter'; m is the number of classes / prediction length."""
    if kind == "classifier":
        return Classifier(m, image_size, width)
    if kind == "inverter":
        return Inverter(m, image_size, width)
    raise ValueError(f"unknown model kind {kind!r}: expected 'classifier' or 'inverter'")


def authors_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """Adam(lr 2e-4, beta1 0.5, beta2 0.999, amsgrad), the authors' training optimiser."""
    return torch.optim.Adam(model.parameters(), lr=2e-4, betas=(0.5, 0.999), amsgrad=True)


def count_params(model: nn.Module) -> int:
    """Trainable parameters plus BatchNorm running statistics (Keras counts both)."""
    n = sum(p.numel() for p in model.parameters())
    n += sum(b.numel() for name, b in model.named_buffers() if not name.endswith("num_batches_tracked"))
    return n
