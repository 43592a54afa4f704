import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import dataset
from batched_data import BatchedCifarLoader
from dataset import (AlbumentationsDataset, DataFormatError, DataNotFoundError, SyntheticImages, cifar_test_transforms,
                     cifar_train_transforms, load_cifar, load_npz)
from tests.helpers import DEVICES

CIFAR10_DIR = os.environ.get("CIFAR10_DIR")


def write_npz(path, images, labels, **extra):
    np.savez(path, images=images, labels=labels, **extra)
    return path


def test_npz_folder_is_read_first(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(20) % 10
    write_npz(tmp_path / "train.npz", images, labels)
    loaded_images, loaded_labels = load_cifar("cifar10", tmp_path, train=True, download=False)
    np.testing.assert_array_equal(loaded_images, images)
    assert loaded_labels.dtype == np.int64 and list(loaded_labels[:3]) == [0, 1, 2]


CIFAR10_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def write_torchvision_folder(root, chw, labels):
    """A small folder in torchvision's ``cifar-10-batches-py`` layout: each batch file holds ``chw``."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    for name in CIFAR10_BATCHES:
        with open(folder / name, "wb") as file:
            pickle.dump({b"data": chw.reshape(len(chw), -1), b"labels": labels}, file)
    return folder


@pytest.fixture
def small_torchvision_folder(tmp_path, monkeypatch):
    """A small cifar-10-batches-py whose md5 sums stand in for the real files' in torchvision's CIFAR10
    lists for this test, so the loader's integrity check runs on it unchanged."""
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import calculate_md5
    chw = np.random.default_rng(1).integers(0, 256, (6, 3, 32, 32), dtype=np.uint8)
    folder = write_torchvision_folder(tmp_path, chw, [1, 2, 3, 4, 5, 6])
    sums = [[name, calculate_md5(folder / name)] for name in CIFAR10_BATCHES]
    monkeypatch.setattr(CIFAR10, "train_list", sums[:5])
    monkeypatch.setattr(CIFAR10, "test_list", sums[5:])
    return folder, chw


def test_torchvision_folder_is_read(small_torchvision_folder):
    folder, chw = small_torchvision_folder
    images, labels = load_cifar("cifar10", folder.parent, train=True, download=False)
    assert images.shape == (30, 32, 32, 3)
    np.testing.assert_array_equal(images[0], chw[0].transpose(1, 2, 0))
    assert labels[:6].tolist() == [1, 2, 3, 4, 5, 6]
    assert load_cifar("cifar10", folder.parent, train=False, download=False)[0].shape == (6, 32, 32, 3)


def test_truncated_batch_file_is_named_with_how_to_get_a_good_copy(small_torchvision_folder):
    folder, _ = small_torchvision_folder
    batch = folder / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:1000])  # an interrupted copy
    with pytest.raises(DataFormatError) as error:
        load_cifar("cifar10", folder.parent, train=True, download=False)
    message = str(error.value)
    assert "data_batch_3 (1,000 bytes, md5 differs)" in message and "data_batch_1" not in message
    assert f"delete the folder {folder}" in message and "CIFAR10_DIR" in message
    assert load_cifar("cifar10", folder.parent, train=False, download=False)[0].shape == (6, 32, 32, 3)
    batch.unlink()
    with pytest.raises(DataFormatError, match=r"data_batch_3 \(missing\)"):
        load_cifar("cifar10", folder.parent, train=True, download=False)


def test_torchvision_folder_is_checked_against_torchvisions_own_md5_sums(tmp_path):
    # the real sums: a folder that is not torchvision's CIFAR-10 is refused, every file by name
    write_torchvision_folder(tmp_path, np.zeros((2, 3, 32, 32), np.uint8), [0, 1])
    with pytest.raises(DataFormatError) as error:
        load_cifar("cifar10", tmp_path, train=True, download=True)
    assert all(f"data_batch_{i} (" in str(error.value) for i in range(1, 6))
    with pytest.raises(DataFormatError, match="test_batch"):
        load_cifar("cifar10", tmp_path, train=False, download=True)


def test_missing_data_names_the_three_ways(tmp_path):
    with pytest.raises(DataNotFoundError) as error:
        load_cifar("cifar10", tmp_path / "nowhere", train=True, download=False)
    message = str(error.value)
    assert "download" in message and "cifar-10-batches-py" in message and "train.npz" in message
    assert "CIFAR10_DIR" in message


