"""The range test: ``find_lr`` and its suggestions, the report, and ``lr_finder.LRFinder`` as a drop-in for
torch-lr-finder 0.2.2 (compared with the package's own class on the same calls) with the specification's
returns, also in a notebook; ``find_lr``'s own loop against the package's ``range_test``, float for float,
with the package left as it is while ``find_lr`` runs."""
import re

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch_lr_finder import LRFinder as PackageLRFinder
from torch_lr_finder import TrainDataLoaderIter, ValDataLoaderIter

from lr_finder import LRFinder, channels_last_images, find_lr, steepest_suggestion, suggest, valley_suggestion
from tests.helpers import sgd, synthetic_loaders, tiny_cnn

matplotlib.use("Agg")


def test_range_test_suggests_finite_lrs_in_range_and_restores_the_model():
    torch.manual_seed(0)
    train_loader, _ = synthetic_loaders(n_train=512, batch_size=32)
    model = tiny_cnn()
    optimizer = sgd(model, lr=1e-4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = find_lr(model, optimizer, nn.CrossEntropyLoss(), train_loader, start_lr=1e-4, end_lr=10,
                     num_iter=40, progress=False)  # 40 > 16 batches: the loader is cycled
    assert set(result.suggestions) == {"steepest", "valley", "min_loss", "minimum"}
    for lr in result.suggestions.values():
        assert np.isfinite(lr) and 1e-4 <= lr <= 10
    assert len(result.all_lrs) <= 40 and min(result.losses) < result.losses[0]
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert optimizer.param_groups[0]["lr"] == 1e-4 and not optimizer.state


def test_steepest_matches_torch_lr_finders_plot():
    model = tiny_cnn()
    finder = PackageLRFinder(model, sgd(model, lr=1e-4), nn.CrossEntropyLoss())
    finder.history = {"lr": list(np.geomspace(1e-4, 10, 60)),
                      "loss": list(2.3 - np.sin(np.linspace(0, 3, 60)) + np.random.default_rng(0).normal(0, .02, 60))}
    fig, ax = plt.subplots()
    _, library = finder.plot(skip_start=10, skip_end=5, ax=ax)
    plt.close(fig)
    ours = steepest_suggestion(finder.history["lr"][10:-5], finder.history["loss"][10:-5])
    assert ours == library


def test_valley_picks_inside_the_longest_descent():
    lrs = list(np.geomspace(1e-4, 10, 100))
    losses = list(np.r_[np.full(30, 2.3), np.linspace(2.3, 0.5, 50), np.linspace(0.5, 5, 20)])
    valley = valley_suggestion(lrs, losses)
    # fastai's rule: the longest strictly falling run is one of the flat 2.3s, then indices 31..79 (50 points),
    # so max_end = 79, max_start = 79 - 50 = 29, sections = 50 / 3 and idx = 29 + int(16.7) + int(8.3) = 53
    assert valley == lrs[53]
    assert suggest(lrs, losses)[0]["min_loss"] == lrs[79]


def test_nan_losses_give_no_suggestion_and_a_reason():
    lrs = list(np.geomspace(1e-4, 1, 20))
    suggestions, reason = suggest(lrs, [float("nan")] * 20)
    assert suggestions == {} and "NaN" in reason
    suggestions, reason = suggest(lrs, list(np.linspace(1, 3, 20)))
    assert suggestions == {} and "never fell" in reason


class AlwaysNaN(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 10)

    def forward(self, x):
        return self.linear(x.mean((2, 3))) * float("nan")


def test_a_diverging_model_does_not_crash_the_range_test():
    train_loader, _ = synthetic_loaders(n_train=128, batch_size=32)
    model = AlwaysNaN()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = find_lr(model, sgd(model), nn.CrossEntropyLoss(), train_loader, num_iter=12, progress=False)
    assert result.suggestions == {} and "NaN" in result.reason
    assert any("no suggestion" in w for w in result.warnings)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key])


def test_bad_ranges_are_refused():
    model = tiny_cnn()
    train_loader, _ = synthetic_loaders(n_train=64)
    with pytest.raises(ValueError, match="start_lr < end_lr"):
        find_lr(model, sgd(model), nn.CrossEntropyLoss(), train_loader, start_lr=1.0, end_lr=0.1)
    with pytest.raises(ValueError, match="num_iter"):
        find_lr(model, sgd(model), nn.CrossEntropyLoss(), train_loader, num_iter=1)


