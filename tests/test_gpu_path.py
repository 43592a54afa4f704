"""What the GPU path needs, shown on the CPU: a skipped fp16 step that does not make OneCycleLR warn,
static compiled graphs through a partial evaluation batch, and main.py's precision rule and its reason;
on a GPU (skipped without one), a deterministic resume that repeats the straight run bit for bit."""
import time
import warnings

import pytest
import torch
from torch import nn

import distributed
import training_utils
from precision import Precision, precision_reason
from tests.helpers import needs_cuda, resumed_run_equals_straight_run, sgd, synthetic_loaders, tiny_cnn
from tests.test_main import ROOT, run_main, tiny_cifar  # noqa: F401 (a fixture)
from training_utils import compile_model, train


def test_a_step_the_grad_scaler_skips_does_not_make_one_cycle_warn():
    """fp16 runs (a T4) start with a loss scale so large that the first steps overflow and the GradScaler
    skips them; the schedule still advances with the batches, without PyTorch's warning in the lesson."""
    train_loader, _ = synthetic_loaders(n_train=256, batch_size=64)
    model = tiny_cnn()
    optimizer = sgd(model)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=len(train_loader))
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 120)  # the gradients overflow: steps skipped

    def large_loss(output, labels):
        return nn.functional.cross_entropy(output, labels) * 1e6

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(model, "cpu", train_loader, optimizer, large_loss, scheduler, precision="fp32", scaler=scaler)
    assert scaler.get_scale() < 2.0 ** 120  # the scaler did skip steps
    assert scheduler.last_epoch == len(train_loader)  # and the schedule advanced with every batch
    assert not [w for w in caught if "lr_scheduler.step()" in str(w.message)]


def test_other_warnings_of_the_scheduler_still_reach_the_user(monkeypatch):
    def warn():
        warnings.warn("something else the scheduler says")

    scheduler = type("Scheduler", (), {"step": staticmethod(warn)})()
    with pytest.warns(UserWarning, match="something else"):
        training_utils._step_scheduler(scheduler, torch.amp.GradScaler("cpu", enabled=True))


class WarnsEveryStep(nn.Module):
    """``tiny_cnn`` that issues the same warning at every forward pass, as a deprecated call in a model does."""

    def __init__(self):
        super().__init__()
        self.net = tiny_cnn()

    def forward(self, x):
        warnings.warn("a warning repeated at every step")
        return self.net(x)


@pytest.mark.parametrize("scaling", [False, True])
def test_a_warning_repeated_at_every_step_prints_once(scaling):
    """Python shows a warning once per place; the scheduler's step must not reset that record at every step
    (``warnings.catch_warnings`` does when it exits). With a GradScaler, the first step may reset it once."""
    train_loader, _ = synthetic_loaders(n_train=512, batch_size=64)
    model = WarnsEveryStep()
    optimizer = sgd(model)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, total_steps=2 * len(train_loader))
    scaler = torch.amp.GradScaler("cpu", enabled=scaling)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")  # Python's default: once per place
        for _ in range(2):
            train(model, "cpu", train_loader, optimizer, nn.functional.cross_entropy, scheduler, precision="fp32",
                  scaler=scaler)
    shown = [w for w in caught if "repeated at every step" in str(w.message)]
    assert len(shown) == (2 if scaling else 1), f"{len(shown)} times in {2 * len(train_loader)} steps"


