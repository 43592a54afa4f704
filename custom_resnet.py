"""The models of the course.

* ``CustomResNet``: David Page's 9-layer ResNet for CIFAR-10 ("How to train your ResNet"), the net the
  S10 lesson trains to 94% in 24 epochs.
* ``SpeedrunNet``: the third lesson's small net after Keller Jordan's airbench94 (a frozen patch-whitening
  layer, three conv groups, no residuals), 94% in 10 epochs with the speedrun recipe.
* ``resnet50``: torchvision's ResNet-50 v1.5 (stride 2 in the 3x3 conv of each bottleneck), optionally
  with its ImageNet weights and a new head for another number of classes.
"""
import torch
from torch import nn
import torchvision


class PretrainedWeightsError(RuntimeError):
    """torchvision's pretrained weights could not be downloaded or read (offline, say)."""


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


def patch_covariance(images, patch=2):
    """The second-moment matrix of every ``patch`` x ``patch`` patch of ``images`` (N x C x H x W), one
    row and column per pixel and channel of a patch (C * patch * patch): the covariance of the patches of
    normalised images. Neighbouring pixels and the three channels of natural images are strongly
    correlated, so it is far from the identity; ``PatchWhitening`` makes its outputs' close to it."""
    channels = images.shape[1]
    patches = images.float().unfold(2, patch, 1).unfold(3, patch, 1)  # N x C x H' x W' x p x p
    patches = patches.permute(0, 2, 3, 1, 4, 5).reshape(-1, channels * patch * patch)
    return patches.T @ patches / len(patches)


@torch.no_grad()
def whitened_covariance(layer, images):
    """The covariance of ``layer``'s (a ``PatchWhitening``) first half of outputs before its activation
    and bias: each filter's response to every patch of ``images``. Close to the identity after
    ``layer.initialize`` on the same kind of images."""
    half = layer.conv.out_channels // 2
    outputs = nn.functional.conv2d(images.float(), layer.conv.weight[:half].float())
    return patch_covariance(outputs, patch=1)


class PatchWhitening(nn.Module):
    """A frozen convolution that whitens ``patch`` x ``patch`` patches of the training images, then GELU.

    ``initialize(images)`` sets its filters from the patches of (normalised) training images: the
    eigenvectors of their second-moment matrix, each scaled by ``1 / sqrt(eigenvalue + eps)``, and their
    negatives (so no information is lost to the activation). Its first half of output channels then has
    a covariance close to the identity: every direction of a patch starts on an equal footing (David
    Page's "How to train your ResNet" part 8; Keller Jordan's airbench uses 2x2 patches). The filters
    never train; the bias trains for the first ``bias_train_steps`` training steps and is frozen after,
    as in airbench94.

    The steps are counted on the host, by a hook that runs when a backward pass has added to the bias's
    gradient, and the forward pass reads only the flag ``bias_trains``. Comparing a count kept on the GPU
    would make every step wait for the GPU, and would break a ``torch.compile``d graph in two; this way the
    compiled forward is one graph, compiled again once, when the bias freezes. The ``steps`` buffer keeps
    the count (it stops at ``bias_train_steps``) in the state dict, so a resumed run freezes it at the same
    step."""

    def __init__(self, in_channels=3, patch=2, eps=5e-4, bias_train_steps=0):
        super().__init__()
        self.eps, self.trained_steps = eps, 0
        self.conv = nn.Conv2d(in_channels, 2 * in_channels * patch * patch, patch, bias=True)
        self.conv.weight.requires_grad_(False)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.bias_train_steps = bias_train_steps
        self.conv.bias.register_post_accumulate_grad_hook(self._count_step)
        self.register_load_state_dict_post_hook(self._restore_count)

    def __setstate__(self, state):
        """A copy (``copy.deepcopy``, unpickling) counts its own steps: tensors are copied without hooks."""
        super().__setstate__(state)
        self.conv.bias.register_post_accumulate_grad_hook(self._count_step)

    @property
    def bias_train_steps(self):
        """The training steps of the bias before it freezes (``main.py`` sets it from the epochs)."""
        return self._bias_train_steps

    @bias_train_steps.setter
    def bias_train_steps(self, steps):
        self._bias_train_steps = steps
        self.bias_trains = self.trained_steps < steps

    def _count_step(self, bias):
        """A backward pass reached the bias: one training step, counted on the host and, without reading
        it back, in the buffer. Once frozen, none: a compiled graph's backward still calls it, gradient-less."""
        if self.bias_trains:
            self.trained_steps += 1
            self.steps.add_(1)
            self.bias_trains = self.trained_steps < self.bias_train_steps

    @staticmethod
    def _restore_count(module, incompatible_keys):
        """After ``load_state_dict``: the host's count from the buffer (one read per load, none per step)."""
        module.trained_steps = int(module.steps)
        module.bias_trains = module.trained_steps < module.bias_train_steps

    @torch.no_grad()
    def initialize(self, images):
        """Fit the filters to ``images`` (N x C x H x W floats, normalised as the net will see them)."""
        channels, patch = self.conv.in_channels, self.conv.kernel_size[0]
        eigenvalues, eigenvectors = torch.linalg.eigh(patch_covariance(images, patch))
        filters = (eigenvectors.T / torch.sqrt(eigenvalues + self.eps)[:, None]).flip(0)
        filters = filters.reshape(-1, channels, patch, patch)
        self.conv.weight.copy_(torch.cat((filters, -filters)))
        self.conv.bias.zero_()
        return self

    def forward(self, x):
        # frozen: detached, so it gets no gradient and SGD leaves it (and its weight decay) alone
        bias = self.conv.bias if self.bias_trains else self.conv.bias.detach()
        return nn.functional.gelu(nn.functional.conv2d(x, self.conv.weight, bias))


