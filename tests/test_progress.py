"""The live-progress rule (progress.py) and how fit, train, test and find_lr follow it."""
import contextlib
import io
import sys

import pytest
import torch
from torch import nn

import progress
from lr_finder import find_lr
from tests.helpers import sgd, synthetic_loaders, tiny_cnn
from training_utils import fit


class Terminal(io.StringIO):
    """A stream that says it is an interactive terminal."""

    def isatty(self):
        return True


RULE_VARIABLES = ("PLAIN_PROGRESS", "CI", "PYTEST_CURRENT_TEST", "SMOKE")


@pytest.fixture
def person_watching(monkeypatch):
    """Call it in a test to get the environment of a person at a terminal: none of the variables that mean
    plain output (pytest sets PYTEST_CURRENT_TEST again for each phase, so a fixture cannot remove it)."""
    def watch():
        for name in RULE_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setattr(progress, "in_live_kernel", lambda: False)
    return watch


@pytest.mark.parametrize("environ, stream, kernel, bar", [
    ({}, Terminal(), False, True),                                  # a terminal
    ({}, io.StringIO(), False, False),                              # a log file or a pipe
    ({}, io.StringIO(), True, True),                                # a live Jupyter kernel
    ({"CI": "true"}, Terminal(), False, False),                     # CI, even with a terminal
    ({"CI": "false"}, Terminal(), False, True),                     # CI=false is no CI
    ({"PYTEST_CURRENT_TEST": "t"}, Terminal(), True, False),        # pytest and nbval
    ({"SMOKE": "1"}, Terminal(), True, False),                      # SMOKE runs
    ({"PLAIN_PROGRESS": "1"}, Terminal(), True, False),             # a notebook executed for committing
    ({"PLAIN_PROGRESS": "0", "CI": "1"}, io.StringIO(), False, True),  # a bar asked for, even in a file
])
def test_the_rule_shows_a_bar_only_to_a_person_watching(environ, stream, kernel, bar):
    assert progress.show_bar(None, stream, environ, kernel) is bar


@pytest.mark.parametrize("forced", [True, False])
def test_an_explicit_progress_argument_wins(forced):
    for environ, stream in (({}, Terminal()), ({"CI": "1", "PLAIN_PROGRESS": "1"}, io.StringIO())):
        assert progress.show_bar(forced, stream, environ, kernel=not forced) is forced


def test_without_ipywidgets_a_kernel_gets_the_text_bar(monkeypatch):
    notebook = pytest.importorskip("tqdm.notebook")
    monkeypatch.setattr(notebook, "IProgress", None)  # what tqdm.notebook holds when ipywidgets is missing
    assert progress.bar_class(kernel=True) is progress.text_bar
    bar = progress.bar_class(kernel=True)(range(3), file=io.StringIO())  # draws, no ImportError
    assert list(bar) == [0, 1, 2]
    assert progress.bar_class(kernel=False) is progress.text_bar


def test_a_bar_is_drawn_at_once_before_the_first_step():
    stream = Terminal()
    bar = progress.progress_bar(range(100), True, file=stream, desc="work")
    assert "work" in stream.getvalue() and "0/100" in stream.getvalue()  # no step taken yet
    bar.close()


def tiny_fit(epochs=2, **options):
    torch.manual_seed(0)
    train_loader, test_loader = synthetic_loaders(n_train=96, n_test=64, batch_size=32)
    model = tiny_cnn()
    optimizer = sgd(model)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.05, epochs=epochs,
                                                    steps_per_epoch=len(train_loader))
    lines = []
    fit(model, "cpu", train_loader, test_loader, optimizer, nn.CrossEntropyLoss(), epochs, scheduler,
        precision="fp32", log=lines.append, **options)
    return lines


def tiny_range_test(**options):
    torch.manual_seed(0)
    train_loader, _ = synthetic_loaders(n_train=96, batch_size=32)
    model = tiny_cnn()
    return find_lr(model, sgd(model, lr=1e-4), nn.CrossEntropyLoss(), train_loader, start_lr=1e-4, end_lr=1,
                   num_iter=6, skip_start=0, skip_end=0, precision="fp32", **options)


def bars_written(work, stream):
    """What ``work()`` writes to stderr (where tqdm draws) and stdout, with stderr replaced by ``stream``."""
    out = io.StringIO()
    with contextlib.redirect_stderr(stream), contextlib.redirect_stdout(out):
        work()
    return stream.getvalue() + out.getvalue()


@pytest.mark.parametrize("work", [tiny_fit, tiny_range_test], ids=["fit", "find_lr"])
def test_into_a_file_the_rule_writes_no_bar_and_no_carriage_return(work, person_watching):
    person_watching()
    written = bars_written(work, io.StringIO())  # a file: isatty() is False
    assert "\r" not in written and "it/s" not in written and "batch" not in written and "%|" not in written


@pytest.mark.parametrize("work, desc", [(tiny_fit, "epoch 1"), (tiny_range_test, "range test")], ids=["fit", "find_lr"])
def test_at_a_terminal_the_rule_draws_a_bar_with_loss_and_lr(work, desc, person_watching):
    person_watching()
    written = bars_written(work, Terminal())
    assert "\r" in written and desc in written
    assert "loss=" in written and "lr=" in written


@pytest.mark.parametrize("work", [tiny_fit, tiny_range_test], ids=["fit", "find_lr"])
def test_a_forced_bar_is_drawn_even_into_a_file_and_under_pytest(work):
    written = bars_written(lambda: work(progress=True), io.StringIO())
    assert "\r" in written and "loss=" in written and "lr=" in written
    assert "%|" in written  # tqdm's bar with its percentage


def test_fit_evaluation_shows_a_bar_too(person_watching):
    person_watching()
    assert "epoch 2 test" in bars_written(tiny_fit, Terminal())


def test_the_epoch_line_stays_in_every_mode_and_shows_a_small_lr(person_watching):
    person_watching()
    for stream in (io.StringIO(), Terminal()):
        with contextlib.redirect_stderr(stream):
            lines = tiny_fit(epochs=2)
        assert len(lines) == 2 and all(line.startswith(f"epoch  {k}/2  lr ") for k, line in enumerate(lines, 1))
        last_lr = float(lines[-1].split()[3])  # OneCycleLR ends near 0.05 / 25 / 1e4 = 2e-7
        assert 0 < last_lr < 1e-5, lines[-1]
        assert "lr 0.0000 " not in lines[-1]


def test_a_distributed_process_other_than_rank_0_draws_no_bar(monkeypatch):
    distributed = sys.modules["torch.distributed"]
    monkeypatch.setattr(distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed, "get_rank", lambda: 1)
    assert not progress.show_bar(None, Terminal(), {}, kernel=True)
    monkeypatch.setattr(distributed, "get_rank", lambda: 0)
    assert progress.show_bar(None, Terminal(), {}, kernel=False)