def test_report_does_not_call_a_valley_above_the_minimum_cautious(tmp_path):
    """A sharp early dip, then a long slow fall that stays above it: the valley lies above min_loss, so the
    report must not recommend it as the cautious choice (it did, for ResNet-50's first range tests)."""
    from lr_finder import LRFinderResult, suggest, write_report
    lrs = list(np.logspace(-4, 0, 20))
    losses = [3.0, 1.6] + list(np.linspace(2.9, 2.0, 18))
    suggestions, reason = suggest(lrs, losses)
    assert suggestions["valley"] > suggestions["min_loss"] == lrs[1] and not reason
    settings = {"start_lr": 1e-4, "end_lr": 1.0, "num_iter": 20, "step_mode": "exp", "smooth_f": 0.0}
    result = LRFinderResult(lrs, losses, suggestions, settings, lrs, losses)
    log = write_report(result, tmp_path, "curve", 32, "test")["log"].read_text()
    steps = " ".join(log.split("Next steps")[1].split("Curve")[0].split())
    assert "is the cautious choice" not in steps and "no cautious choice" in steps
    assert f"start an order of magnitude below it, {lrs[1] / 10:.3g}" in steps
    calm = LRFinderResult(lrs, sorted(losses, reverse=True), *suggest(lrs, sorted(losses, reverse=True))[:1],
                          settings, lrs, sorted(losses, reverse=True))
    steps = " ".join(write_report(calm, tmp_path, "curve", 32, "test")["log"].read_text().split())
    assert "is the cautious choice" in steps


# ------------------------------------------------------------- LRFinder: a drop-in for torch-lr-finder 0.2.2
def tiny_task(seed=0):
    """A two-class task on 8x8 images, the same for every call with the same seed: model, optimizer (SGD
    at 1e-3), criterion, a train and a validation DataLoader."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(96, 3, 8, 8, generator=generator)
    labels = (images[:, 0].mean((1, 2)) > 0).long()
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    train_loader = DataLoader(TensorDataset(images[:64], labels[:64]), batch_size=16)
    val_loader = DataLoader(TensorDataset(images[64:], labels[64:]), batch_size=16)
    return model, optimizer, nn.CrossEntropyLoss(), train_loader, val_loader


def run(cls, call):
    """``call(finder, train_loader, val_loader)`` on a ``cls`` finder over a fresh ``tiny_task``; returns the
    finder and what the call returned, or the exception it raised."""
    model, optimizer, criterion, train_loader, val_loader = tiny_task()
    finder = cls(model, optimizer, criterion, device="cpu")
    try:
        return finder, call(finder, train_loader, val_loader)
    except Exception as error:  # compared with the package's below
        return finder, error


class NotALoader:
    """An iterable of batches that is neither a DataLoader nor a torch-lr-finder iterator."""

    def __init__(self, loader):
        self.loader = loader

    def __iter__(self):
        return iter(self.loader)


def dict_batches(train_loader):
    """A DataLoader of ``{"image": ..., "label": ...}`` batches over the same data."""
    images, labels = train_loader.dataset.tensors
    return DataLoader([{"image": x, "label": y} for x, y in zip(images, labels)], batch_size=16)


class DictBatches(TrainDataLoaderIter):
    """torch-lr-finder's way to feed other batches: a TrainDataLoaderIter subclass."""

    def inputs_labels_from_batch(self, batch_data):
        return batch_data["image"], batch_data["label"]


PACKAGE_CALLS = {
    "loader in start_lr's place": lambda f, train, val: f.range_test(train, val, 1e-4, 1.0, 6),
    "all positional": lambda f, train, val: f.range_test(train, val, 1e-4, 1.0, 6, "linear", 0.1, 5, 2, False),
    "None in start_lr's place": lambda f, train, val: f.range_test(train, None, 1e-4, 1.0, 6),
    "keywords": lambda f, train, val: f.range_test(train, val_loader=val, start_lr=1e-4, end_lr=1.0, num_iter=6),
    "accumulation": lambda f, train, val: f.range_test(train, start_lr=1e-4, num_iter=6, accumulation_steps=2),
    "start_lr=None": lambda f, train, val: f.range_test(train, start_lr=None, num_iter=6, non_blocking_transfer=False),
    "a TrainDataLoaderIter subclass": lambda f, train, val: f.range_test(
        DictBatches(dict_batches(train)), ValDataLoaderIter(val), 1e-4, 1.0, 6),
}