def _frozen_scale_norm(channels):
    """BatchNorm with its scale frozen at 1 (only the bias trains), eps 1e-12 and running-statistic
    momentum 0.4, airbench94's settings."""
    norm = nn.BatchNorm2d(channels, eps=1e-12, momentum=0.4)
    norm.weight.requires_grad_(False)
    return norm


class SpeedrunBlock(nn.Module):
    """conv3x3 -> 2x2 max-pool -> BN -> GELU -> conv3x3 -> BN -> GELU, the convs starting as identities
    on their first input channels (Dirac initialisation)."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm1, self.norm2 = _frozen_scale_norm(out_channels), _frozen_scale_norm(out_channels)
        for conv in (self.conv1, self.conv2):
            nn.init.dirac_(conv.weight[:conv.in_channels])

    def forward(self, x):
        x = nn.functional.gelu(self.norm1(nn.functional.max_pool2d(self.conv1(x), 2)))
        return nn.functional.gelu(self.norm2(self.conv2(x)))


class SpeedrunNet(nn.Module):
    """The third lesson's net for 32x32 images, after Keller Jordan's airbench94 (MIT): a frozen 2x2
    patch-whitening layer (24 channels), three ``SpeedrunBlock``s of widths 64, 256, 256 (no residual
    connections), a 3x3 max-pool and a linear layer without bias, logits x 1/9. About 2 million weights,
    a ninth of ``CustomResNet``'s compute per image. Call ``whiten.initialize(images)`` with training
    images before training."""

    def __init__(self, num_classes=10, widths=(64, 256, 256), logit_scale=1 / 9, whiten_bias_train_steps=0):
        super().__init__()
        self.whiten = PatchWhitening(bias_train_steps=whiten_bias_train_steps)
        channels = [self.whiten.conv.out_channels, *widths]
        self.blocks = nn.Sequential(*(SpeedrunBlock(a, b) for a, b in zip(channels, channels[1:])))
        self.fc = nn.Linear(widths[-1], num_classes, bias=False)
        self.logit_scale = logit_scale

    def forward(self, x):
        x = nn.functional.max_pool2d(self.blocks(self.whiten(x)), 3)
        return self.fc(torch.flatten(x, 1)) * self.logit_scale


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
        raise PretrainedWeightsError(
            f"could not download (or read) the pretrained ResNet-50 weights {weights.url} ({error}). They are "
            "downloaded once into the torch hub cache: run once with network access, copy the file into "
            f"{torch.hub.get_dir()}/checkpoints/ (TORCH_HOME moves it), or train from scratch without --pretrained"
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
    if name == "speedrun":
        if pretrained:
            raise ValueError("there are no pretrained weights for SpeedrunNet; train it from scratch")
        return SpeedrunNet(num_classes)
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
