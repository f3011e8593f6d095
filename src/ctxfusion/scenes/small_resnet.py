"""ResNet18 layout (BasicBlock, stages [2, 2, 2, 2]) with a width setting.

torchvision's ``ResNet`` fixes the stage widths at 64-512, so this module builds the same layout
with channels ``width * (1, 2, 4, 8)`` from torchvision's own ``BasicBlock``. Parameter names
and shapes equal torchvision's ``resnet18`` at ``width=64``, so its state dicts load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, conv1x1


class SmallResNet(nn.Module):
    """ResNet18 with stage widths ``width * (1, 2, 4, 8)``; ``feature_dim = 8 * width``."""

    def __init__(self, width: int = 16, num_classes: int = 1000) -> None:
        super().__init__()
        if width < 1 or num_classes < 1:
            raise ValueError(f"width={width} and num_classes={num_classes} must be >= 1")
        self.width = width
        self.inplanes = width
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(width, stride=1)
        self.layer2 = self._make_layer(width * 2, stride=2)
        self.layer3 = self._make_layer(width * 4, stride=2)
        self.layer4 = self._make_layer(width * 8, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.feature_dim = width * 8
        self.fc = nn.Linear(self.feature_dim, num_classes)
        for module in self.modules():  # torchvision's initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _make_layer(self, planes: int, stride: int) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes, stride),
                                       nn.BatchNorm2d(planes))
        blocks = [BasicBlock(self.inplanes, planes, stride, downsample), BasicBlock(planes, planes)]
        self.inplanes = planes
        return nn.Sequential(*blocks)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N,3,H,W) normalised images -> (N, feature_dim) global-average-pooled activations."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
