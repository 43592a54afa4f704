"""Training throughput of CustomResNet on CIFAR-shaped data, three paths side by side, in one process.

    python benchmarks/throughput.py [--batch_size 512] [--steps 2] [--device cpu|cuda]
    python benchmarks/throughput.py --model resnet50 --batch_size 64 [--image_dir <imagenette>]

(a) plain: fp32 (TF32 off: on Ampere and later GPUs PyTorch runs fp32 convolutions in TF32 unless told
    not to), NCHW, Albumentations DataLoader (the reference notebook's path);
(b) default: autocast where it pays (Precision.resolve) + channels_last, Albumentations DataLoader;
(c) default with the device-resident BatchedCifarLoader;
(d) with --compile: (c) on the torch.compile'd model (compile time reported, not counted in the rate).
For each: images/s of whole training steps with data, and of the model step alone on a fixed batch;
then the data pipelines alone, the model's FLOPs per training image and the fraction of a matmul peak
measured in the same run, and the projected time of the 24-epoch S10 training at the fastest path.
Data: generated uint8 images (CIFAR10_DIR is not needed).

``--model resnet50``: ResNet-50 v1.5 from JPEG files at ``--image_size`` (128), the default precision:
(e) the folder path (each image decoded, crop-resized and flipped in DataLoader workers, as
``dataset.image_folder_datasets``) and (f) the decoded-once path (``image_cache`` + ``BatchedImageLoader``),
each against the model step alone on a fixed batch; then each data path alone. Data: ``--image_dir`` (its
``train/``), or generated 224 px JPEGs.
"""
import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from custom_resnet import CustomResNet, build_model  # noqa: E402
from batched_data import BatchedCifarLoader, BatchedImageLoader  # noqa: E402
from dataset import (IMAGENET_MEAN, IMAGENET_STD, AlbumentationsDataset, ImageArrays, ImageFiles,  # noqa: E402
                     cifar_train_transforms, crop_scale, image_folder,
                     imagenet_train_transforms, make_loader)
from image_cache import cached_split  # noqa: E402
from precision import Precision  # noqa: E402
from training_utils import compile_model  # noqa: E402
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


@contextlib.contextmanager
def tf32_off():
    """True fp32 inside: no TF32 in matmuls (``torch.backends.cuda.matmul.allow_tf32``) nor in cuDNN's
    convolutions (``torch.backends.cudnn.allow_tf32``, on by default), both restored after."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def row_context(precision):
    """The settings a row runs under: ``tf32_off()`` for the plain fp32 row, PyTorch's defaults otherwise."""
    return tf32_off() if precision == "fp32" else contextlib.nullcontext()


def matmul_peak(device, dtype, size=4096, min_seconds=None):
    """Measured dense matmul TFLOP/s in ``dtype`` on ``device``: after a warm-up product, rounds of
    products that double until one takes ``min_seconds`` (default 0.5 s on CUDA, where an H200 does five
    4096^2 products in under a millisecond, too short to time; 0 on the CPU: one product, timed)."""
    min_seconds = (0.5 if device.type == "cuda" else 0.0) if min_seconds is None else min_seconds
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    repeats = 1
    while True:
        synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        synchronize(device)
        seconds = time.perf_counter() - start
        if seconds >= min_seconds:
            return 2 * size ** 3 * repeats / seconds / 1e12
        repeats *= 2


