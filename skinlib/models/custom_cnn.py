"""Study A's custom CNN (a ResNet-18-shaped residual network trained from scratch) and study D's small CNN
(convolution and max-pooling stages, flattened into a dense layer)."""

from __future__ import annotations

from torch import Tensor, nn

from .factories import register_model


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm; a 1x1 projection shortcut when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


@register_model("residual_cnn")
class ResidualCNN(nn.Module):
    """7x7/2 stem, max-pool, stages of basic blocks doubling the width, global average pool, linear head.

    Args:
        num_classes: outputs of the head (1 for a binary task with a single logit).
        width: channels of the first stage (study A: 64); each later stage doubles it.
        blocks: basic blocks per stage (study A: (2, 2, 2, 2), as ResNet-18).
        dropout: dropout before the head.
        in_channels: input channels.
    """

    def __init__(self, num_classes: int = 7, width: int = 64, blocks: tuple[int, ...] = (2, 2, 2, 2),
                 dropout: float = 0.0, in_channels: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        layers, channels = [], width
        for i, n in enumerate(blocks):
            out = width * 2 ** i
            for j in range(n):
                layers.append(BasicBlock(channels, out, stride=2 if (j == 0 and i > 0) else 1))
                channels = out
        self.stages = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.pool(self.stages(self.stem(x))))


class SmallCNN(nn.Module):
    """Study D's baseline image CNN (its Fig. 3): stages of a 3x3 convolution, ReLU and 2x2 max-pooling, then the
    last feature map flattened into a dense ReLU layer; no residual blocks and no global pooling. Flattening ties
    the network to one input side, `image_size`. Maps images to `dense` features (a head adds the outputs).

    Args:
        image_size: side of the input images (the dense layer reads the flattened map of that side).
        widths: channels of each convolution stage (each halves the side).
        dense: width of the dense layer (the features' width).
        in_channels: input channels.
    """

    def __init__(self, image_size: int, widths: tuple[int, ...] = (32, 64, 128), dense: int = 128,
                 in_channels: int = 3):
        super().__init__()
        side, layers, channels = int(image_size), [], in_channels
        for width in widths:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            channels, side = width, side // 2
        if side < 1:
            raise ValueError(f"image_size {image_size} is too small for {len(widths)} max-pooling stages of the small "
                             f"CNN: use at least {2 ** len(widths)} px")
        self.image_size = int(image_size)
        self.stages = nn.Sequential(*layers)
        self.flatten = nn.Flatten()
        self.dense = nn.Sequential(nn.Linear(channels * side * side, dense), nn.ReLU(inplace=True))
        self.num_features = dense

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            raise ValueError(f"the small CNN was built for {self.image_size} px images (it flattens its feature map) "
                             f"and got {tuple(x.shape[-2:])}; build it with image_size={x.shape[-1]}")
        return self.dense(self.flatten(self.stages(x)))
