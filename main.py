"""One command line for long or headless runs: the LR range test (--find_lr) or training, on CIFAR-10/100
or an ImageNet-style folder, in one process or several under torchrun.

  python main.py --data_dir ~/imagenet --find_lr --batch_size 256 --amp --output_dir runs/r50_lr
  python main.py --data_dir ~/imagenet --epochs 16 --batch_size 256 --max_lr 0.8 --amp --output_dir runs/r50
                  (--max_lr: the suggested_lr in runs/r50_lr/suggested_lr.json, found at the same batch size)
  python main.py --data_dir ~/imagenet --epochs 16 --batch_size 256 --max_lr 0.8 --amp --output_dir runs/r50 --resume
  torchrun --nproc_per_node=4 main.py --data_dir ~/imagenet --epochs 16 --batch_size 256 --max_lr 0.8 --amp ...
  CIFAR10_DIR=path/to/cifar10 python main.py --dataset cifar10 --epochs 24 --batch_size 512 --max_lr 0.4 ...
  CPU smoke run:  python main.py --dataset cifar10 --epochs 1 --max_samples 500 --batch_size 50 --max_lr 0.1 \\
                  --output_dir /tmp/smoke --overwrite

--find_lr writes lr_finder_plot.png (the curve, suggestions marked), lr_finder_log.txt and suggested_lr.json
into --output_dir. Training writes last.pt, best.pt, epoch_<k>.pt (--save_every), history.json and
curves.png there. Under torchrun, --batch_size is the global batch, split over the processes; only rank 0
writes files and prints.
"""
# Only the standard library at the top: --help and argument errors answer before torch (seconds) loads.
import argparse
import json
import os
import shlex
import sys
from pathlib import Path

RUN_FILES = ("last.pt", "suggested_lr.json")  # their presence means the folder holds a previous run


def positive(kind):
    """An argparse type: a number of ``kind`` (int or float) that must be > 0."""
    def parse(text):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    parse.__name__ = kind.__name__  # argparse names it in "invalid int value"
    return parse


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks and shows each default that is set."""

    def _get_help_string(self, action):
        if action.default in (None, False, argparse.SUPPRESS):
            return action.help
        return f"{action.help} (default: %(default)s)"


def build_parser():
    """The command line: data, range test, training and run options, each with its help."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    data = parser.add_argument_group("data")
    data.add_argument("--data_dir", help="a folder with train/ and val/ class folders (ImageNet layout), or for "
                      "CIFAR one with train.npz/test.npz or torchvision's files (default: CIFAR10_DIR or ./data)")
    data.add_argument("--dataset", choices=("cifar10", "cifar100", "imagefolder"),
                      help="default: imagefolder when --data_dir holds train/ and val/, else cifar10")
    data.add_argument("--image_size", type=positive(int), default=224, help="training crop size (image folders)")
    data.add_argument("--max_samples", type=positive(int), help="use a class-balanced subset of at most this "
                      "many images from each split (quick runs)")
    data.add_argument("--batch_size", type=positive(int), default=64, help="images per step, over all processes")
    data.add_argument("--workers", type=int, help="DataLoader workers per process (default: min(4, cores - 1))")
    lr = parser.add_argument_group("LR range test")
    lr.add_argument("--find_lr", action="store_true", help="run the range test and write its report, no training")
    lr.add_argument("--lr_start", type=positive(float), default=1e-5, help="first learning rate")
    lr.add_argument("--lr_end", type=positive(float), default=10.0, help="last learning rate")
    lr.add_argument("--lr_iter", type=int, default=100, help="iterations (batches), at least 2")
    lr.add_argument("--lr_step_mode", choices=("exp", "linear"), default="exp", help="how the LR grows")
    lr.add_argument("--lr_smooth_f", type=float, default=0.05, help="loss smoothing factor in [0, 1)")
    lr.add_argument("--lr_diverge_th", type=float, default=5.0, help="stop once the loss exceeds this many times "
                    "the best (> 1)")
    lr.add_argument("--lr_plot", help="where to save the plot (default: <output_dir>/lr_finder_plot.png)")
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=positive(int), default=16, help="number of epochs")
    train.add_argument("--lr", "--max_lr", dest="max_lr", type=positive(float), help="peak LR of the one-cycle "
                       "schedule, starting LR of cosine/step; required for training (run --find_lr first)")
    train.add_argument("--scheduler", choices=("onecycle", "cosine", "step"), default="onecycle",
                       help="onecycle: OneCycleLR stepped per batch; cosine: cosine decay to 0 per epoch; step: "
                       "LR / 10 after each third of the epochs")
    train.add_argument("--pct_start", type=float, default=0.25, help="one-cycle: fraction of steps spent warming up")
    train.add_argument("--div_factor", type=positive(float), default=25.0, help="one-cycle: first LR = max_lr / this")
    train.add_argument("--final_div_factor", type=positive(float), default=1e4,
                       help="one-cycle: last LR = max_lr / div_factor / this")
    train.add_argument("--weight_decay", type=float, default=5e-5, help="SGD weight decay")
    train.add_argument("--momentum", type=float, default=0.9, help="SGD Nesterov momentum (fixed), in [0, 1)")
    train.add_argument("--label_smoothing", type=float, default=0.0, help="cross-entropy label smoothing in [0, 1)")
    train.add_argument("--grad_clip", type=positive(float), help="clip the gradient norm to this value")
    train.add_argument("--amp", action="store_true", help="mixed precision: bf16 autocast on CUDA and on CPUs with "
                       "bf16 units, fp16 with a GradScaler on older GPUs (fp32 where neither pays off)")
    train.add_argument("--pretrained", action="store_true", help="start ResNet-50 from torchvision's ImageNet "
                       "weights (image folders; downloaded once)")
    run = parser.add_argument_group("run")
    run.add_argument("--output_dir", default="runs", help="folder for the report, checkpoints and history")
    run.add_argument("--save_every", type=int, default=0, help="also keep epoch_<k>.pt every this many epochs")
    previous = run.add_mutually_exclusive_group()
    previous.add_argument("--resume", nargs="?", const=True, metavar="CHECKPOINT", help="continue the run in "
                          "--output_dir from its last.pt (or from CHECKPOINT): same schedule, same history")
    previous.add_argument("--overwrite", action="store_true", help="replace a previous run in --output_dir")
    run.add_argument("--seed", type=int, default=1, help="seed for weights, data order and augmentations")
    run.add_argument("--no_cuda", action="store_true", help="run on the CPU even when CUDA is available")
    return parser


