"""Small models and data shared by the tests."""
from typing import NamedTuple

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


class Finished(NamedTuple):
    """How a script's run ended, as ``subprocess.run`` tells it (``returncode``, ``stdout``, ``stderr``)."""
    returncode: int
    stdout: str
    stderr: str


def run_main_here(capfd, *args, timeout=None):
    """``python main.py *args`` run in this process (``main.main``), as ``run_in_process`` runs it.
    ``timeout`` is ``run_main``'s argument, ignored here (the test's own limit applies)."""
    import main

    return run_in_process(capfd, main.main, args)


def run_script_here(capfd, monkeypatch, script, *args):
    """``python <script> *args`` in this process: the script's file run as ``__main__`` (``runpy``) with
    ``sys.argv`` as that command line sets it, ended as ``run_in_process`` ends it. Its ``if __name__ ==
    "__main__"`` lines run as in a process of its own, without that process's 3-5 s of imports."""
    import runpy
    import sys

    def as_main(argv):
        monkeypatch.setattr(sys, "argv", [str(script), *argv])
        runpy.run_path(str(script), run_name="__main__")

    return run_in_process(capfd, as_main, args)


def run_in_process(capfd, entry, args):
    """A script's ``main`` function called with the command line ``args`` in this process, ended as the
    process would end: status 0; 2 with argparse's message for a bad argument; 1 with the one-line message
    of ``sys.exit``, or with the traceback of an exception nothing caught. With what it wrote to stdout and
    stderr (``capfd``: DataLoader workers' output too). It saves the 3-5 s of imports a new process pays.
    Python's warnings go to pytest here, not to stderr; a test about the process itself (torchrun, a signal,
    the warnings of DataLoader workers) runs it in a subprocess."""
    import traceback

    capfd.readouterr()  # what the test wrote before is not the run's
    uncaught = ""
    try:
        entry([str(arg) for arg in args])
        code = 0
    except SystemExit as stopped:
        code = stopped.code
    except Exception:  # noqa: BLE001 (Python would print the traceback and exit with status 1)
        code, uncaught = 1, traceback.format_exc()
    stdout, stderr = capfd.readouterr()
    if isinstance(code, str):  # sys.exit("message"): Python prints it to stderr and exits with status 1
        stderr, code = stderr + code + "\n", 1
    return Finished(code or 0, stdout, stderr + uncaught)


def resumed_run_equals_straight_run(run_main, common, folder):
    """Run main.py with ``common`` options straight (3 epochs, ``--save_every 1``) and again resumed from
    the straight run's ``epoch_1.pt``, through ``run_main`` (the ``main_here`` fixture: in this process; or
    ``tests.test_main.run_main``: in a subprocess); assert both end with the same weights, bit for bit.
    Returns the two finished runs."""
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