@pytest.mark.parametrize("call", PACKAGE_CALLS.values(), ids=PACKAGE_CALLS.keys())
def test_range_test_called_as_torch_lr_finder_is_called_behaves_as_the_package(call, capsys):
    package, expected = run(PackageLRFinder, call)
    package_output = capsys.readouterr().out
    ours, returned = run(LRFinder, call)
    assert returned is None and expected is None
    assert ours.history["lr"] == pytest.approx(package.history["lr"]) and len(ours.history["lr"]) == 6
    assert ours.history["loss"] == pytest.approx(package.history["loss"])
    assert capsys.readouterr().out == package_output


SPECIFICATION_CALLS = {
    "positional": lambda f, train, val: f.range_test(train, 1e-4, 1.0, 6),
    "keywords": lambda f, train, val: f.range_test(train_loader=train, num_iter=6, end_lr=1.0, start_lr=1e-4),
    "one LR per group": lambda f, train, val: f.range_test(train, [1e-4], 1.0, 6, "exp", 0.05, 5.0),
}


@pytest.mark.parametrize("call", SPECIFICATION_CALLS.values(), ids=SPECIFICATION_CALLS.keys())
def test_range_test_called_as_the_specification_writes_it_returns_the_curve(call):
    package, _ = run(PackageLRFinder, lambda f, train, val: f.range_test(train, start_lr=1e-4, end_lr=1.0, num_iter=6))
    ours, (lrs, losses) = run(LRFinder, call)
    assert lrs is ours.history["lr"] and losses is ours.history["loss"]
    assert lrs == pytest.approx(package.history["lr"]) and losses == pytest.approx(package.history["loss"])


def test_start_lr_defaults_to_the_specifications_1e_7_and_none_keeps_the_optimizers():
    _, (lrs, _) = run(LRFinder, lambda f, train, val: f.range_test(train, end_lr=1.0, num_iter=5))
    assert lrs[0] == pytest.approx(1e-7)
    _, (lrs, _) = run(LRFinder, lambda f, train, val: f.range_test(train, start_lr=None, end_lr=1.0, num_iter=5))
    assert lrs[0] == pytest.approx(1e-3)  # the optimizer's LR, the package's default


def plotted(call, skip_start=0, skip_end=0):
    """A range test of 8 points, then ``call(finder, ax)``."""
    def test_then_plot(finder, train, val):
        finder.range_test(train, start_lr=1e-4, end_lr=1.0, num_iter=8)
        figure, ax = plt.subplots()
        try:
            return call(finder, ax)
        finally:
            plt.close(figure)
    return test_then_plot


WRONG_CALLS = {
    "unknown step_mode": lambda f, train, val: f.range_test(train, start_lr=1e-4, num_iter=5, step_mode="cubic"),
    "smooth_f of 1": lambda f, train, val: f.range_test(train, start_lr=1e-4, num_iter=5, smooth_f=1),
    "num_iter of 1": lambda f, train, val: f.range_test(train, start_lr=1e-4, num_iter=1),
    "another iterable": lambda f, train, val: f.range_test(NotALoader(train), start_lr=1e-4, num_iter=5),
    "another iterable to validate": lambda f, train, val: f.range_test(train, NotALoader(val), 1e-4, num_iter=5),
    "a string in val_loader's place": lambda f, train, val: f.range_test(train, "val", 1e-4, num_iter=5),
    "dict batches": lambda f, train, val: f.range_test(dict_batches(train), start_lr=1e-4, num_iter=5),
    "unknown keyword": lambda f, train, val: f.range_test(train, learning_rate=1e-4),
    "too many arguments": lambda f, train, val: f.range_test(train, val, 1e-4, 1, 5, "exp", .05, 5, 1, True, 0),
    "no loader": lambda f, train, val: f.range_test(start_lr=1e-4),
    "start_lr twice": lambda f, train, val: f.range_test(train, val, 1e-4, start_lr=1e-3),
    "negative skip_start": plotted(lambda f, ax: f.plot(skip_start=-1)),
    "negative skip_end": plotted(lambda f, ax: f.plot(5, -1, ax=ax)),
    "too few points": plotted(lambda f, ax: f.plot(skip_start=4, skip_end=3)),
    "too few points, into ax": plotted(lambda f, ax: f.plot(4, 3, True, None, ax)),
    "show_lr not a float": plotted(lambda f, ax: f.plot(show_lr=1)),
    "unknown plot keyword": plotted(lambda f, ax: f.plot(colour="red")),
}


