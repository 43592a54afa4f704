"""What the ResNet-50 lesson shows: class names instead of WordNet ids, a block-level model summary,
the validation split named as such, a range-test log that reads without wrapped words."""
import numpy as np
import torch

import imagenet_classes
from custom_resnet import CustomResNet, resnet50
from lr_finder import find_lr, write_report
from tests.helpers import sgd, synthetic_loaders, tiny_cnn
from utils import block_summary, count_parameters
from visualize import plot_history

IMAGENETTE = {"n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player",
              "n03000684": "chain saw", "n03028079": "church", "n03394916": "French horn",
              "n03417042": "garbage truck", "n03425413": "gas pump", "n03445777": "golf ball",
              "n03888257": "parachute"}


def test_the_wnid_table_covers_imagenet_1k_in_class_index_order():
    wnids = imagenet_classes.WNIDS
    assert len(wnids) == 1000 == len(set(imagenet_classes.WNID_TO_NAME.values()))
    assert wnids == sorted(wnids)  # ImageFolder's order is ImageNet-1K's class index
    # the indices the Imagenette README gives: tench 0, English springer 217, parachute 701
    assert (wnids.index("n01440764"), wnids.index("n02102040"), wnids.index("n03888257")) == (0, 217, 701)


def test_readable_class_names_for_wnid_folders_only():
    assert imagenet_classes.readable_class_names(list(IMAGENETTE)) == list(IMAGENETTE.values())
    own = ["cat", "n01440764"]  # a folder of one's own classes keeps its names
    assert imagenet_classes.readable_class_names(own) == own
    assert imagenet_classes.readable_class_names([]) == []


def test_block_summary_of_resnet50():
    model = resnet50(num_classes=10)
    table = block_summary(model, (3, 224, 224))
    rows = {line.split()[0]: line for line in table.splitlines()[1:]}
    assert list(rows) == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool",
                          "fc", "total"]
    for layer, blocks, shape in (("layer1", 3, "256x56x56"), ("layer2", 4, "512x28x28"),
                                 ("layer3", 6, "1024x14x14"), ("layer4", 3, "2048x7x7")):
        assert f"{blocks} x Bottleneck" in rows[layer] and shape in rows[layer]
    assert rows["total"].split()[-1] == f"{count_parameters(model):,}" == "23,528,522"
    assert rows["fc"].split()[-1] == f"{2048 * 10 + 10:,}"
    assert model.training, "the summary leaves the model in training mode"
    small = block_summary(CustomResNet(), (3, 32, 32))
    assert small.splitlines()[-1].split()[-1] == "6,573,130" and "512x4x4" in small


def test_plot_history_names_the_validation_split_and_shows_top5():
    history = {"train_loss": [2.0, 1.5], "train_acc": [20.0, 40.0], "test_loss": [1.8, 1.4],
               "test_acc": [30.0, 45.0], "test_top5": [70.0, 85.0]}
    figure = plot_history(history, split="validation")
    loss_ax, acc_ax = figure.axes
    assert [t.get_text() for t in acc_ax.get_legend().get_texts()] == ["train", "validation", "validation top-5"]
    assert "final validation accuracy 45.00%" in acc_ax.get_title()
    cifar = plot_history({**history, "test_top5": [None, None]})
    assert [t.get_text() for t in cifar.axes[1].get_legend().get_texts()] == ["train", "test"]


def test_range_test_log_wraps_between_words(tmp_path):
    train_loader, _ = synthetic_loaders(n_train=512, batch_size=32)
    model = tiny_cnn()
    result = find_lr(model, sgd(model), torch.nn.CrossEntropyLoss(), train_loader, start_lr=1e-4, end_lr=10,
                     num_iter=30, device="cpu", precision="fp32")
    report = write_report(result, tmp_path, "synthetic", 32, "find_lr(...)", plot_file=tmp_path / "plot.png")
    text = report["log"].read_text()
    section = text.split("\nAnalysis\n")[1].split("\nCurve")[0]
    assert section.strip() and all(len(line) <= 100 for line in section.splitlines())
    words = " ".join(line.strip() for line in section.splitlines()).split()
    assert f"--max_lr {result.suggestions['min_loss']:.3g}" in " ".join(words)
    assert np.isfinite(result.suggestions["min_loss"])