def validate(parser, args):
    """Reject impossible settings with an argparse error (exit code 2) before any work starts; fills in
    ``args.dataset`` and ``args.resume`` (a checkpoint path or None)."""
    def check(ok, message):
        if not ok:
            parser.error(message)

    world = int(os.environ.get("WORLD_SIZE", 1))
    check(args.lr_start < args.lr_end, f"--lr_start {args.lr_start:g} must be below --lr_end {args.lr_end:g}")
    check(args.lr_iter >= 2, f"--lr_iter must be at least 2, got {args.lr_iter}")
    check(0 <= args.lr_smooth_f < 1, f"--lr_smooth_f must be in [0, 1), got {args.lr_smooth_f}")
    check(args.lr_diverge_th > 1, f"--lr_diverge_th must be > 1, got {args.lr_diverge_th}")
    check(0 < args.pct_start < 1, f"--pct_start must be in (0, 1), got {args.pct_start}")
    check(args.weight_decay >= 0, f"--weight_decay must be >= 0, got {args.weight_decay}")
    check(0 <= args.momentum < 1, f"--momentum must be in [0, 1), got {args.momentum}")
    check(0 <= args.label_smoothing < 1, f"--label_smoothing must be in [0, 1), got {args.label_smoothing}")
    check(args.save_every >= 0, f"--save_every must be >= 0, got {args.save_every}")
    check(args.workers is None or args.workers >= 0, f"--workers must be >= 0, got {args.workers}")
    check(args.batch_size % world == 0, f"--batch_size {args.batch_size} must divide over {world} processes")
    check(not (args.find_lr and world > 1), "--find_lr runs in one process: run it without torchrun")
    check(args.find_lr or args.max_lr, "training needs --max_lr (run --find_lr first: it suggests one)")
    check(not (args.find_lr and args.resume), "--resume continues a training run; it does not apply to --find_lr")
    data_dir = Path(args.data_dir).expanduser() if args.data_dir else None
    check(data_dir is None or data_dir.is_dir(), f"--data_dir {args.data_dir} is not an existing folder")
    has_splits = data_dir is not None and (data_dir / "train").is_dir() and (data_dir / "val").is_dir()
    args.dataset = args.dataset or ("imagefolder" if has_splits else "cifar10")
    check(args.dataset != "imagefolder" or has_splits,
          f"--dataset imagefolder needs --data_dir with train/ and val/ class folders; {args.data_dir} has none")
    check(not args.pretrained or args.dataset == "imagefolder", "--pretrained applies to ResNet-50 (image folders)")
    check(args.image_size >= 32, f"--image_size must be at least 32, got {args.image_size}")
    output_dir = Path(args.output_dir).expanduser()
    if args.resume:
        args.resume = Path(output_dir / "last.pt" if args.resume is True else args.resume).expanduser()
        check(args.resume.is_file(), f"--resume: checkpoint {args.resume} does not exist")
    else:
        args.resume = None
    found = [name for name in RUN_FILES if (output_dir / name).exists()]
    check(not found or args.resume or args.overwrite, f"--output_dir {args.output_dir} holds a previous run "
          f"({', '.join(found)}): pass --resume to continue it, --overwrite to replace it, or choose another folder")
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / f".write_test_{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        parser.error(f"--output_dir {args.output_dir} cannot be written: {error.strerror or error}")


