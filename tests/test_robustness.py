"""Bad input ends in a message that names what is wrong; an interrupted run loses nothing."""
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from checkpoints import load_checkpoint
from dataset import SKIPPED_LABEL, DataFormatError, DataNotFoundError, ImageFiles, image_folder
from lr_finder import find_lr
from tests.helpers import sgd, synthetic_loaders, tiny_cnn
from training_utils import fit


def make_folder(root, classes=("cat", "dog"), per_class=2, split="train"):
    for name in classes:
        (root / split / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(np.full((40, 40, 3), 60 * i, np.uint8)).save(root / split / name / f"{i}.JPEG")
    return root


def test_missing_or_empty_folders_name_the_path_and_the_layout(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"nowhere/train does not exist.*train/ and val/"):
        image_folder(tmp_path / "nowhere")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(DataFormatError, match=r"empty/train holds no class folders"):
        image_folder(tmp_path / "empty")


def test_val_classes_that_differ_from_train_are_named(tmp_path):
    make_folder(tmp_path, ("cat", "dog"))
    make_folder(tmp_path, ("cat", "cow"), split="val")
    _, _, classes = image_folder(tmp_path, "train")
    with pytest.raises(DataFormatError, match=r"extra \['cow'\], missing \['dog'\]"):
        image_folder(tmp_path, "val", classes)


def test_non_images_are_skipped_with_a_counted_warning(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    (tmp_path / "train" / "dog" / "labels.csv").write_text("a,b")
    with pytest.warns(UserWarning, match="skipped 2 file"):
        paths, labels, classes = image_folder(tmp_path)
    assert len(paths) == 4 and classes == ["cat", "dog"] and labels.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "P"])
def test_odd_image_modes_become_rgb(tmp_path, mode):
    path = tmp_path / f"image.{'jpg' if mode in ('L', 'CMYK') else 'png'}"
    Image.new(mode, (24, 16)).save(path)
    image, label = ImageFiles([path], [3])[0]
    assert image.shape == (16, 24, 3) and image.dtype == np.uint8 and label == 3


def test_a_truncated_jpeg_is_named_in_the_error(tmp_path):
    good = tmp_path / "good.JPEG"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good)
    broken = tmp_path / "broken.JPEG"
    broken.write_bytes(good.read_bytes()[:600])
    with pytest.raises(DataFormatError, match="cannot decode image .*broken.JPEG.*--strict_images"):
        ImageFiles([broken], [0], strict=True)[0]
    with pytest.warns(UserWarning, match="skipped: cannot decode image .*broken.JPEG"):
        image, label = ImageFiles([broken], [0])[0]
    assert label == SKIPPED_LABEL and image.dtype == np.uint8


def test_a_range_test_shorter_than_its_skips_still_suggests():
    torch.manual_seed(0)
    train_loader, _ = synthetic_loaders(n_train=256, batch_size=32)
    model = tiny_cnn()
    result = find_lr(model, sgd(model, 1e-4), nn.CrossEntropyLoss(), train_loader, start_lr=1e-3, end_lr=1,
                     num_iter=12, skip_start=10, skip_end=5, progress=False)
    assert result.settings["skip_start"] + result.settings["skip_end"] < 12
    assert any("skips reduced" in w for w in result.warnings)
    assert len(result.lrs) >= 10
    assert set(result.suggestions) == {"steepest", "valley", "min_loss", "minimum"} and not result.reason
    assert result.suggestions["min_loss"] in result.lrs
    assert result.lrs[0] <= result.suggestions["valley"] <= result.lrs[-1]


class InterruptAt:
    """Wraps a loader and raises KeyboardInterrupt at a given batch of a given pass (Ctrl-C)."""

    def __init__(self, loader, epoch, batch):
        self.loader, self.epoch, self.batch, self.passes = loader, epoch, batch, 0
        self.generator = loader.generator

    def set_epoch(self, epoch):
        self.loader.set_epoch(epoch)

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        self.passes += 1
        for index, item in enumerate(self.loader):
            if self.passes == self.epoch and index == self.batch:
                raise KeyboardInterrupt
            yield item


