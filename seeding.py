"""Seeds: every random choice of a run derived from one seed, so that a run repeats and a resumed run
continues exactly. ``seed_everything`` seeds Python, NumPy and torch once; ``derive_seed`` gives each
``(seed, epoch, ...)`` its own stream; ``start_epoch_randomness`` (called by ``fit`` before each epoch)
derives the epoch's global RNG state and the loader's shuffling and augmentation from ``(seed, epoch, rank)``."""
import random

import numpy as np
import torch


def seed_everything(seed=1):
    """Seed Python, NumPy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def derive_seed(*keys):
    """A 32-bit seed derived from integer keys, e.g. ``(seed, epoch, rank)`` or ``(seed, epoch, index)``:
    every combination gets an independent, reproducible random stream (NumPy's ``SeedSequence``)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])


def start_epoch_randomness(loader, seed, epoch, rank=0):
    """Derive every random choice of an epoch from ``(seed, epoch, rank)``: the global torch RNG, and the
    loader's shuffling and augmentation (through ``set_epoch`` on the loader or its sampler). A resumed
    run therefore replays the remaining epochs exactly, with no RNG snapshot in the checkpoint."""
    torch.manual_seed(derive_seed(seed, epoch, rank))
    for target in (loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None)):
        if hasattr(target, "set_epoch"):
            target.set_epoch(epoch)