def setup_distributed(no_cuda):
    """``(rank, world_size, device)``; under torchrun, joins the process group (NCCL on CUDA, gloo on CPU)."""
    import torch

    use_cuda = torch.cuda.is_available() and not no_cuda
    world = int(os.environ.get("WORLD_SIZE", 1))
    if world == 1:
        return 0, 1, torch.device("cuda" if use_cuda else "cpu")
    local_rank = int(os.environ["LOCAL_RANK"])
    if use_cuda:
        torch.cuda.set_device(local_rank)
    torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    return torch.distributed.get_rank(), world, torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")


def build_data(args):
    """``(train_set, val_set, num_classes)`` for ``args.dataset``, with the matching Albumentations
    transforms; ``--max_samples`` keeps a class-balanced subset of each split."""
    import dataset

    if args.dataset == "imagefolder":
        train_set, val_set, class_names = dataset.image_folder_datasets(args.data_dir, args.image_size,
                                                                        args.max_samples, args.seed)
        return train_set, val_set, len(class_names)
    splits = [dataset.load_cifar(args.dataset, args.data_dir, train=train) for train in (True, False)]
    if args.max_samples:
        splits = [(images[keep], labels[keep]) for images, labels in splits
                  for keep in [dataset.balanced_indices(labels, args.max_samples, args.seed)]]
    mean, std = dataset.channel_stats(splits[0][0])
    train_set = dataset.AlbumentationsDataset(splits[0], dataset.cifar_train_transforms(mean, std, cutout_size=8))
    val_set = dataset.AlbumentationsDataset(splits[1], dataset.cifar_test_transforms(mean, std))
    return train_set, val_set, 100 if args.dataset == "cifar100" else 10


