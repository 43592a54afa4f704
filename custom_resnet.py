"""The models of the course.

* ``CustomResNet``: David Page's 9-layer ResNet for CIFAR-10 ("How to train your ResNet"), the net the
  S10 lesson trains to 94% in 24 epochs.
* ``resnet50``: torchvision's ResNet-50 v1.5 (stride 2 in the 3x3 conv of each bottleneck), optionally
  with its ImageNet weights and a new head for another number of classes.
"""
import torch
from torch import nn
import torchvision


def conv_bn_relu(in_channels, out_channels, pool=False):
    """3x3 conv (no bias) -> [2x2 max-pool] -> BatchNorm -> ReLU.

    Pooling before the BatchNorm (as in the reference notebook) gives the same parameter count and does
    the normalisation on a quarter of the pixels.
    """
    layers = [nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    layers += [nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class ResidualBlock(nn.Module):
    """x + (conv-BN-ReLU -> conv-BN-ReLU)(x), channels unchanged."""

    def __init__(self, channels):
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(channels, channels), conv_bn_relu(channels, channels))

    def forward(self, x):
        return x + self.body(x)


class CustomResNet(nn.Module):
    """David Page's ResNet for 32x32 images: prep 64 -> layer1 128 (+res) -> layer2 256 -> layer3 512
    (+res) -> global max-pool -> linear.

    ``logit_scale`` multiplies the logits (Page's recipe uses 0.125, which keeps the softmax soft early in
    training); 1.0 gives the plain net of the reference notebook. It has no parameters, so the count is
    6,573,130 with 10 classes either way.
    """

    def __init__(self, num_classes=10, logit_scale=0.125):
        super().__init__()
        self.prep = conv_bn_relu(3, 64)
        self.layer1 = nn.Sequential(conv_bn_relu(64, 128, pool=True), ResidualBlock(128))
        self.layer2 = conv_bn_relu(128, 256, pool=True)
        self.layer3 = nn.Sequential(conv_bn_relu(256, 512, pool=True), ResidualBlock(512))
        self.pool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(512, num_classes)
        self.logit_scale = logit_scale

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.prep(x))))
        return self.fc(torch.flatten(self.pool(x), 1)) * self.logit_scale


def resnet50(num_classes=1000, pretrained=False, cifar_stem=False, zero_init_residual=True):
    """torchvision's ResNet-50 v1.5 (25,557,032 parameters with 1000 classes).

    ``zero_init_residual=True`` (the default here; torchvision's is False) starts the last batch-norm
    scale of every bottleneck at zero, so each block starts as its shortcut and the untrained net is a
    shallow one (Goyal et al. 2017, "Accurate, Large Minibatch SGD"; He et al. 2019, "Bag of Tricks").
    From scratch this is what lets the LR range test see ResNet-50 learn: with torchvision's
    initialisation the loss starts above chance, comes down towards it and takes off at 4e-3 to 9e-3
    without ever falling below it (``Data/imagenet_lr_sweep_range_tests.png``). It does not matter for ``pretrained``.

    ``pretrained=True`` loads torchvision's ImageNet-1K weights (IMAGENET1K_V2; downloaded once into the
    torch hub cache) and, when ``num_classes`` differs from 1000, replaces the final linear layer with a
    freshly initialised one. ``cifar_stem=True`` is the usual stem for 32x32 inputs: a 3x3 stride-1 first
    convolution and no max-pool (23,520,842 parameters with 10 classes), the rest unchanged.
    """
    if not pretrained:
        model = torchvision.models.resnet50(weights=None, num_classes=num_classes,
                                            zero_init_residual=zero_init_residual)
        return with_cifar_stem(model) if cifar_stem else model
    weights = torchvision.models.ResNet50_Weights.IMAGENET1K_V2
    try:
        model = torchvision.models.resnet50(weights=weights)
    except (OSError, RuntimeError) as error:  # URLError is an OSError
        raise RuntimeError(
            f"Could not load the pretrained ResNet-50 weights ({weights.url}): {error}. They are "
            "downloaded once into the torch hub cache; run once with network access, copy the file into "
            f"{torch.hub.get_dir()}/checkpoints/, or train from scratch without --pretrained."
        ) from error
    if num_classes != model.fc.out_features:
        model.fc = nn.Linear(model.fc.in_features, num_classes)
    return with_cifar_stem(model) if cifar_stem else model


def with_cifar_stem(model):
    """Replace a torchvision ResNet's ImageNet stem (7x7 stride-2 conv + max-pool, for 224px inputs) by a
    3x3 stride-1 conv and no max-pool, so 32x32 images keep their resolution into the first stage."""
    model.conv1 = nn.Conv2d(3, model.conv1.out_channels, 3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


def build_model(name_or_dataset, num_classes, pretrained=False, zero_init_residual=True):
    """The net for a model or data-set name: ``"custom_resnet"`` or CIFAR names give ``CustomResNet``;
    ``"resnet50"``, ImageNet names and image folders give ResNet-50 v1.5; ``"resnet50_cifar"`` the
    ResNet-50 with the CIFAR stem (``zero_init_residual``: see ``resnet50``)."""
    name = str(name_or_dataset).lower()
    if name in ("custom_resnet", "cifar10", "cifar100", "cifar", "custom_resnet_cifar"):
        if pretrained:
            raise ValueError("there are no pretrained weights for the custom ResNet; train it from scratch")
        return CustomResNet(num_classes)
    if name == "resnet50_cifar":
        return resnet50(num_classes, pretrained, cifar_stem=True, zero_init_residual=zero_init_residual)
    if name in ("resnet50", "imagenet", "imagenet1k", "imagefolder", "custom"):
        return resnet50(num_classes, pretrained, zero_init_residual=zero_init_residual)
    raise ValueError(f"unknown model or data set {name_or_dataset!r}: use custom_resnet, resnet50, resnet50_cifar, "
                     "cifar10, cifar100 or imagenet")


def load_pretrained_resnet50(device="cpu", num_classes=1000, input_size=224):
    """The specification's loader: ``resnet50(num_classes, pretrained=True)`` on ``device``, with the CIFAR
    stem when ``input_size`` is 64 or less."""
    return resnet50(num_classes, pretrained=True, cifar_stem=input_size <= 64).to(device)
