"""Keller Jordan's public airbench94 on a CPU, against this repository's speedrun recipe, interleaved.

airbench94 (https://github.com/KellerJordan/cifar10-airbench, `legacy/airbench94.py`, MIT licence) is
the 94% CIFAR-10 reference the speedrun lesson measures itself against. It is written for CUDA in fp16;
this script runs the file you give it unchanged in its logic, ported to the CPU with the fewest changes:

* the weights stay fp32 (its `.half()` calls keep fp32) and the whole run is under bf16 autocast (without
  its weight-cast cache) where the CPU has bf16 units (AMX or AVX-512 BF16), plain fp32 elsewhere;
* `.cuda()` and `torch.load(..., map_location=torch.device(0))` stay on the CPU;
* `torch.cuda.Event` timing becomes the wall clock and `torch.cuda.synchronize()` nothing;
* the whitening layer's patch covariance is computed in fp32, as on the GPU (autocast would take its
  matrix product to bf16).

The net, data loading, augmentation, schedule, lookahead averaging and 6-view TTA are the file's own.
Its data file (`cifar10/train.pt`, `test.pt`: uint8 images N x 32 x 32 x 3, labels, class names) is
written from this repository's CIFAR-10 folder in a work folder, so nothing is downloaded.

Comparing speed (`benchmarks/interleaved.py`): the two runs alternate, A B B A ..., each in a fresh
process, on an otherwise idle machine (these shared machines drift by up to 2x within minutes, so only
interleaved runs compare); the report gives every run's wall-clock time (the whole process: start-up, data, training, per-epoch
evaluation, test-time augmentation) and accuracy, and the ratio of the means.

    # get the file (not part of this repository):
    #   https://raw.githubusercontent.com/KellerJordan/cifar10-airbench/master/legacy/airbench94.py
    python benchmarks/airbench_cpu.py --airbench airbench94.py --data_dir <cifar10> --pairs 2
    python benchmarks/airbench_cpu.py --airbench airbench94.py --data_dir <cifar10> --only airbench --pairs 1
    python benchmarks/airbench_cpu.py --airbench airbench94.py --data_dir <cifar10> --pairs 2 --resume  # add what is missing

`--epochs E` shortens both sides (airbench's `train_epochs`, main.py's `--epochs`) for a quick check.
"""
import argparse
import contextlib
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import interleaved

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WHERE = "download legacy/airbench94.py from https://github.com/KellerJordan/cifar10-airbench"


class WallClockEvent:
    """Stands in for ``torch.cuda.Event(enable_timing=True)`` on the CPU."""

    def __init__(self, *args, **kwargs):
        self.time = None

    def record(self, *args, **kwargs):
        self.time = time.perf_counter()

    def elapsed_time(self, end):
        """Milliseconds from this event to ``end``, as CUDA events report them."""
        return 1e3 * (end.time - self.time)


@contextlib.contextmanager
def cpu_port():
    """The CUDA calls airbench94 makes, answered on the CPU (see the module's docstring)."""
    import torch
    from torch import nn

    load = torch.load
    with contextlib.ExitStack() as stack:
        for owner, name, value in (
                (torch.cuda, "Event", WallClockEvent),
                (torch.cuda, "synchronize", lambda *args, **kwargs: None),
                (torch.Tensor, "cuda", lambda self, *args, **kwargs: self),
                (nn.Module, "cuda", lambda self, *args, **kwargs: self),
                (torch.Tensor, "half", lambda self, *args, **kwargs: self.float()),
                (nn.Module, "half", lambda self: self.float()),
                (torch, "load", lambda *args, **kwargs: load(*args, **{**kwargs, "map_location": "cpu"}))):
            stack.enter_context(mock.patch.object(owner, name, value))
        yield


def write_airbench_data(data_dir, folder):
    """``folder/cifar10/{train,test}.pt`` in airbench's layout, from this repository's CIFAR-10 loader."""
    import torch

    import dataset
    target = Path(folder) / "cifar10"
    target.mkdir(parents=True, exist_ok=True)
    for train in (True, False):
        images, labels = dataset.load_cifar("cifar10", data_dir, train=train, download=False)
        torch.save({"images": torch.from_numpy(images), "labels": torch.from_numpy(labels).long(),
                    "classes": dataset.class_names("cifar10")}, target / ("train.pt" if train else "test.pt"))
    return target