def throughput_benchmark():
    """benchmarks/throughput.py as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("throughput", ROOT / "benchmarks" / "throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_benchmarks_fp32_row_runs_without_tf32_and_restores_the_settings():
    """On Ampere and later GPUs cuDNN computes fp32 convolutions in TF32 unless told not to: the plain fp32
    row turns TF32 off for its steps, and the rows after it run with the settings as they were."""
    benchmark = throughput_benchmark()
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        with benchmark.row_context("fp32"):
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        with benchmark.row_context("bf16"):
            assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_the_benchmarks_matmul_peak_is_timed_over_at_least_its_minimum_time():
    """Five products take under a millisecond on an H200, too short to time: the peak is measured over rounds
    that double until one lasts the minimum time (0.5 s on CUDA); on the CPU one product is enough."""
    benchmark = throughput_benchmark()
    start = time.perf_counter()
    assert benchmark.matmul_peak(torch.device("cpu"), torch.float32, size=64, min_seconds=0.2) > 0
    assert time.perf_counter() - start >= 0.2
    start = time.perf_counter()
    assert benchmark.matmul_peak(torch.device("cpu"), torch.float32, size=64) > 0
    assert time.perf_counter() - start < 0.2


def test_a_compiled_model_keeps_static_graphs_through_a_partial_batch():
    """Evaluation ends with a partial batch; the full batches after it must not run a dynamic-shape graph."""
    graphs = []

    def recording_backend(graph_module, example_inputs):
        graphs.append(example_inputs)
        return graph_module.forward

    torch._dynamo.reset()
    model = compile_model(tiny_cnn().eval(), backend=recording_backend)
    with torch.no_grad():
        for batch in (8, 5, 8, 5):
            model(torch.randn(batch, 3, 32, 32))
    assert len(graphs) == 2  # one per shape, each compiled once
    assert not any(isinstance(value, torch.SymInt) for inputs in graphs for value in inputs)
    assert [inputs[1].shape[0] for inputs in graphs] == [8, 5]


def test_main_defaults_to_the_automatic_precision_and_says_why(tiny_cifar, tmp_path, main_here):  # noqa: F811
    result = main_here("--dataset", "cifar10", "--data_dir", tiny_cifar, "--epochs", 1, "--batch_size", 32,
                       "--max_lr", 0.05, "--workers", 0, "--output_dir", tmp_path / "auto", "--no_plots")
    assert result.returncode == 0, result.stderr[-2000:]
    expected = Precision.resolve("cpu").name
    reason = precision_reason("cpu", expected)
    assert f"precision {expected}: {reason}" in result.stdout
    assert "bf16 units" in reason
    result = main_here("--dataset", "cifar10", "--data_dir", tiny_cifar, "--epochs", 1, "--batch_size", 32,
                       "--max_lr", 0.05, "--workers", 0, "--output_dir", tmp_path / "fp32", "--precision", "fp32",
                       "--no_plots")
    assert result.returncode == 0 and "precision fp32: as asked (--precision)" in result.stdout


def test_amp_is_the_automatic_precision_and_contradictions_are_refused(tiny_cifar, tmp_path, main_here):  # noqa: F811
    result = main_here("--amp", "--precision", "fp32", "--output_dir", tmp_path)
    assert result.returncode == 2 and "--amp means --precision auto" in result.stderr
    result = main_here("--data_dir", tiny_cifar, "--precision", "fp16", "--no_cuda", "--epochs", 1, "--output_dir",
                       tmp_path)
    assert result.returncode != 0 and "fp16 autocast needs CUDA" in result.stderr


@needs_cuda
def test_deterministic_resume_on_cuda_repeats_the_straight_run_bit_for_bit(tiny_cifar, tmp_path):  # noqa: F811
    """With --deterministic (cuDNN's deterministic algorithms, no autotuning) a run resumed on the GPU
    ends with the straight run's weights, as it does on the CPU."""
    common = ["--dataset", "cifar10", "--data_dir", tiny_cifar, "--epochs", 3, "--batch_size", 32,
              "--deterministic", "--save_every", 1, "--no_plots"]
    straight, _ = resumed_run_equals_straight_run(run_main, common, tmp_path)
    assert "deterministic cuDNN" in straight.stdout and "batched loader" in straight.stdout


def test_a_range_test_whose_grad_scaler_skips_steps_does_not_warn(monkeypatch):
    """The range test on fp16 (a T4): the same skipped first steps, the same silence."""
    from lr_finder import find_lr

    monkeypatch.setattr(Precision, "grad_scaler", lambda self: torch.amp.GradScaler("cpu", init_scale=2.0 ** 120))
    train_loader, _ = synthetic_loaders(n_train=256, batch_size=32)
    model = tiny_cnn()

    def large_loss(output, labels):
        return nn.functional.cross_entropy(output, labels) * 1e6

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        find_lr(model, sgd(model, lr=1e-5), large_loss, train_loader, device="cpu", num_iter=6, precision="bf16")
    assert not [w for w in caught if "lr_scheduler.step()" in str(w.message)]


def test_torchrun_with_more_processes_than_gpus_says_what_to_do(monkeypatch):
    """On a one-GPU host, process 1 would pick GPU 1 and fail deep inside CUDA; it stops with the fix."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(SystemExit, match=r"process 1 on a machine with 1 GPU\(s\): use --nproc_per_node 1"):
        distributed.setup_distributed("cuda")