@pytest.mark.parametrize("call", WRONG_CALLS.values(), ids=WRONG_CALLS.keys())
def test_a_wrong_call_raises_what_the_package_raises(call):
    figures = plt.get_fignums()
    _, expected = run(PackageLRFinder, call)
    _, raised = run(LRFinder, call)
    assert isinstance(expected, Exception) and type(raised) is type(expected) and str(raised) == str(expected)
    assert plt.get_fignums() == figures  # no empty figure left behind


def test_an_optimizer_with_a_scheduler_is_refused_as_the_package_refuses_it():
    model, optimizer, criterion, *_ = tiny_task()
    torch.optim.lr_scheduler.StepLR(optimizer, 1)
    with pytest.raises(RuntimeError, match="^Optimizer already has a scheduler attached to it$"):
        LRFinder(model, optimizer, criterion, "cpu")


PLOT_CALLS = {
    "ax": lambda f, ax: f.plot(ax=ax),
    "suggest_lr=True": lambda f, ax: f.plot(suggest_lr=True, ax=ax),
    "suggest_lr=False": lambda f, ax: f.plot(skip_start=2, skip_end=1, suggest_lr=False, ax=ax),
    "positional show_lr, ax, suggest_lr": lambda f, ax: f.plot(2, 1, False, 0.01, ax, True),
    "show_lr": lambda f, ax: f.plot(1, 1, show_lr=0.01, ax=ax),
}


@pytest.mark.parametrize("call", PLOT_CALLS.values(), ids=PLOT_CALLS.keys())
def test_plot_with_the_packages_arguments_returns_and_prints_what_the_package_does(call, capsys):
    history = {"lr": list(np.geomspace(1e-4, 1, 30)), "loss": list(2.3 - np.sin(np.linspace(0, 4, 30)))}
    results = {}
    for cls in (PackageLRFinder, LRFinder):
        finder, _ = run(cls, lambda f, train, val: None)
        finder.history = {key: list(values) for key, values in history.items()}
        figure, ax = plt.subplots()
        returned = call(finder, ax)
        lines = [np.asarray(line.get_xdata()).tolist() for line in ax.lines]
        results[cls] = (returned[1] if isinstance(returned, tuple) else None, capsys.readouterr().out, lines,
                        len(ax.collections), ax.get_xscale())
        assert (returned[0] if isinstance(returned, tuple) else returned) is ax
        assert ax.get_title() == ""  # the package's calls get no title unless asked for one
        plt.close(figure)
    assert results[LRFinder] == results[PackageLRFinder]


@pytest.fixture
def shown(monkeypatch):
    """Records the figure each ``plt.show()`` would show (pyplot's current one) instead of showing it."""
    figures = []
    monkeypatch.setattr(plt, "show", lambda: figures.append(plt.gcf()))
    yield figures
    plt.close("all")


def test_plot_as_the_specification_writes_it_shows_the_figure_prints_once_and_returns_the_index(shown, capsys,
                                                                                                 tmp_path):
    finder, (lrs, losses) = run(LRFinder, lambda f, train, val: f.range_test(train, 1e-4, 10.0, 30))
    capsys.readouterr()
    index = finder.plot()
    assert isinstance(index, int) and 10 <= index < len(lrs) - 5
    assert index == 10 + int(np.gradient(np.asarray(losses[10:len(lrs) - 5])).argmin())
    assert capsys.readouterr().out == f"LR suggestion: steepest gradient\nSuggested LR: {lrs[index]:.2E}\n"
    assert shown == [finder.figure] and finder.figure.axes[0].get_title() == "Learning Rate Finder"
    index = finder.plot(5, 2, False, "my title", tmp_path / "lr.png")  # the specification's positional order
    assert index == 5 + int(np.gradient(np.asarray(losses[5:len(lrs) - 2])).argmin())
    assert finder.figure.axes[0].get_title() == "my title" and finder.figure.axes[0].get_xscale() == "linear"
    assert (tmp_path / "lr.png").read_bytes()[:4] == b"\x89PNG" and len(shown) == 2
    assert capsys.readouterr().out.count("LR suggestion: steepest gradient") == 1


