"""The specification's names: the aliases and shims through which the calls of the specification this
repository was built from (``../shared/spec``: the S10 reference notebook, the ResNet-50 one-cycle module,
the implementation summary) keep working. Each stands for the repository's own function, named in its
docstring; a lesson uses those.

The modules the specification imports these names from re-export them from here (``training_utils``:
``train_epoch``, ``evaluate``; ``lr_finder``: ``train_with_one_cycle``, ``plot_training_history``,
``find_lr_advanced``; ``utils``: ``visualize_cifar_augmentation``, ``display_loss_and_accuracies``,
``display_cifar_misclassified_data``; ``visualize``: ``display_cifar_data_samples``; ``dataset``:
``TransformedDataset``). So that they can, this module imports nothing from the repository when it is
imported: each shim imports what it stands for when it is called.
"""


def train_epoch(*args, **kwargs):
    """The specification's name for ``training_utils.train``: one training epoch."""
    from training_utils import train
    return train(*args, **kwargs)


def evaluate(*args, **kwargs):
    """The specification's name for ``training_utils.test``: one evaluation pass."""
    from training_utils import test
    return test(*args, **kwargs)


def find_lr_advanced(*args, **kwargs):
    """The specification's name for ``lr_finder.find_lr``: the range test with several suggestions."""
    from lr_finder import find_lr
    return find_lr(*args, **kwargs)


def plot_training_history(*args, **kwargs):
    """The specification's name for ``visualize.plot_history``: the loss and accuracy curves of a history."""
    from visualize import plot_history
    return plot_history(*args, **kwargs)


def train_with_one_cycle(model, train_loader, val_loader, optimizer, criterion, max_lr, num_epochs, device=None,
                         recipe=None, **fit_options):
    """The specification's one call, ``training_utils.fit`` under ``OneCycleLR``: train ``num_epochs`` epochs
    with the one cycle peaking at ``max_lr`` (the one-cycle settings of ``recipe``, by default
    ``recipes.IMAGENET``'s: 30% warm-up, cosine annealing, momentum cycled 0.95 -> 0.85 -> 0.95), evaluating
    on ``val_loader`` after each epoch; returns the history dict of ``fit`` (``train_loss``, ``train_acc``,
    ``test_loss``, ``test_acc``, the per-step ``lr`` and ``momentum``). ``device`` defaults to CUDA when
    available; ``fit_options`` go to ``fit`` (``checkpoint_dir``, ``precision``, ``seed``, ...)."""
    from dataclasses import replace

    import torch

    from precision import get_device
    from recipes import IMAGENET, build_one_cycle
    from training_utils import fit

    device = torch.device(device) if device is not None else get_device()
    scheduler = build_one_cycle(replace(recipe or IMAGENET, max_lr=max_lr, epochs=num_epochs), optimizer,
                                len(train_loader))
    return fit(model, device, train_loader, val_loader, optimizer, criterion, num_epochs, scheduler, **fit_options)


# ------------------------------------------------------------------ the S10 reference notebook's names
def TransformedDataset(root="./data", train=True, download=True, transform=None, name="cifar10", seed=0):  # noqa: N802
    """The reference notebook's CIFAR-10 data set, ``dataset.AlbumentationsDataset`` over ``load_cifar``:
    ``TransformedDataset('./data', train=True, download=True)`` loads CIFAR-10 (``.npz``, torchvision
    folder or download) and applies the S10 training (or test) transforms, normalised with the training
    set's statistics, unless ``transform`` is given. ``.data`` holds the raw uint8 images and ``.targets``
    the labels, as torchvision's CIFAR10 does."""
    from dataset import (AlbumentationsDataset, ImageArrays, channel_stats, cifar_test_transforms,
                         cifar_train_transforms, load_cifar)

    images, labels = load_cifar(name, root, train, download)
    if transform is None:
        mean, std = channel_stats(images if train else load_cifar(name, root, True, download)[0])
        transform = cifar_train_transforms(mean, std) if train else cifar_test_transforms(mean, std)
    data_set = AlbumentationsDataset(ImageArrays(images, labels), transform, seed)
    data_set.data, data_set.targets = images, labels
    return data_set


def display_cifar_data_samples(data_set, number_of_samples, classes, save_path=None):
    """The reference notebook's call for ``visualize.plot_samples`` of the first ``number_of_samples`` items
    of any (image, label) data set (a torchvision CIFAR10, ``TransformedDataset``, ...)."""
    from visualize import plot_samples

    items = [data_set[index] for index in range(number_of_samples)]
    return plot_samples([image for image, _ in items], [label for _, label in items], classes,
                        count=number_of_samples, save_path=save_path)


def visualize_cifar_augmentation(data_set, transforms, count=5, save_path=None):
    """The reference notebook's call for ``visualize.plot_augmentations`` of each transform in
    ``transforms`` (a dict name -> Albumentations transform) on the first ``count`` raw images of
    ``data_set`` (one with ``.data``, e.g. ``TransformedDataset`` or torchvision's CIFAR10)."""
    import numpy as np

    from visualize import plot_augmentations

    return plot_augmentations([np.asarray(image) for image in data_set.data[:count]], transforms, save_path)


def display_loss_and_accuracies(train_losses, train_acc, test_losses, test_acc, save_path=None):
    """The reference notebook's call for ``visualize.plot_history`` of four per-epoch lists."""
    from visualize import plot_history

    return plot_history({"train_loss": train_losses, "train_acc": train_acc, "test_loss": test_losses,
                         "test_acc": test_acc}, save_path)


def display_cifar_misclassified_data(misclassified_data, classes, inv_normalize, number_of_samples=10, save_path=None):
    """The reference notebook's call for ``visualize.plot_misclassified`` of
    ``utils.get_misclassified_data``'s ``(image, true, predicted)`` list, the images de-normalised by
    ``inv_normalize`` (a torchvision ``Normalize`` that undoes the training normalisation)."""
    from visualize import displayable, plot_misclassified

    items = misclassified_data[:number_of_samples]
    images = [displayable(inv_normalize(image).clamp(0, 1)) for image, _, _ in items]
    return plot_misclassified(images, [t for _, t, _ in items], [p for _, _, p in items], classes,
                              count=number_of_samples, save_path=save_path)