def test_ctrl_c_keeps_the_last_finished_epoch_and_resume_continues(tmp_path):
    messages = []
    train_loader, test_loader = synthetic_loaders(n_train=256, batch_size=64)
    model = tiny_cnn()
    with pytest.raises(KeyboardInterrupt):
        fit(model, "cpu", InterruptAt(train_loader, epoch=2, batch=1), test_loader, sgd(model), nn.CrossEntropyLoss(),
            3, checkpoint_dir=tmp_path, log=messages.append)
    assert "interrupted during epoch 2" in messages[-1] and "holds epoch 1" in messages[-1]
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 1
    model = tiny_cnn()
    history = fit(model, "cpu", train_loader, test_loader, sgd(model), nn.CrossEntropyLoss(), 3,
                  checkpoint_dir=tmp_path, resume=tmp_path / "last.pt", log=messages.append)
    assert any("continuing at epoch 2" in m for m in messages) and len(history["test_acc"]) == 3
    assert load_checkpoint(tmp_path / "last.pt")["epoch"] == 3


INTERRUPT_POINTS = [("train", 1), ("test", 1), ("last.pt", 1), ("inside best.pt", 1), ("best.pt", 1),
                    ("epoch_1.pt", 1), ("train", 2), ("test", 2), ("inside last.pt", 2), ("last.pt", 2),
                    ("epoch_2.pt", 2)]


@pytest.mark.parametrize("where, epoch", INTERRUPT_POINTS)
def test_the_interrupt_message_names_what_last_pt_holds_at_every_point_of_an_epoch(tmp_path, monkeypatch, where,
                                                                                    epoch):
    """Ctrl-C (or SIGTERM) can land anywhere: in a training step, in the evaluation, or between the
    checkpoint files an epoch writes. The message must name the epoch that last.pt really holds."""
    import training_utils

    real_save, real_test, calls = training_utils.save_checkpoint, training_utils.test, {"test": 0}
    real_torch_save = torch.save

    def save(state, path):
        real_save(state, path)
        if Path(path).name == where and state["epoch"] == epoch:
            raise KeyboardInterrupt

    def torch_save_interrupted(state, file):
        """As torch.save fails when Ctrl-C lands inside it: its zip writer raises on the way out."""
        if where == f"inside {Path(file.name).name.split('.tmp')[0].lstrip('.')}" and state["epoch"] == epoch:
            try:
                raise KeyboardInterrupt
            finally:
                raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 1501824 vs 1501720")
        return real_torch_save(state, file)

    def test(*args, **kwargs):
        calls["test"] += 1
        if where == "test" and calls["test"] == epoch:
            raise KeyboardInterrupt
        return real_test(*args, **kwargs)

    monkeypatch.setattr(training_utils, "save_checkpoint", save)
    monkeypatch.setattr(torch, "save", torch_save_interrupted)
    monkeypatch.setattr(training_utils, "test", test)
    train_loader, test_loader = synthetic_loaders(n_train=128, batch_size=64)
    if where == "train":
        train_loader = InterruptAt(train_loader, epoch=epoch, batch=1)
    model, messages = tiny_cnn(), []
    with pytest.raises(KeyboardInterrupt):
        fit(model, "cpu", train_loader, test_loader, sgd(model), nn.CrossEntropyLoss(), 3, checkpoint_dir=tmp_path,
            save_every=1, log=messages.append)
    last = tmp_path / "last.pt"
    if last.exists():
        assert f"{last} holds epoch {load_checkpoint(last)['epoch']}" in messages[-1]
    else:
        assert "no epoch finished, nothing to resume" in messages[-1]
    after = where == "last.pt"  # written last: only then does it hold this epoch (best.pt, epoch_<k>.pt come first)
    assert (f"after epoch {epoch} was saved" if after else f"during epoch {epoch}") in messages[-1]