def test_plot_into_a_given_ax_draws_there_saves_and_shows_nothing(shown, capsys, tmp_path):
    finder, (lrs, _) = run(LRFinder, lambda f, train, val: f.range_test(train, 1e-4, 10.0, 20))
    figure, ax = plt.subplots()
    returned_ax, lr = finder.plot(ax=ax, title="into my axes", save_path=tmp_path / "lr.png")
    assert returned_ax is ax and lr in lrs and ax.get_title() == "into my axes" and finder.figure is figure
    assert shown == [] and (tmp_path / "lr.png").is_file()
    assert capsys.readouterr().out.count("Suggested LR: ") == 1


def test_lr_finder_takes_the_repositorys_batched_loader():
    train_loader, val_loader = synthetic_loaders(n_train=64, n_test=32, batch_size=16)
    model = tiny_cnn()
    finder = LRFinder(model, sgd(model), nn.CrossEntropyLoss(), "cpu")
    lrs, losses = finder.range_test(train_loader, 1e-4, 1.0, 5)
    assert len(lrs) == 5 and np.isfinite(losses).all()
    finder.reset()
    assert finder.range_test(train_loader, val_loader, 1e-4, 1.0, 3) is None and len(finder.history["lr"]) == 3


NOTEBOOK_SETUP = """import torch
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset
from lr_finder import LRFinder
torch.manual_seed(0)
images = torch.randn(256, 3, 8, 8)
labels = (images[:, 0].mean((1, 2)) > 0).long()
train_loader = DataLoader(TensorDataset(images, labels), batch_size=32, shuffle=True)
model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
LEARNING_RATE = 0.03
WEIGHT_DECAY = 1e-4
optimizer = optim.Adam(model.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
criterion = nn.CrossEntropyLoss()"""
NOTEBOOK_LR_FINDER = """lr_finder = LRFinder(model, optimizer, criterion, device='cpu')
lr_finder.range_test(train_loader, end_lr=10, num_iter=30, step_mode="exp")
lr_finder.plot()
lr_finder.reset()"""
NOTEBOOK_HISTORY = """from lr_finder import plot_training_history
history = {"train_loss": [1.0, 0.6], "test_loss": [0.9, 0.7], "train_acc": [60, 75], "test_acc": [62, 70]}
plot_training_history(history)"""


def test_the_specifications_calls_in_a_notebook_show_the_graph_and_print_the_suggestion_once(monkeypatch):
    """The S10 document's range-test cell (its four calls, on a tiny model) and the ResNet-50 document's
    ``plot_training_history(history)`` in a fresh Jupyter kernel, without ``%matplotlib inline``."""
    from pathlib import Path

    nbformat = pytest.importorskip("nbformat")
    NotebookClient = pytest.importorskip("nbclient").NotebookClient

    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel picks its own (inline) backend, as in Jupyter
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in
                                               (NOTEBOOK_SETUP, NOTEBOOK_LR_FINDER, NOTEBOOK_HISTORY)])
    root = Path(__file__).resolve().parents[1]
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(root)}}).execute()
    outputs = notebook.cells[1].outputs
    printed = "".join(output.text for output in outputs if output.output_type == "stream" and output.name == "stdout")
    assert [output.output_type for output in outputs if "image/png" in output.get("data", {})] == ["display_data"]
    assert printed.count("LR suggestion: steepest gradient\n") == 1 and printed.count("Suggested LR") == 1
    assert re.search(r"^LR suggestion: steepest gradient\nSuggested LR: \d\.\d\dE[+-]\d\d$", printed, re.M)
    history_outputs = notebook.cells[2].outputs
    assert [output.output_type for output in history_outputs if "image/png" in output.get("data", {})] == \
        ["execute_result"]


def test_the_plot_frames_the_fall_to_the_lowest_loss_before_the_curve_diverged():
    """A loss that doubles, then drifts below its earlier minimum (a wrecked net, the test never stopped):
    the suggestion and the plot's frame both end the fall at the minimum before the blow-up."""
    import visualize
    from lr_finder import LRFinderResult

    losses = list(np.r_[np.linspace(2.3, 1.0, 30), np.linspace(3.0, 0.5, 20)])
    lrs = list(np.geomspace(1e-4, 10, len(losses)))
    suggestions, reason = suggest(lrs, losses)
    result = LRFinderResult(lrs, losses, suggestions, {"skip_start": 0}, lrs, losses, reason)
    assert result.lowest == 29 and suggestions["min_loss"] == lrs[29]
    figure = visualize.plot_lr_finder(result)
    assert figure.axes[0].get_ylim()[0] == pytest.approx(2.3 - 1.15 * (2.3 - 1.0))


