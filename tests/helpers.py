"""Small models and data shared by the tests."""
import pytest
import torch
from torch import nn

from batched_data import BatchedCifarLoader
from dataset import SyntheticImages

MEAN, STD = (0.45, 0.42, 0.42), (0.2, 0.2, 0.2)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]  # parametrize a test over both; CUDA skips without a GPU


def tiny_cnn(num_classes=10):
    """A small CNN that learns SyntheticImages in one epoch on a CPU in about a second."""
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(64, num_classes))


def synthetic_loaders(n_train=1024, n_test=256, batch_size=64, seed=0, augment=False, device="cpu"):
    """Batched loaders over SyntheticImages on ``device`` (deterministic given ``seed``)."""
    train, test = SyntheticImages(n_train, seed=seed), SyntheticImages(n_test, seed=seed + 1)
    train_loader = BatchedCifarLoader(train.images, train.labels, batch_size, MEAN, STD, train=True,
                                      augment=augment, seed=seed, device=device)
    test_loader = BatchedCifarLoader(test.images, test.labels, 256, MEAN, STD, train=False, device=device)
    return train_loader, test_loader


def write_cifar_npz(root, n_train, n_test):
    """``train.npz`` / ``test.npz`` of generated 32x32 images in the CIFAR layout; returns ``root``."""
    import numpy as np

    for name, seed, count in (("train", 0, n_train), ("test", 1, n_test)):
        source = SyntheticImages(n=count, seed=seed)
        np.savez(root / f"{name}.npz", images=source.images, labels=source.labels)
    return root


def sgd(model, lr=0.05):
    """SGD with Nesterov momentum, as the lessons use."""
    torch.manual_seed(0)
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)


def resumed_run_equals_straight_run(run_main, common, folder):
    """Run main.py with ``common`` options straight (3 epochs, ``--save_every 1``) and again resumed from
    the straight run's ``epoch_1.pt``; assert both end with the same weights, bit for bit. Returns the
    two completed processes."""
    from checkpoints import load_checkpoint

    straight = run_main(*common, "--output_dir", folder / "straight", timeout=300)
    assert straight.returncode == 0, straight.stderr[-2000:]
    resumed = run_main(*common, "--output_dir", folder / "resumed", "--resume", folder / "straight" / "epoch_1.pt",
                       timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = (load_checkpoint(folder / run / "last.pt") for run in ("straight", "resumed"))
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    return straight, resumed