def load_airbench(path, epochs=None):
    """airbench94.py as a module (its ``if __name__ == "__main__"`` block does not run), ready for
    ``run_airbench``: ``epochs`` replaces its ``train_epochs``; its whitening statistics stay fp32."""
    import torch

    path = Path(path).resolve()
    if not path.is_file():
        raise SystemExit(f"--airbench {path}: no such file; {WHERE}")
    spec = importlib.util.spec_from_file_location("airbench94", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in ("hyp", "main", "CifarLoader"):
        if not hasattr(module, name):
            raise SystemExit(f"{path} has no {name!r}: this port expects cifar10-airbench's legacy/airbench94.py")
    if epochs is not None:
        module.hyp["opt"]["train_epochs"] = epochs
    if hasattr(module, "get_whitening_parameters"):
        whitening = module.get_whitening_parameters

        def fp32_whitening(patches):
            with torch.autocast("cpu", enabled=False):
                return whitening(patches)
        module.get_whitening_parameters = fp32_whitening
    return module


def run_airbench(module, data_dir, seed):
    """One run of ``module`` (from ``load_airbench``) on the CPU; returns its TTA accuracy (percent),
    the precision and the in-process seconds."""
    import torch

    from precision import Precision
    precision = Precision.resolve(torch.device("cpu")).name
    with tempfile.TemporaryDirectory() as work:
        write_airbench_data(data_dir, work)
        torch.manual_seed(seed)
        previous = os.getcwd()
        os.chdir(work)  # airbench reads ./cifar10/
        try:
            started = time.perf_counter()
            # one autocast region around the whole run, so without the weight-cast cache: a cached bf16
            # copy of each weight would otherwise live until the region ends, and training would stall
            with cpu_port(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16", cache_enabled=False):
                accuracy = module.main(seed)
            seconds = time.perf_counter() - started
        finally:
            os.chdir(previous)
    return {"accuracy_tta": 100 * float(accuracy), "precision": precision, "seconds_in_process": seconds}


def airbench_side(args, seed, out_dir, log):
    result_file = out_dir / f"airbench_seed{seed}.json"
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--airbench", str(Path(args.airbench).resolve()),
               "--data_dir", str(args.data_dir), "--seed", str(seed), "--result", str(result_file)]
    if args.epochs is not None:
        command += ["--epochs", str(args.epochs)]
    seconds = interleaved.timed(command, log)
    return {"name": "airbench", "side": "airbench94 (CPU port)", "seed": seed, "seconds": seconds, **json.loads(result_file.read_text())}


def speedrun_side(args, seed, out_dir, log):
    run_dir = out_dir / f"speedrun_seed{seed}"
    command = [sys.executable, "main.py", "--recipe", "speedrun", "--data_dir", str(args.data_dir), "--seed", str(seed),
               "--output_dir", str(run_dir), "--overwrite"]
    if args.epochs is not None:
        command += ["--epochs", str(max(1, round(args.epochs)))]
    seconds = interleaved.timed(command + list(args.speedrun_options), log)
    history = json.loads((run_dir / "history.json").read_text())
    return {"name": "speedrun", "side": "speedrun (main.py --recipe speedrun)", "seed": seed, "seconds": seconds,
            "accuracy_tta": history.get("test_acc_tta"), "accuracy": history["test_acc"][-1]}


def compare(args, log=print):
    """Runs the pairs (``interleaved.compare``); the report is written after every run, so a comparison
    stopped half-way keeps the runs it finished (``"finished": false``)."""
    import torch

    from utils import describe_machine
    sides = {"airbench": lambda seed, work, log: airbench_side(args, seed, work, log),
             "speedrun": lambda seed, work, log: speedrun_side(args, seed, work, log)}
    settings = {"machine": describe_machine(torch.device("cpu")), "epochs": args.epochs,
                "speedrun_options": list(args.speedrun_options)}
    return interleaved.compare(sides, [args.only] if args.only else ["airbench", "speedrun"], args.pairs, args.seed,
                               settings, "accuracy_tta", args.output, args.resume, log)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--airbench", required=True, help="path to cifar10-airbench's legacy/airbench94.py")
    parser.add_argument("--data_dir", help="CIFAR-10 folder (train.npz/test.npz or cifar-10-batches-py; default CIFAR10_DIR)")
    parser.add_argument("--pairs", type=int, default=2, help="interleaved pairs of runs (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="the first pair's seed; each pair adds one (default 0)")
    parser.add_argument("--epochs", type=float, help="shorter runs for a quick check (default: each side's own)")
    parser.add_argument("--only", choices=("airbench", "speedrun"), help="run one side only")
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs of the report at --output and run only the missing ones (same machine, "
                             "epochs and speedrun options), e.g. a second pair: --pairs 2 --resume")
    parser.add_argument("--output", default=str(ROOT / "Data" / "airbench_cpu.json"),
                        help="the report (default: Data/airbench_cpu.json in this repository; '' for none)")
    parser.add_argument("speedrun_options", nargs="*", help="after --: further main.py options for the speedrun side")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.data_dir = str(Path(args.data_dir or os.environ.get("CIFAR10_DIR") or "data").expanduser().resolve())
    if args.child:  # one airbench run, in this fresh process
        result = run_airbench(load_airbench(args.airbench, args.epochs), args.data_dir, args.seed)
        Path(args.result).write_text(json.dumps(result))
        return result
    if not Path(args.airbench).is_file():
        parser.error(f"--airbench {args.airbench}: no such file; {WHERE}")
    return compare(args)


if __name__ == "__main__":
    main()
