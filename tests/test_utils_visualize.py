import numpy as np
import pytest
import torch

import visualize
from dataset import SyntheticImages, channel_stats
from lr_finder import LRFinderResult
from tests.helpers import synthetic_loaders, tiny_cnn
from training_utils import new_history
from utils import get_cifar_statistics, get_misclassified_data, get_predictions, misclassified


def test_statistics_match_numpy(capsys):
    images = np.random.default_rng(0).integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    mean, std = get_cifar_statistics((images, np.zeros(50)), "Train")
    scaled = images / 255.0
    np.testing.assert_allclose(mean, scaled.mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(std, scaled.std(axis=(0, 1, 2)), rtol=1e-12)
    out = capsys.readouterr().out
    assert "Total Train Images: 50" in out and "Tensor Shape: (8, 8, 3)" in out
    assert f"mean: ({mean[0]:.4f}, {mean[1]:.4f}, {mean[2]:.4f})" in out
    assert f"var: ({std[0] ** 2:.4f}" in out


def test_misclassified_are_exactly_the_wrong_predictions():
    torch.manual_seed(0)
    _, test_loader = synthetic_loaders(n_test=200)
    model = tiny_cnn()
    wrong = get_misclassified_data(model, "cpu", test_loader)
    truth, predicted = get_predictions(model, "cpu", test_loader)
    assert len(wrong) == int((truth != predicted).sum()) > 0
    assert all(t != p for _, t, p in wrong) and wrong[0][0].shape == (3, 32, 32)
    assert len(get_misclassified_data(model, "cpu", test_loader, max_items=3)) == 3
    indices = misclassified(truth, predicted)
    assert [int(truth[i]) for i in indices] == [t for _, t, _ in wrong]  # indices into the test set, in order


def png_ok(path):
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def shown_images(figure):
    """The image array each axes of ``figure`` shows, in axes order."""
    return [np.asarray(ax.images[0].get_array()) for ax in figure.axes if ax.images]


def test_every_figure_shows_its_data_and_writes_a_png(tmp_path):
    data = SyntheticImages(40)
    classes = data.classes
    mean, std = channel_stats(data.images)
    history = new_history()
    history.update(train_loss=[2.0, 1.0], test_loss=[2.1, 1.2], train_acc=[30.0, 60.0], test_acc=[25.0, 55.0])
    lrs = list(np.geomspace(1e-4, 1, 30))
    losses = list(np.linspace(2.3, 1, 30))
    result = LRFinderResult(lrs, losses, {"steepest": lrs[5], "valley": lrs[10], "min_loss": lrs[-1]}, {})
    predicted = data.labels.copy()
    predicted[:6] = (predicted[:6] + 1) % 10  # six mistakes, each "true t, predicted t + 1": an asymmetric matrix
    import albumentations as A
    figures = {
        "samples": lambda p: visualize.plot_samples(data.images, data.labels, classes, save_path=p),
        "augmentations": lambda p: visualize.plot_augmentations(data.images[:4], {"flip": A.HorizontalFlip(p=1)},
                                                                save_path=p),
        "curves": lambda p: visualize.plot_history(history, save_path=p),
        "lr_finder": lambda p: visualize.plot_lr_finder(result, chosen_lr=lrs[10], save_path=p),
        "schedule": lambda p: visualize.plot_lr_schedule(lrs, [0.9] * 30, steps_per_epoch=10, save_path=p),
        "misclassified": lambda p: visualize.plot_misclassified(data.images[:3], [0, 1, 2], [1, 2, 0], classes,
                                                                save_path=p),
        "confusion": lambda p: visualize.plot_confusion_matrix(data.labels, predicted, classes, save_path=p),
    }
    drawn = {}
    for name, draw in figures.items():
        path = tmp_path / "Data" / f"{name}.png"
        drawn[name] = draw(path)
        assert png_ok(path), name

    samples = drawn["samples"]
    assert [ax.get_title() for ax in samples.axes] == [classes[label] for label in data.labels[:20]]
    assert all(np.array_equal(shown, image) for shown, image in zip(shown_images(samples), data.images[:20]))

    rows = shown_images(drawn["augmentations"])  # the originals, then the flipped images
    assert len(rows) == 8 and all(np.array_equal(rows[4 + i], rows[i][:, ::-1]) for i in range(4))

    loss_ax, acc_ax = drawn["curves"].axes
    assert [list(line.get_ydata()) for line in loss_ax.get_lines()] == [[2.0, 1.0], [2.1, 1.2]]
    assert [list(line.get_ydata()) for line in acc_ax.get_lines()] == [[30.0, 60.0], [25.0, 55.0]]
    assert [line.get_label() for line in acc_ax.get_lines()] == ["train", "test"]

    ax = drawn["lr_finder"].axes[0]
    smoothed = next(line for line in ax.get_lines() if line.get_label() == "loss (smoothed)")
    assert list(smoothed.get_xdata()) == lrs and list(smoothed.get_ydata()) == losses
    marked = {c.get_label().split(":")[0]: tuple(c.get_offsets()[0]) for c in ax.collections}
    assert marked == {"steepest": (lrs[5], losses[5]), "valley": (lrs[10], losses[10]),
                      "min_loss": (lrs[-1], losses[-1])}
    chosen = next(line for line in ax.get_lines() if line.get_label().startswith("chosen max LR"))
    assert list(chosen.get_xdata()) == [lrs[10], lrs[10]]

    line = drawn["schedule"].axes[0].get_lines()[0]
    assert list(line.get_ydata()) == lrs and list(line.get_xdata()) == pytest.approx(np.arange(30) / 10)

    titles = [ax.get_title() for ax in drawn["misclassified"].axes if ax.get_title()]
    assert titles == [f"true: {classes[t]}\npredicted: {classes[p]}" for t, p in ((0, 1), (1, 2), (2, 0))]

    ax = drawn["confusion"].axes[0]
    shown = np.asarray(ax.collections[0].get_array()).reshape(10, 10)
    counts = np.zeros((10, 10), int)
    np.add.at(counts, (data.labels, predicted), 1)  # rows: true class, columns: predicted class
    assert np.array_equal(shown, counts) and not np.array_equal(counts, counts.T)
    assert (ax.get_ylabel(), ax.get_xlabel()) == ("true", "predicted")
    assert [t.get_text() for t in ax.get_yticklabels()] == [t.get_text() for t in ax.get_xticklabels()] == list(classes)
    assert [int(t.get_text()) for t in ax.texts] == counts.flatten().tolist()
    assert "accuracy 85.00%" in ax.get_title()  # 34 of 40 on the diagonal


def test_an_lr_plot_without_suggestions_says_why(tmp_path):
    result = LRFinderResult([1e-3, 1e-2], [float("nan")] * 2, {}, {}, reason="only 0 finite loss value(s)")
    figure = visualize.plot_lr_finder(result, save_path=tmp_path / "lr.png")
    assert "no suggestion" in figure.axes[0].get_title()
    assert png_ok(tmp_path / "lr.png")


def test_predictions_break_ties_as_the_evaluation_does_so_their_accuracies_agree():
    """bf16 logits tie often; the confusion matrix (get_predictions) and the epoch log (test) must count
    the same images as right."""
    from training_utils import test

    class Tied(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):  # every class but the last scores the same: a tie between nine classes
            scores = torch.ones(len(x), 10)
            scores[:, -1] = 0
            return scores + 0 * self.anchor

    labels = torch.zeros(40, dtype=torch.long)  # argmax picks class 0 in a tie, topk (here) another
    loader = [(torch.randn(20, 3, 8, 8), labels[:20]), (torch.randn(20, 3, 8, 8), labels[20:])]
    truth, predicted = get_predictions(Tied(), "cpu", loader, precision="fp32")
    tested = test(Tied(), "cpu", loader, torch.nn.CrossEntropyLoss(), precision="fp32", progress=False)
    assert 100 * (truth == predicted).mean() == pytest.approx(tested.acc)