# ------------------------------------------------------------------- find_lr: batches and memory format
def test_channels_last_touches_only_4d_tensors_wherever_they_are_in_the_batch():
    image, video, vector = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 2, 4, 4), torch.randn(2, 5)
    converted = channels_last_images({"image": image, "more": [vector, (image, video)], "name": "x"})
    assert converted["image"].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(converted["image"], image) and converted["name"] == "x"
    assert converted["more"][0] is vector and converted["more"][1][1] is video
    assert converted["more"][1][0].is_contiguous(memory_format=torch.channels_last)


class TwoInputs(nn.Module):
    """A model fed ``[image batch, feature vector]`` that records the memory format of the images it sees."""

    def __init__(self):
        super().__init__()
        self.conv, self.linear = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(4 + 5, 2)
        self.channels_last_seen = []

    def forward(self, inputs):
        image, vector = inputs
        self.channels_last_seen.append(image.is_contiguous(memory_format=torch.channels_last))
        return self.linear(torch.cat([self.conv(image).mean((2, 3)), vector], 1))


class ListInputs(TrainDataLoaderIter):
    """Batches ``{"image", "vector", "label"}`` as ``([image, vector], label)``."""

    def inputs_labels_from_batch(self, batch_data):
        return [batch_data["image"], batch_data["vector"]], batch_data["label"]


def two_input_batches(n=64):
    generator = torch.Generator().manual_seed(0)
    images, vectors = torch.randn(n, 3, 8, 8, generator=generator), torch.randn(n, 5, generator=generator)
    labels = (vectors[:, 0] > 0).long()
    return DataLoader([{"image": x, "vector": v, "label": y} for x, v, y in zip(images, vectors, labels)],
                      batch_size=16)


def test_find_lr_takes_other_batches_through_a_train_dataloaderiter_subclass_in_channels_last():
    model = TwoInputs()
    result = find_lr(model, torch.optim.SGD(model.parameters(), lr=1e-3), nn.CrossEntropyLoss(),
                     ListInputs(two_input_batches()), start_lr=1e-4, end_lr=10, num_iter=20, skip_start=2,
                     skip_end=1, precision="fp32", channels_last=True, progress=False)
    assert len(result.all_lrs) > 5 and np.isfinite(result.all_losses).all()
    assert model.channels_last_seen and all(model.channels_last_seen)


def test_find_lr_refuses_dict_batches_with_the_packages_explanation():
    model, optimizer, criterion, train_loader, _ = tiny_task()
    with pytest.raises(ValueError, match="Your batch type is not supported.*inherit from `TrainDataLoaderIter`"):
        find_lr(model, optimizer, criterion, dict_batches(train_loader), num_iter=5, progress=False)


class Moved:
    """An image batch that records each copy to the device (as torch-lr-finder, ``find_lr`` moves whatever
    has a ``to``): whether it was channels_last when copied, and whether the copy was non-blocking."""

    def __init__(self, images, events):
        self.images, self.events = images, events

    def to(self, device, non_blocking=False):
        self.events.append(("move", self.images.is_contiguous(memory_format=torch.channels_last), non_blocking))
        return self.images.to(device, non_blocking=non_blocking)


def test_find_lr_converts_to_channels_last_after_the_move_to_the_device():
    """The copy to the device gets the loader's tensor as it is (so a pinned batch keeps its asynchronous
    copy); the conversion to channels_last comes after it, before the model sees the batch."""
    events = []
    model, optimizer, criterion, train_loader, _ = tiny_task()
    batches = [(Moved(images, events), labels) for images, labels in train_loader]
    model[0].register_forward_pre_hook(lambda module, args: events.append(
        ("model", args[0].is_contiguous(memory_format=torch.channels_last))))
    find_lr(model, optimizer, criterion, batches, num_iter=3, skip_start=0, skip_end=0, precision="fp32",
            channels_last=True, progress=False)
    assert events == [("move", False, True), ("model", True)] * 3