def build_scheduler(args, optimizer, steps_per_epoch):
    """OneCycleLR (stepped per batch), cosine annealing or step decay (stepped per epoch)."""
    from torch.optim import lr_scheduler as schedulers

    if args.scheduler == "onecycle":
        return schedulers.OneCycleLR(optimizer, max_lr=args.max_lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch,
                                     pct_start=args.pct_start, div_factor=args.div_factor,
                                     final_div_factor=args.final_div_factor, cycle_momentum=False)
    if args.scheduler == "cosine":
        return schedulers.CosineAnnealingLR(optimizer, T_max=args.epochs)
    return schedulers.StepLR(optimizer, step_size=max(1, args.epochs // 3), gamma=0.1)


def run(args):
    """Build data, model and optimizer, then run the range test or train."""
    import torch
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel
    from torch.utils.data.distributed import DistributedSampler

    import dataset
    import visualize
    from custom_resnet import CustomResNet, resnet50
    from lr_finder import find_lr, write_report
    from training_utils import fit, prepare_model
    from utils import seed_everything

    rank, world, device = setup_distributed(args.no_cuda)
    master = rank == 0
    log = print if master else (lambda *_: None)
    output_dir = Path(args.output_dir).expanduser()
    seed_everything(args.seed + rank)
    train_set, val_set, num_classes = build_data(args)
    train_set.transform.set_random_seed(args.seed + rank)  # each process its own (reproducible) augmentations
    samplers = [DistributedSampler(train_set, world, rank, shuffle=True, seed=args.seed, drop_last=True),
                DistributedSampler(val_set, world, rank, shuffle=False)] if world > 1 else [None, None]
    batch = args.batch_size // world
    train_loader = dataset.make_loader(train_set, batch, True, device, args.workers, sampler=samplers[0])
    val_loader = dataset.make_loader(val_set, batch, False, device, args.workers, sampler=samplers[1])
    if len(train_loader) == 0:
        sys.exit(f"main.py: error: {len(train_set)} training images make no full batch of {args.batch_size}")
    if args.scheduler == "onecycle" and args.pct_start * args.epochs * len(train_loader) == 1:  # torch divides by 0
        sys.exit("main.py: error: OneCycleLR cannot warm up over exactly one step: change --pct_start or --epochs")
    image_size = args.image_size if args.dataset == "imagefolder" else 32
    model_name = "ResNet-50 v1.5" if args.dataset == "imagefolder" else "CustomResNet"
    model = resnet50(num_classes, args.pretrained) if args.dataset == "imagefolder" else CustomResNet(num_classes)
    model = prepare_model(model, device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.max_lr or args.lr_start, momentum=args.momentum,
                                nesterov=args.momentum > 0, weight_decay=args.weight_decay)
    criterion = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    precision = "auto" if args.amp else "fp32"
    folder = args.data_dir or os.environ.get(f"{args.dataset.upper()}_DIR", "data")
    description = f"{args.dataset} {folder} ({num_classes} classes, {len(train_set)} training images at {image_size}px)"
    log(f"{description}; {model_name} on {device} x {world}, batch {args.batch_size}, {len(train_loader)} steps")
    if args.find_lr:
        result = find_lr(model, optimizer, criterion, train_loader, device=device, start_lr=args.lr_start,
                         end_lr=args.lr_end, num_iter=args.lr_iter, step_mode=args.lr_step_mode,
                         smooth_f=args.lr_smooth_f, diverge_th=args.lr_diverge_th, precision=precision)
        config = {"model": model_name, "image_size": image_size, "optimizer": f"SGD momentum {args.momentum} "
                  f"(Nesterov) weight decay {args.weight_decay}", "label_smoothing": args.label_smoothing,
                  "seed": args.seed}
        report = write_report(result, output_dir, description, args.batch_size, shlex.join(["python", *sys.argv]),
                              config, plot_file=args.lr_plot)
        for name, value in result.suggestions.items():
            log(f"{name:9s} {value:.3e}")
        for warning in result.warnings:
            log(f"WARNING: {warning}")
        log("wrote " + ", ".join(str(path) for path in report.values()))
        return
    scheduler = build_scheduler(args, optimizer, len(train_loader))
    if world > 1:
        model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    history = fit(model, device, train_loader, val_loader, optimizer, criterion, args.epochs, scheduler,
                  precision=precision, grad_clip=args.grad_clip, topk=5, checkpoint_dir=output_dir if master else None,
                  save_every=args.save_every, resume=args.resume, progress=master, log=log)
    if master:
        (output_dir / "history.json").write_text(json.dumps(history, indent=1) + "\n")
        visualize.plot_history(history, save_path=output_dir / "curves.png")
        best = max(history["test_acc"])
        log(f"best val accuracy {best:.2f}%, last {history['test_acc'][-1]:.2f}%; wrote {output_dir}/last.pt, "
            "best.pt, history.json, curves.png")


def main():
    """Check the arguments, then run; data, checkpoint and divergence errors end with one clear line."""
    parser = build_parser()
    args = parser.parse_args()
    validate(parser, args)
    import torch
    from dataset import DataFormatError, DataNotFoundError
    from training_utils import CheckpointError, NonFiniteLossError

    try:
        run(args)
    except (DataNotFoundError, DataFormatError, CheckpointError, NonFiniteLossError) as error:
        sys.exit(f"main.py: error: {error}")
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