def jpeg_folder(root, count, size=224, classes=10):
    """An ImageNet-style train folder of ``count`` generated ``size`` px JPEGs (smooth images, which decode
    like photographs, not like noise), as the 224 px Imagenette copy holds them."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for index in range(count):
        folder = Path(root) / "train" / f"class_{index % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((size, size), Image.BICUBIC).save(folder / f"{index}.JPEG", quality=90)
    return root


def resnet50_table(args, device, steps, warmup):
    """ResNet-50 v1.5 at ``--image_size`` from JPEG files: the folder path (decode, random-resized crop and
    flip per image in DataLoader workers) against the decoded-once path (``image_cache`` +
    ``BatchedImageLoader``), each beside the model step alone; then each data path alone."""
    fast = Precision.resolve(device).name
    batch, size = args.batch_size, args.image_size
    with tempfile.TemporaryDirectory() as scratch:
        root = args.image_dir or jpeg_folder(scratch, batch * (steps + warmup + 2))
        train_set, classes = image_folder_train(root, size)
        folder_loader = make_loader(train_set, batch, train=True, device=device)
        cache = args.cache_dir if args.image_dir else Path(scratch) / "cache"  # a real folder's cache is kept
        images, labels, _ = cached_split(root, "train", round(size * 1.25), cache)
        batched = BatchedImageLoader(images, labels, batch, size, IMAGENET_MEAN, IMAGENET_STD, device=device,
                                     scale=crop_scale(size))
        print(f"ResNet-50 v1.5, {size} px, batch {batch}, {fast}, {len(train_set)} JPEGs from "
              f"{'--image_dir' if args.image_dir else 'generated 224 px images'}, {folder_loader.num_workers} "
              f"DataLoader worker(s), {torch.get_num_threads()} threads")
        precision = Precision.resolve(device, fast, True)
        torch.manual_seed(0)
        model = precision.prepare(build_model("resnet50", len(classes)))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-5)
        fixed = next(iter(batched))
        alone = step_rate(model, optimizer, [fixed] * (steps + warmup), precision, steps, warmup)
        rows = [(name, step_rate(model, optimizer, loader, precision, steps, warmup))
                for name, loader in (("(e) folder: decode + crop per image, DataLoader", folder_loader),
                                     ("(f) decoded once, batched crop and flip", batched))]
        pipelines = [pipeline_rate(loader, steps, device) for loader in (folder_loader, batched)]
    print("\n| path | train with data (img/s) | model step alone (img/s) | with data / model alone |")
    print("| --- | ---: | ---: | ---: |")
    for name, with_data in rows:
        print(f"| {name} | {with_data:.1f} | {alone:.1f} | {with_data / alone:.2f} |")
    print(f"\ndata paths alone: folder DataLoader {pipelines[0]:.0f} img/s, batched from the cache "
          f"{pipelines[1]:.0f} img/s; the model step alone {alone:.0f} img/s")
    return {"model": "resnet50", "image_size": size, "batch_size": batch, "precision": fast,
            "model_step_img_s": round(alone, 1),
            "rows": [{"path": name, "with_data_img_s": round(rate, 1), "ratio_to_model_step": round(rate / alone, 3)}
                     for name, rate in rows],
            "folder_pipeline_img_s": round(pipelines[0]), "batched_pipeline_img_s": round(pipelines[1])}


def run_resnet50(args):
    """``--model resnet50``: the table of ``resnet50_table``, with ``--json`` its summary."""
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"
    steps = args.steps or (20 if device.type == "cuda" else 3)
    warmup = args.warmup if args.warmup is not None else (10 if device.type == "cuda" else 1)
    summary = {"device": describe_machine(device), "torch": torch.__version__,
               **resnet50_table(args, device, steps, warmup)}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=1) + "\n")


def image_folder_train(root, size):
    """``(train_set, classes)``: the folder path's training set (``dataset.image_folder_datasets``' train half;
    the val folder is not read)."""
    paths, labels, classes = image_folder(root, "train")
    return AlbumentationsDataset(ImageFiles(paths, labels), imagenet_train_transforms(size)), classes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch_size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=None, help="measured steps per row (default 2 on CPU, 20 on CUDA)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--warmup", type=int, default=None, help="unmeasured steps before each row "
                        "(default 1 on CPU, 10 on CUDA: cuDNN autotuning and fp16's skipped steps; 3 more with --compile)")
    parser.add_argument("--compile", action="store_true", help="add row (d): path (c) with torch.compile")
    parser.add_argument("--json", help="also write the rows and the settings to this JSON file")
    parser.add_argument("--model", choices=("custom_resnet", "resnet50"), default="custom_resnet",
                        help="resnet50: ResNet-50 from JPEG files, the folder path against the decoded-once path")
    parser.add_argument("--image_size", type=int, default=128, help="resnet50: training crop size (default 128)")
    parser.add_argument("--image_dir", help="resnet50: an ImageNet-style folder to read (default: generated JPEGs)")
    parser.add_argument("--cache_dir", default=os.environ.get("IMAGE_CACHE_DIR", "data/image_cache"),
                        help="resnet50 with --image_dir: where its decoded images are kept (as main.py --cache_dir)")
    args = parser.parse_args(argv)
    return run_resnet50(args) if args.model == "resnet50" else run_custom_resnet(args)


def run_custom_resnet(args):
    """The S10 rows: the three (four with --compile) training paths, their data pipelines alone, the model's
    FLOPs against the matmul peak, and the projected 24-epoch time."""
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = device.type == "cuda"  # as main.py and the notebooks train
    steps = args.steps or (20 if device.type == "cuda" else 2)
    warmup = args.warmup if args.warmup is not None else (10 if device.type == "cuda" else 1) + 3 * args.compile
    n = args.batch_size * (steps + warmup + 1)
    images = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = np.random.default_rng(1).integers(0, 10, n)
    album = make_loader(AlbumentationsDataset(ImageArrays(images, labels), cifar_train_transforms(MEAN, STD, 8)),
                        args.batch_size, train=True, device=device)
    batched = BatchedCifarLoader(images, labels, args.batch_size, MEAN, STD, device=device, cutout_length=8)
    fast = Precision.resolve(device).name
    paths = [("(a) plain fp32 (no TF32), NCHW, Albumentations", "fp32", False, album),
             ("(b) default, Albumentations", fast, True, album),
             ("(c) default, batched loader", fast, True, batched)]
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
        with row_context(precision.name):
            model_only = step_rate(model, optimizer, [fixed] * (steps + warmup), precision, steps, warmup)
            with_data = step_rate(model, optimizer, loader, precision, steps, warmup)
        rows.append((name, with_data, model_only))
    print("\n| path | train with data (img/s) | model step alone (img/s) | with data vs (a) | model vs (a) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, with_data, model_only in rows:
        print(f"| {name} | {with_data:.1f} | {model_only:.1f} | {with_data / rows[0][1]:.2f}x | "
              f"{model_only / rows[0][2]:.2f}x |")
    print(f"\ndata pipelines alone: Albumentations DataLoader {pipeline_rate(album, steps, device):.0f} img/s, "
          f"batched loader {pipeline_rate(batched, steps, device):.0f} img/s")
    summarise(args, rows, fixed, fast, device, steps, warmup)


def summarise(args, rows, fixed, fast, device, steps, warmup):
    """The model's FLOPs per image against the measured matmul peak, the projected 24-epoch S10 time, and
    (``--json``) every row."""
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