EXACT_CALLS = {
    "exponential": dict(start_lr=1e-4, end_lr=10, num_iter=12),
    "linear, accumulating": dict(start_lr=1e-4, end_lr=1.0, num_iter=8, step_mode="linear", accumulation_steps=2),
    "validation loss, no smoothing": dict(start_lr=1e-4, end_lr=10, num_iter=8, smooth_f=0, val_loader=True),
    "stopped at divergence": dict(start_lr=1e-2, end_lr=100, num_iter=12, diverge_th=1.05),
}


@pytest.mark.parametrize("options", EXACT_CALLS.values(), ids=EXACT_CALLS.keys())
def test_find_lr_records_the_curve_torch_lr_finder_records_float_for_float(options):
    """``find_lr``'s own loop against the package's ``range_test`` on the same task (one param group, fp32,
    no memory-format change): the same LRs and smoothed losses, bit for bit, and the same early stop."""
    curves = []
    for run in ("package", "find_lr"):
        model, optimizer, criterion, train_loader, val_loader = tiny_task()
        arguments = {**options, "val_loader": val_loader if options.get("val_loader") else None}
        if run == "package":
            finder = PackageLRFinder(model, optimizer, criterion, device="cpu")
            finder.range_test(train_loader, **arguments)
            curves.append((finder.history["lr"], finder.history["loss"]))
        else:
            result = find_lr(model, optimizer, criterion, train_loader, device="cpu", precision="fp32",
                             channels_last=False, progress=False, **arguments)
            curves.append((result.all_lrs, result.all_losses))
    assert curves[1] == curves[0]
    stops = "diverge_th" in options
    assert (len(curves[0][0]) < options["num_iter"]) == stops


def test_torch_lr_finder_is_left_as_it_is_while_find_lr_runs(capsys):
    """A range test of the package's own, run from inside a ``find_lr`` step (here from its criterion),
    records what it records alone (one LR for every param group: the package ignores ``lr_scale``, which
    ``find_lr`` honours) and prints its own lines."""
    def package_range_test():
        model, _, criterion, train_loader, _ = tiny_task(seed=1)
        groups = [{"params": model[0].parameters(), "lr_scale": 1.0},
                  {"params": model[4].parameters(), "lr_scale": 8.0}]
        finder = PackageLRFinder(model, torch.optim.SGD(groups, lr=1e-3, momentum=0.9), criterion, device="cpu")
        finder.range_test(train_loader, start_lr=1e-4, end_lr=10, num_iter=6)
        return finder.history, capsys.readouterr().out

    alone, inside = package_range_test(), []

    def criterion(outputs, labels):
        if not inside:
            inside.append(package_range_test())
        return nn.functional.cross_entropy(outputs, labels)

    model, optimizer, _, train_loader, _ = tiny_task()
    find_lr(model, optimizer, criterion, train_loader, start_lr=1e-4, end_lr=1.0, num_iter=3, precision="fp32",
            progress=False)
    assert inside == [alone] and "Learning rate search finished" in alone[1]


def test_the_range_test_keeps_each_param_groups_lr_scale_and_leaves_the_optimizer_as_it_was():
    """The speedrun trains its batch-norm biases at 64x the LR: the range test must move them at 64x too
    (torch-lr-finder alone sets one LR for every group), record the first group's LR, and restore the groups."""
    import recipes
    from custom_resnet import SpeedrunNet

    torch.manual_seed(0)
    model = SpeedrunNet(widths=(8, 16, 16))
    optimizer = recipes.build_optimizer(recipes.SPEEDRUN, model, lr=0.01)
    seen = []

    def criterion(outputs, labels):  # called once per range-test step, after the LRs are set
        seen.append([group["lr"] for group in optimizer.param_groups])
        return torch.nn.functional.cross_entropy(outputs, labels)

    images, labels = torch.randn(64, 3, 32, 32), torch.randint(0, 10, (64,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=16)
    result = find_lr(model, optimizer, criterion, loader, device="cpu", start_lr=1e-4, end_lr=1.0, num_iter=12,
                     precision="fp32", diverge_th=1e9, progress=False)
    assert len(seen) == 12
    assert all(bias == pytest.approx(64 * main) for main, bias in seen)
    assert [main for main, _ in seen] == pytest.approx(result.all_lrs)  # the curve: the first group's LR
    assert seen[-1][0] > 100 * seen[0][0]
    assert [group["lr"] for group in optimizer.param_groups] == pytest.approx([0.01, 0.64])
