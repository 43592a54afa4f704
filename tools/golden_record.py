"""The golden record: short fixed-seed runs whose numbers a restructuring of the code must not change.

Each run goes through main.py's command line (the interface that outlives any restructuring) on the
real data in CIFAR10_DIR and IMAGENET_DIR, on the CPU with a fixed thread count (fp32, but lr_sweep.py in its automatic precision), and is reduced
to what it computed: every per-step LR and momentum, every epoch's losses and accuracies, a SHA-256 of
the final weights, and for the range test its whole curve. Timings are left out.

  python tools/golden_record.py write   # before a change: store tests/golden_record.json
  python tools/golden_record.py check   # after it: the same numbers, bit for bit, or the differences

Bit-for-bit holds on the machine and software that wrote the record (the CPU's vector units choose the
kernels, and the kernels the rounding); tests/test_golden_record.py compares where the machine matches
and skips, naming the difference, where it does not: write the record again there before a change.
"""
import hashlib
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORD = ROOT / "tests" / "golden_record.json"
THREADS = 2
NOT_NUMBERS = ("epoch_time", "tta_seconds", "recipe")  # timings, and the settings a run prints

# name -> (data variable, main.py options); each 1-2 epochs on a few hundred images, seconds on a CPU
RUNS = {
    "s10": ("CIFAR10_DIR", ["--max_samples", "256", "--batch_size", "64", "--epochs", "2", "--loader",
                            "albumentations", "--workers", "0"]),
    "speedrun": ("CIFAR10_DIR", ["--recipe", "speedrun", "--max_samples", "512", "--batch_size", "128",
                                 "--epochs", "2"]),
    "resnet50_folder": ("IMAGENET_DIR", ["--max_samples", "40", "--image_size", "64", "--batch_size", "16",
                                         "--epochs", "1"]),
    "range_test": ("CIFAR10_DIR", ["--find_lr", "--lr_iter", "20", "--max_samples", "256", "--batch_size", "64",
                                   "--loader", "albumentations", "--workers", "0"]),
    # lr_sweep.py: a range test, then one short one-cycle run per peak, on a fixed subset
    "lr_sweep": ("CIFAR10_DIR", ["--subset", "256", "--test_subset", "200", "--batch_size", "64", "--epochs", "1",
                                 "--lr_iter", "20", "--grid", "0.1", "0.4", "--suggestion_runs", "--workers", "0"]),
}
COMMON = ["--precision", "fp32", "--seed", "0", "--device", "cpu", "--no_plots", "--save_every", "0"]


def machine():
    """What decides the rounding: the torch build, the CPU's vector units and the thread count."""
    import torch

    flags = Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0].split() \
        if Path("/proc/cpuinfo").exists() else []
    units = [unit for unit in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if unit in flags]
    return {"torch": torch.__version__, "cpu": platform.machine(), "vector_units": units, "threads": THREADS}


def weights_digest(path):
    """SHA-256 over the checkpoint's model tensors, in name order."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=False)["model"]
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


def curve(log_file):
    """The range test's (lr, smoothed loss) pairs from its log, as printed there."""
    lines = Path(log_file).read_text().split("Curve (lr, smoothed loss)\n")[1].splitlines()
    return [line.split() for line in lines if line.strip()]


def sweep(options, folder):
    """lr_sweep.py's record: its range test's curve and every run's accuracy and last training loss."""
    import lr_sweep

    summary = lr_sweep.main(["--data_dir", os.environ["CIFAR10_DIR"], *options, "--seed", "0", "--device", "cpu",
                             "--output", str(Path(folder) / "sweep")])
    test = summary["range_tests"][0]
    return {"suggestions": test["suggestions"], "lrs": test["lrs"], "losses": test["losses"],
            "results": [{key: result[key] for key in ("max_lr", "test_acc", "final_train_loss")}
                        for result in summary["results"]]}


def run(name):
    """Run one of RUNS; returns its record (None when its data is not here)."""
    import torch

    import main

    variable, options = RUNS[name]
    if not os.environ.get(variable):
        return None
    torch.set_num_threads(THREADS)
    with tempfile.TemporaryDirectory() as folder:
        if name == "lr_sweep":
            return sweep(options, folder)
        main.main(["--data_dir", os.environ[variable], *options, *COMMON, "--output_dir", folder])
        if name == "range_test":
            report = json.loads((Path(folder) / "suggested_lr.json").read_text())
            return {"suggestions": report["suggestions"], "curve": curve(Path(folder) / "lr_finder_log.txt")}
        history = json.loads((Path(folder) / "history.json").read_text())
        return {"history": {key: value for key, value in history.items() if key not in NOT_NUMBERS},
                "weights_sha256": weights_digest(Path(folder) / "last.pt")}


def differences(expected, got, where=""):
    """Where two records differ, as readable lines (empty when equal)."""
    if isinstance(expected, dict) and isinstance(got, dict):
        return [line for key in sorted(set(expected) | set(got))
                for line in differences(expected.get(key), got.get(key), f"{where}.{key}")]
    if isinstance(expected, list) and isinstance(got, list) and len(expected) == len(got):
        return [line for i, (a, b) in enumerate(zip(expected, got)) for line in differences(a, b, f"{where}[{i}]")]
    return [] if expected == got else [f"{where}: expected {expected!r}, got {got!r}"]


def main_cli(argv):
    if len(argv) != 1 or argv[0] not in ("write", "check"):
        sys.exit(__doc__)
    sys.path.insert(0, str(ROOT))
    records = {name: run(name) for name in RUNS}
    if argv[0] == "write":
        RECORD.write_text(json.dumps({"machine": machine(), "runs": records}, indent=1) + "\n")
        print(f"wrote {RECORD}")
        return
    stored = json.loads(RECORD.read_text())
    if stored["machine"] != machine():
        print(f"note: the record was written on {stored['machine']}, this is {machine()}: differences may be rounding")
    found = differences(stored["runs"], records)
    print("\n".join(found[:20]) or "the same numbers, bit for bit")
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main_cli(sys.argv[1:])
