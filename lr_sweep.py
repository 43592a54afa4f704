"""Check the range test's rule: short one-cycle runs at several max LRs, final test accuracy against max LR.

The S10 lesson claims that the LR range test picks the one-cycle max LR. This script puts that to the
test on a fixed, class-balanced subset of the CIFAR-10 training set, with the S10 recipe:

1. the range test (the recipe's range, iterations and batch size) on the subset, giving the suggestions;
2. one short one-cycle run (``--epochs``, default 4) at each max LR of a log-spaced grid (default
   0.05 .. 1.6) plus the range test's ``min_loss`` and ``valley`` suggestions;
3. the final test accuracy of each run on the full test set, printed as a table, written to
   ``<output>.json`` and drawn in ``<output>.png`` with the suggestions marked.

    python lr_sweep.py --data_dir <cifar10 folder> --output Data/lr_sweep

Every run uses the same seed, so the runs differ only in max LR.
"""
import argparse
import json
import time
from dataclasses import replace

import numpy as np
import torch

import dataset
from custom_resnet import CustomResNet
from lr_finder import find_lr
from recipes import S10, build_criterion, build_one_cycle, build_optimizer
from training_utils import Precision, start_epoch_randomness, test, train
from utils import describe_machine, get_device, seed_everything

DEFAULT_GRID = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default=None, help="CIFAR-10 folder (default: $CIFAR10_DIR, else ./data)")
    parser.add_argument("--dataset", default="cifar10", choices=["cifar10", "synthetic"])
    parser.add_argument("--subset", type=int, default=10_000, help="training images (class-balanced, fixed)")
    parser.add_argument("--test_subset", type=int, default=None, help="test images (default: all)")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=S10.batch_size)
    parser.add_argument("--lr_iter", type=int, default=S10.lr_iter)
    parser.add_argument("--grid", type=float, nargs="+", default=list(DEFAULT_GRID), help="max LRs to train")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", default="Data/lr_sweep", help="writes <output>.json and <output>.png")
    parser.add_argument("--plot_only", action="store_true", help="redraw <output>.png from <output>.json, no training")
    parser.add_argument("--no_range_test", action="store_true", help="train the grid only (no range test, no "
                        "suggestions added or marked): e.g. to see how the best max LR moves with --epochs")
    args = parser.parse_args(argv)
    if args.subset < args.batch_size:
        parser.error(f"--subset {args.subset} is smaller than one batch of {args.batch_size}")
    if any(lr <= 0 for lr in args.grid):
        parser.error("--grid: every max LR must be positive")
    return args


def loaders(args, device):
    """The fixed training subset and the test set as loaders, with the mean/std of the subset."""
    train_images, train_labels = dataset.load_cifar(args.dataset, args.data_dir, train=True)
    test_images, test_labels = dataset.load_cifar(args.dataset, args.data_dir, train=False)
    keep = dataset.balanced_indices(train_labels, args.subset, seed=args.seed)
    train_images, train_labels = train_images[keep], train_labels[keep]
    if args.test_subset:
        keep = dataset.balanced_indices(test_labels, args.test_subset, seed=args.seed)
        test_images, test_labels = test_images[keep], test_labels[keep]
    mean, std = dataset.channel_stats(train_images)
    train_set = dataset.AlbumentationsDataset(
        dataset.ImageArrays(train_images, train_labels),
        dataset.cifar_train_transforms(mean, std, S10.cutout_length, S10.cutout_holes, S10.crop_padding), seed=args.seed)
    test_set = dataset.AlbumentationsDataset(dataset.ImageArrays(test_images, test_labels),
                                             dataset.cifar_test_transforms(mean, std))
    return (dataset.make_loader(train_set, args.batch_size, True, device, args.workers, seed=args.seed),
            dataset.make_loader(test_set, 1000, False, device, args.workers))


def one_cycle_run(max_lr, args, train_loader, test_loader, precision, num_classes=10):
    """Train a fresh net for ``args.epochs`` epochs at ``max_lr``; returns the final test accuracy (%)."""
    recipe = replace(S10, epochs=args.epochs)
    seed_everything(args.seed)
    model = precision.prepare(CustomResNet(num_classes=num_classes))
    optimizer = build_optimizer(recipe, model.parameters(), lr=max_lr)
    scheduler = build_one_cycle(recipe, optimizer, max_lr, args.epochs, len(train_loader))
    criterion = build_criterion(recipe)
    scaler = precision.grad_scaler()
    for epoch in range(1, args.epochs + 1):
        start_epoch_randomness(train_loader, args.seed, epoch)
        trained = train(model, precision.device, train_loader, optimizer, criterion, scheduler,
                        precision=precision, scaler=scaler, epoch=epoch)
    tested = test(model, precision.device, test_loader, criterion, precision=precision)
    return tested.acc, trained.loss