@pytest.mark.parametrize("images, labels, fragment", [
    (np.zeros((4, 32, 32, 3), np.float32), np.zeros(4, np.int64), "uint8"),
    (np.zeros((4, 32, 32), np.uint8), np.zeros(4, np.int64), "shape (N, H, W, 3)"),
    (np.zeros((4, 32, 32, 3), np.uint8), np.zeros(3, np.int64), "4 images but 3 labels"),
    (np.zeros((4, 32, 32, 3), np.uint8), np.array([0, 1, 2, 10]), "outside [0, 10)"),
])
def test_bad_npz_contents_are_refused(tmp_path, images, labels, fragment):
    path = write_npz(tmp_path / "train.npz", images, labels)
    with pytest.raises(DataFormatError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_npz(path, num_classes=10)


def test_npz_with_wrong_keys_names_them(tmp_path):
    np.savez(tmp_path / "train.npz", x=np.zeros((2, 32, 32, 3), np.uint8), y=np.zeros(2))
    with pytest.raises(DataFormatError, match="missing key"):
        load_npz(tmp_path / "train.npz", 10)


def test_synthetic_images_are_seeded_and_balanced():
    a, b = SyntheticImages(200, seed=3), SyntheticImages(200, seed=3)
    np.testing.assert_array_equal(a.images, b.images)
    assert a.images.shape == (200, 32, 32, 3) and a.images.dtype == np.uint8
    assert set(np.unique(a.labels)) == set(range(10))
    assert not np.array_equal(a.images, SyntheticImages(200, seed=4).images)


def test_albumentations_dataset_gives_normalised_tensors():
    data = SyntheticImages(8)
    mean, std = dataset.channel_stats(data.images)
    train_set = AlbumentationsDataset(dataset.ImageArrays(data.images, data.labels), cifar_train_transforms(mean, std))
    image, label = train_set[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and label == data.labels[0]
    test_set = AlbumentationsDataset(data, cifar_test_transforms(mean, std))
    stacked = torch.stack([test_set[i][0] for i in range(len(test_set))])
    assert abs(stacked.mean().item()) < 0.1 and abs(stacked.std().item() - 1) < 0.1


def position_image():
    """R = 100 + row, G = 100 + column, B = 255: an augmented pixel tells where it came from."""
    rows, cols = np.mgrid[0:32, 0:32]
    return np.stack([100 + rows, 100 + cols, np.full_like(rows, 255)], -1).astype(np.uint8)


def augmentation_statistics(images):
    """Flip rate, mean vertical crop offset, cutout area fraction of uint8 B x 32 x 32 x 3 outputs."""
    images = images.astype(np.int64)
    hole = images[..., 2] != 255
    flipped = images[:, 16, 17, 1] < images[:, 16, 16, 1]
    top = images[:, 16, 16, 0] - 100 - 16 + 4  # the centre row is interior: offset in [0, 8]
    valid = ~hole[:, 16, 16] & ~hole[:, 16, 17]
    return flipped[valid].mean(), top[valid].mean(), top[valid].std(), hole.mean()


@pytest.mark.parametrize("device", DEVICES)
def test_batched_loader_augments_like_albumentations(device):
    n = 3000
    images = np.repeat(position_image()[None], n, axis=0)
    mean = (0.2, 0.3, 0.4)  # the cutout fill, so holes show in the blue channel
    fill = tuple(int(round(m * 255)) for m in mean)
    import albumentations as A
    transform = A.Compose(dataset.cifar_augmentations(mean, cutout_length=8), seed=0)
    reference = np.stack([transform(image=image)["image"] for image in images])
    loader = BatchedCifarLoader(images, np.zeros(n, np.int64), 500, mean, (1, 1, 1), cutout_length=8, seed=0,
                                device=device)
    index = torch.arange(n, device=device)
    batched = np.concatenate([loader.augment_batch(index[i:i + 500]).cpu().numpy() for i in range(0, n, 500)])
    assert tuple(reference[reference[..., 2] != 255][0]) == fill
    ref_stats, our_stats = augmentation_statistics(reference), augmentation_statistics(batched)
    assert abs(ref_stats[0] - 0.5) < 0.05 and abs(our_stats[0] - ref_stats[0]) < 0.05  # flip rate
    assert abs(our_stats[1] - ref_stats[1]) < 0.25 and abs(our_stats[1] - 4) < 0.25    # crop offset mean
    assert abs(our_stats[2] - ref_stats[2]) < 0.2                                      # crop offset spread
    assert abs(ref_stats[3] - 64 / 1024) < 0.002 and abs(our_stats[3] - ref_stats[3]) < 0.002  # cutout area


@pytest.mark.parametrize("device", DEVICES)
def test_batched_loader_iterates_like_a_dataloader(device):
    data = SyntheticImages(100)
    loader = BatchedCifarLoader(data.images, data.labels, 32, (0.5,) * 3, (0.25,) * 3, train=False, device=device)
    batches = list(loader)
    assert len(loader) == len(batches) == 4 and sum(len(y) for _, y in batches) == 100
    x, y = batches[0]
    assert x.device.type == y.device.type == device
    assert x.shape == (32, 3, 32, 32) and x.is_contiguous(memory_format=torch.channels_last)
    expected = (torch.as_tensor(data.images[:32]).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.25
    torch.testing.assert_close(x.cpu(), expected)
    train = BatchedCifarLoader(data.images, data.labels, 32, (0.5,) * 3, (0.25,) * 3, train=True, device=device)
    assert len(train) == 3  # drop_last when training
    train.set_epoch(1)
    first = [x.clone() for x, _ in train]
    train.set_epoch(1)  # the same epoch again: the same order and augmentations (what exact resume needs)
    assert all(torch.equal(a, b) for a, b in zip(first, (x for x, _ in train)))


@pytest.mark.skipif(not CIFAR10_DIR, reason="set CIFAR10_DIR to a folder with the real CIFAR-10 to run")
def test_real_cifar10_statistics(capsys):
    from utils import get_cifar_statistics
    images, labels = load_cifar("cifar10", CIFAR10_DIR, train=True, download=False)
    assert images.shape == (50000, 32, 32, 3) and np.bincount(labels).tolist() == [5000] * 10
    mean, std = get_cifar_statistics((images, labels), "Train")
    printed = capsys.readouterr().out
    assert "mean: (0.4914, 0.4822, 0.4465)" in printed and "std: (0.2470, 0.2435, 0.2616)" in printed
    np.testing.assert_allclose(mean, (0.4914, 0.4822, 0.4465), atol=5e-5)
    np.testing.assert_allclose(std, (0.2470, 0.2435, 0.2616), atol=5e-5)


def test_holdout_split_is_class_balanced_fixed_for_every_run_and_disjoint_from_training():
    labels = np.repeat(np.arange(10), 50)[np.random.default_rng(3).permutation(500)]
    kept, held = dataset.holdout_split(labels, 100)
    assert len(held) == 100 and np.bincount(labels[held]).tolist() == [10] * 10
    assert len(np.intersect1d(kept, held)) == 0 and len(kept) + len(held) == 500
    again_kept, again_held = dataset.holdout_split(labels, 100)
    assert np.array_equal(held, again_held) and np.array_equal(kept, again_kept)  # no run seed enters it
    assert not np.array_equal(held, dataset.holdout_split(labels, 100, seed=1)[1])
    share = dataset.holdout_split(labels, 0.1)[1]
    assert np.bincount(labels[share]).tolist() == [5] * 10  # a share of each class
    with pytest.raises(ValueError, match="leaves class 0"):
        dataset.holdout_split(np.array([0, 1, 1, 1]), 2)
    with pytest.raises(ValueError, match="impossible"):
        dataset.holdout_split(labels, 500)


def test_loader_workers_are_sized_from_the_cores_of_each_process():
    assert dataset.default_workers(cores=2) == 1  # Colab: one worker beside the training process
    assert dataset.default_workers(cores=1) == 0  # the training process loads the data itself
    assert dataset.default_workers(cores=96, processes=8) == 11  # 8 GPUs on 96 cores: 12 cores a process
    assert dataset.default_workers(cores=256, processes=1) == 16  # at most 16
    assert dataset.default_workers(cores=8, processes=8) == 0
