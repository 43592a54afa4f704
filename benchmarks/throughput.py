"""Training throughput of CustomResNet on CIFAR-shaped data, three paths side by side, in one process.

    python benchmarks/throughput.py [--batch_size 512] [--steps 2] [--device cpu|cuda]

(a) plain: fp32, NCHW, Albumentations DataLoader (the reference notebook's path);
(b) default: autocast where it pays (resolve_precision) + channels_last, Albumentations DataLoader;
(c) default with the device-resident BatchedCifarLoader;
(d) with --compile: (c) on the torch.compile'd model (compile time reported, not counted in the rate).
For each: images/s of whole training steps with data, and of the model step alone on a fixed batch;
then the data pipelines alone, the model's FLOPs per training image and the fraction of a matmul peak
measured in the same run, and the projected time of the 24-epoch S10 training at the fastest path.
Data: generated uint8 images (CIFAR10_DIR is not needed).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from custom_resnet import CustomResNet  # noqa: E402
from batched_data import BatchedCifarLoader  # noqa: E402
from dataset import (AlbumentationsDataset, ImageArrays, cifar_train_transforms,  # noqa: E402
                     make_loader)
from training_utils import Precision, compile_model, resolve_precision  # noqa: E402
from utils import describe_machine  # noqa: E402

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def synchronize(device):
    """Wait for the work queued on ``device`` (the GPU measured, not the default one)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_rate(model, optimizer, batches, precision, steps, warmup=1):
    """Images/s over ``steps`` training steps drawn from ``batches`` (after ``warmup`` warm-up steps, in
    which cuDNN's autotuning, compilation and the steps an fp16 GradScaler skips fall)."""
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=0.2)
    scaler = precision.grad_scaler()
    device = precision.device
    iterator = iter(batches)
    seen, start = 0, None
    for step in range(steps + warmup):
        if step == warmup:
            synchronize(device)
            start = time.perf_counter()
        x, y = precision.batch(*next(iterator))
        optimizer.zero_grad(set_to_none=True)
        with precision.autocast():
            loss = criterion(model(x), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        seen += len(y) if step >= warmup else 0
    synchronize(device)
    return seen / (time.perf_counter() - start)


def pipeline_rate(loader, batches, device):
    """Images/s of a data pipeline alone over ``batches`` batches (after one warm-up batch)."""
    iterator = iter(loader)
    next(iterator)
    synchronize(device)
    start, seen = time.perf_counter(), 0
    for _ in range(batches):
        x, y = next(iterator)
        x.to(device)
        seen += len(y)
    synchronize(device)
    return seen / (time.perf_counter() - start)


def matmul_peak(device, dtype, size=4096, repeats=5):
    """Measured dense matmul TFLOP/s in ``dtype`` on ``device``."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * size ** 3 * repeats / (time.perf_counter() - start) / 1e12


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch_size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=None, help="measured steps per row (default 2 on CPU, 20 on CUDA)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--warmup", type=int, default=None, help="unmeasured steps before each row "
                        "(default 1 on CPU, 10 on CUDA: cuDNN autotuning and fp16's skipped steps; 3 more with --compile)")
    parser.add_argument("--compile", action="store_true", help="add row (d): path (c) with torch.compile")
    parser.add_argument("--json", help="also write the rows and the settings to this JSON file")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"  # as main.py and the notebooks train
    steps = args.steps or (20 if device.type == "cuda" else 2)
    warmup = args.warmup if args.warmup is not None else (10 if device.type == "cuda" else 1) + 3 * args.compile
    n = args.batch_size * (steps + warmup + 1)
    images = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = np.random.default_rng(1).integers(0, 10, n)
    album = make_loader(AlbumentationsDataset(ImageArrays(images, labels), cifar_train_transforms(MEAN, STD, 8)),
                        args.batch_size, train=True, device=device)
    batched = BatchedCifarLoader(images, labels, args.batch_size, MEAN, STD, device=device, cutout_size=8)
    fast = resolve_precision(device)
    paths = [("(a) plain fp32, NCHW, Albumentations", "fp32", False, album),
             ("(b) default, Albumentations", fast, True, album),
             (f"(c) default, batched loader", fast, True, batched)]
    if args.compile:
        paths.append(("(d) default, batched loader, torch.compile", fast, True, batched))
    fixed = next(iter(batched))
    print(f"device {device} ({torch.get_num_threads()} threads), torch {torch.__version__}, batch "
          f"{args.batch_size}, {steps} measured steps per row, default precision: {fast}")
    rows = []
    for name, precision, channels_last, loader in paths:
        torch.manual_seed(0)
        precision = Precision.resolve(device, precision, channels_last)
        model = precision.prepare(CustomResNet())
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
        if "compile" in name:
            model = compile_model(model)
            start = time.perf_counter()
            step_rate(model, optimizer, [fixed] * 2, precision, 1)
            print(f"torch.compile: first steps (compiling) took {time.perf_counter() - start:.0f} s")
        model_only = step_rate(model, optimizer, [fixed] * (steps + warmup), precision, steps, warmup)
        with_data = step_rate(model, optimizer, loader, precision, steps, warmup)
        rows.append((name, with_data, model_only))
    print(f"\n| path | train with data (img/s) | model step alone (img/s) | with data vs (a) | model vs (a) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, with_data, model_only in rows:
        print(f"| {name} | {with_data:.1f} | {model_only:.1f} | {with_data / rows[0][1]:.2f}x | "
              f"{model_only / rows[0][2]:.2f}x |")
    print(f"\ndata pipelines alone: Albumentations DataLoader {pipeline_rate(album, steps, device):.0f} img/s, "
          f"batched loader {pipeline_rate(batched, steps, device):.0f} img/s")
    model = CustomResNet().to(device)
    with FlopCounterMode(display=False) as counter:
        model(fixed[0][:1].float().contiguous()).sum().backward()
    flops = counter.get_total_flops()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[fast]
    peak = matmul_peak(device, dtype)
    best = max(model_only for _, _, model_only in rows[1:])
    print(f"model: {flops / 1e9:.2f} GFLOP per training image (forward + backward); measured {fast} matmul peak "
          f"{peak:.2f} TFLOP/s; the default model step runs at {best * flops / 1e12:.3f} TFLOP/s = "
          f"{100 * best * flops / 1e12 / peak:.0f}% of that peak")
    fastest = max(with_data for _, with_data, _ in rows)
    images = 24 * (50_000 // 512) * 512
    print(f"projected 24-epoch S10 training ({images:,} training images, evaluation not counted) at the fastest "
          f"path with data, {fastest:.0f} img/s: {images / fastest / 60:.1f} min ({images / fastest:.0f} s)")
    if args.json:
        summary = {"device": describe_machine(device), "torch": torch.__version__, "batch_size": args.batch_size,
                   "steps": steps, "warmup": warmup, "default_precision": fast,
                   "rows": [{"path": name, "with_data_img_s": round(with_data, 1), "model_step_img_s": round(model_only, 1)}
                            for name, with_data, model_only in rows],
                   "gflop_per_training_image": round(flops / 1e9, 3), "matmul_peak_tflops": round(peak, 2),
                   "projected_s10_24_epochs_s": round(images / fastest)}
        with open(args.json, "w") as file:
            json.dump(summary, file, indent=1)


if __name__ == "__main__":
    main()