def range_test_suggestions(args, train_loader, precision):
    """The range test on the subset, with the recipe's optimizer, loss and range; returns its suggestions."""
    seed_everything(args.seed)
    model = precision.prepare(CustomResNet(num_classes=10))
    optimizer = build_optimizer(S10, model.parameters(), lr=S10.lr_start)
    result = find_lr(model, optimizer, build_criterion(S10), train_loader, device=precision.device,
                     start_lr=S10.lr_start, end_lr=S10.lr_end, num_iter=args.lr_iter, precision=precision, progress=False)
    if not result.suggestions:
        raise SystemExit(f"the range test gave no suggestion: {result.reason}")
    print("range test: " + ", ".join(f"{k} {v:.3g}" for k, v in result.suggestions.items())
          + f" ({result.seconds:.0f}s)", flush=True)
    return result.suggestions


def plot_sweep(results, suggestions, chosen, save_path=None, title=""):
    """Final test accuracy against max LR (log scale) with the range test's suggestions marked."""
    from visualize import SUGGESTION_MARKERS, _finish
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5))
    ax = figure.add_subplot()
    lrs = [r["max_lr"] for r in results]
    accs = [r["test_acc"] for r in results]
    ax.plot(lrs, accs, "o-", color="tab:blue", label="final test accuracy")
    for lr, acc in zip(lrs, accs):
        ax.annotate(f"{acc:.1f}", (lr, acc), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=9)
    for name, lr in suggestions.items():
        marker, colour = SUGGESTION_MARKERS[name]
        ax.axvline(lr, color=colour, linestyle=":", alpha=0.8, label=f"{name}: {lr:.3g}"
                   + (" (the rule)" if name == chosen else ""))
    ax.set_xscale("log")
    ax.set_xlabel("one-cycle max LR")
    ax.set_ylabel("final test accuracy (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9)
    return _finish(figure, save_path)


def sweep_title(summary):
    """The figure's title: the run's size, the best run and the run nearest the rule's LR."""
    settings, best, at_rule = summary["settings"], summary["best"], summary["at_rule"]
    title = (f"S10 recipe, {settings['subset']} training images, {settings['epochs']} epochs per run: best "
             f"{best['test_acc']:.1f}% at {best['max_lr']:.3g}")
    if not at_rule:
        return title
    chosen = summary["suggestions"][summary["rule"]]
    return (f"{title};\nthe rule's {chosen:.3g} ({summary['rule']}), nearest run {at_rule['max_lr']:.3g}: "
            f"{at_rule['test_acc']:.1f}%")


def main(argv=None):
    args = parse_args(argv)
    if args.plot_only:
        with open(f"{args.output}.json") as file:
            summary = json.load(file)
        plot_sweep(summary["results"], summary["suggestions"], summary["rule"], f"{args.output}.png", sweep_title(summary))
        print(sweep_title(summary))
        return summary
    device = get_device(args.device)
    precision = Precision.resolve(device)
    train_loader, test_loader = loaders(args, device)
    print(f"{describe_machine(device)}; {precision.name}; {len(train_loader.dataset)} training images, "
          f"{len(test_loader.dataset)} test images, {args.epochs} epochs per run, batch {args.batch_size}", flush=True)
    suggestions = {} if args.no_range_test else range_test_suggestions(args, train_loader, precision)
    grid = sorted(set(args.grid))
    for name in suggestions and ("min_loss", "valley"):
        lr = suggestions[name]
        if min(abs(np.log(lr / g)) for g in grid) > np.log(1.15):  # not already within 15% of a grid point
            grid = sorted(grid + [lr])
    results = []
    for max_lr in grid:
        start = time.perf_counter()
        acc, train_loss = one_cycle_run(max_lr, args, train_loader, test_loader, precision)
        results.append({"max_lr": max_lr, "test_acc": acc, "final_train_loss": train_loss,
                        "seconds": time.perf_counter() - start})
        print(f"max LR {max_lr:7.4f}: test accuracy {acc:6.2f}%  (final train loss {train_loss:.3f}, "
              f"{results[-1]['seconds']:.0f}s)", flush=True)
    best = max(results, key=lambda r: r["test_acc"])
    at_rule = min(results, key=lambda r: abs(np.log(r["max_lr"] / suggestions["min_loss"]))) if suggestions else None
    summary = {"settings": {k: v for k, v in vars(args).items() if k not in ("data_dir", "output")},
               "machine": describe_machine(device), "precision": precision.name,
               "suggestions": suggestions, "rule": "min_loss", "results": results,
               "best": best, "at_rule": at_rule}
    with open(f"{args.output}.json", "w") as file:
        json.dump(summary, file, indent=2)
    title = sweep_title(summary)
    plot_sweep(results, suggestions, "min_loss", save_path=f"{args.output}.png", title=title)
    print(title)
    print(f"wrote {args.output}.json and {args.output}.png")
    return summary


if __name__ == "__main__":
    main()
