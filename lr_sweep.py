"""Check the range test's rule: short one-cycle runs at several max LRs, final accuracy against max LR.

The lessons claim that the LR range test picks the one-cycle max LR. This script puts that to the test
with a lesson's recipe and model, on a fixed, class-balanced subset of the training images:

* CIFAR-10 (the default): the S10 recipe and CustomResNet, 10,000 training images, all 10,000 test images;
* an ImageNet-style folder (``--dataset imagefolder``): the ImageNet recipe and ResNet-50 v1.5 at
  ``--image_size``, the accuracy measured on the folder's ``val`` split.

1. the range test (the recipe's range, ``--lr_iter`` iterations, the batch size) on the subset, giving
   the suggestions; with several ``--lr_iter`` values, one range test each, drawn together in
   ``<output>_range_tests.png`` (the first gives the suggestions);
2. one short one-cycle run (``--epochs``, default 4) at each max LR of ``--grid`` plus the first range
   test's ``min_loss`` and ``valley`` suggestions;
3. the final top-1 accuracy of each run, printed as a table, written to ``<output>.json`` and drawn in
   ``<output>.png`` with the suggestions marked.

    python lr_sweep.py --data_dir <cifar10 folder> --output Data/lr_sweep
    python lr_sweep.py --dataset imagefolder --data_dir <imagenette> --image_size 128 --epochs 3 \\
        --grid 0.003 0.01 0.03 0.1 0.3 --lr_iter 100 300 --output Data/imagenet_lr_sweep

Every run uses the same seed, so the runs differ only in max LR.
"""
import argparse
import json
import os
import time
from dataclasses import replace

import numpy as np

import dataset
from lr_finder import find_lr, lowest_before_divergence
from precision import Precision, get_device
from recipes import IMAGENET, S10, build_criterion, build_optimizer
from seeding import seed_everything
from training_run import cifar_sets, train_model
from utils import describe_machine
from visualize import plot_range_tests, plot_sweep

INIT_NAMES = {"zero": "zero-init residuals", "default": "torchvision's init"}
DEFAULT_GRID = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
IMAGEFOLDER_GRID = (0.003, 0.01, 0.03, 0.1, 0.3)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default=None, help="the data folder (default: $CIFAR10_DIR or $IMAGENET_DIR, "
                        "else ./data)")
    parser.add_argument("--dataset", default="cifar10", choices=["cifar10", "synthetic", "imagefolder"])
    parser.add_argument("--subset", type=int, default=None, help="training images (class-balanced, fixed; default "
                        "10,000 for CIFAR, all for a folder, whose val split then keeps as many per class)")
    parser.add_argument("--test_subset", type=int, default=None, help="CIFAR test images (default: all)")
    parser.add_argument("--image_size", type=int, default=128, help="image folder: training and validation size")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batch_size", type=int, default=None, help="default: 512 (S10), 32 (image folder)")
    parser.add_argument("--lr_iter", type=int, nargs="+", default=None, help="range-test iterations (default the "
                        "recipe's, 100); several values: one range test each, the first gives the suggestions")
    parser.add_argument("--grid", type=float, nargs="+", default=None, help="max LRs to train")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--output", default="Data/lr_sweep", help="writes <output>.json and <output>.png")
    parser.add_argument("--plot_only", action="store_true", help="redraw <output>.png from <output>.json, no training")
    parser.add_argument("--init", default="zero", choices=["zero", "default"], help="ResNet-50: 'zero' starts the "
                        "last batch-norm scale of each block at zero (the course's), 'default' is torchvision's")
    parser.add_argument("--suggestion_runs", nargs="*", default=["min_loss", "valley"],
                        choices=["min_loss", "valley", "steepest", "minimum"], help="suggestions added to the grid "
                        "as runs (none: only the grid)")
    parser.add_argument("--compare", default=None, help="with --plot_only: another sweep's JSON drawn beside this one")
    parser.add_argument("--no_range_test", action="store_true", help="train the grid only (no range test, no "
                        "suggestions added or marked): e.g. to see how the best max LR moves with --epochs")
    args = parser.parse_args(argv)
    folder = args.dataset == "imagefolder"
    args.recipe = IMAGENET if folder else S10
    args.model = "resnet50" if folder else "custom_resnet"
    args.batch_size = args.batch_size or (32 if folder else S10.batch_size)
    args.lr_iter = args.lr_iter or [args.recipe.lr_iter]
    args.grid = args.grid or list(IMAGEFOLDER_GRID if folder else DEFAULT_GRID)
    if args.subset is None:
        args.subset = 0 if folder else 10_000
    if args.data_dir is None:
        args.data_dir = os.environ.get("IMAGENET_DIR" if folder else "CIFAR10_DIR")
    if folder and not args.data_dir and not args.plot_only:
        parser.error("--dataset imagefolder needs --data_dir (or $IMAGENET_DIR): a folder with train/ and val/")
    if not folder and args.subset < args.batch_size:
        parser.error(f"--subset {args.subset} is smaller than one batch of {args.batch_size}")
    if any(lr <= 0 for lr in args.grid):
        parser.error("--grid: every max LR must be positive")
    if any(n < 2 for n in args.lr_iter):
        parser.error("--lr_iter: a range test needs at least 2 iterations")
    return args


def loaders(args, device):
    """The fixed training subset and the evaluation split as loaders; returns them and the class count."""
    if args.dataset == "imagefolder":
        train_set, val_set, classes = dataset.image_folder_datasets(
            args.data_dir, args.image_size, args.subset or None, seed=args.seed, color_jitter=args.recipe.color_jitter,
            min_scale=args.recipe.min_scale)
        return (dataset.make_loader(train_set, args.batch_size, True, device, args.workers, seed=args.seed),
                dataset.make_loader(val_set, args.batch_size, False, device, args.workers), len(classes))
    train_images, train_labels = dataset.load_cifar(args.dataset, args.data_dir, train=True)
    test_images, test_labels = dataset.load_cifar(args.dataset, args.data_dir, train=False)
    keep = dataset.balanced_indices(train_labels, args.subset, seed=args.seed)
    train_images, train_labels = train_images[keep], train_labels[keep]
    if args.test_subset:
        keep = dataset.balanced_indices(test_labels, args.test_subset, seed=args.seed)
        test_images, test_labels = test_images[keep], test_labels[keep]
    train_set, test_set = cifar_sets((train_images, train_labels), (test_images, test_labels), S10, args.seed)
    return (dataset.make_loader(train_set, args.batch_size, True, device, args.workers, seed=args.seed),
            dataset.make_loader(test_set, 1000, False, device, args.workers), 10)


def new_model(args, num_classes, precision):
    from custom_resnet import build_model
    seed_everything(args.seed)
    return precision.prepare(build_model(args.model, num_classes, zero_init_residual=args.init == "zero"))


def one_cycle_run(max_lr, args, train_loader, test_loader, precision, num_classes=10):
    """Train a fresh net for ``args.epochs`` epochs at ``max_lr`` (``training_run.train_model``); returns the
    final top-1 accuracy (%), the top-5 accuracy (None for CIFAR) and the last epoch's training loss."""
    recipe = replace(args.recipe, epochs=args.epochs, max_lr=max_lr)
    model = new_model(args, num_classes, precision)
    history, _ = train_model(model, recipe, train_loader, test_loader, precision, seed=args.seed,
                             log=lambda *_: None)
    top5 = history["test_top5"][-1] if args.dataset == "imagefolder" else None
    return history["test_acc"][-1], top5, history["train_loss"][-1]


def range_tests(args, train_loader, precision, num_classes=10):
    """One range test per ``args.lr_iter`` value on the subset, with the recipe's optimizer, loss and range;
    returns their results (the first one's suggestions are the sweep's)."""
    results = []
    for num_iter in args.lr_iter:
        model = new_model(args, num_classes, precision)
        optimizer = build_optimizer(args.recipe, model.parameters(), lr=args.recipe.lr_start)
        result = find_lr(model, optimizer, build_criterion(args.recipe), train_loader, device=precision.device,
                         start_lr=args.recipe.lr_start, end_lr=args.recipe.lr_end, num_iter=num_iter,
                         precision=precision)
        print(f"range test, {num_iter} iterations: " + (", ".join(f"{k} {v:.3g}" for k, v in result.suggestions.items())
              or f"no suggestion ({result.reason})") + f" ({result.seconds:.0f}s)", flush=True)
        results.append(result)
    if not results[0].suggestions:
        raise SystemExit(f"the range test gave no suggestion: {results[0].reason}")
    return results


def range_test_curves(summary, label=""):
    """The range tests stored in a sweep's JSON as curves for ``plot_range_tests`` (``label`` prefixes each)."""
    return [{"label": f"{label}{test['num_iter']} iterations", "lrs": test["lrs"], "losses": test["losses"],
             "smooth_f": test["smooth_f"], "min_loss": test["suggestions"].get("min_loss"),
             "lowest": lowest_before_divergence(test["losses"])}
            for test in summary.get("range_tests", [])]


def sweep_title(summary):
    """The figure's title: the run's size, the best run and the run nearest the rule's LR."""
    settings, best, at_rule = summary["settings"], summary["best"], summary["at_rule"]
    what = summary.get("what", f"S10 recipe, {settings['subset']} training images")
    title = f"{what}, {settings['epochs']} epochs per run: best {best['test_acc']:.1f}% at {best['max_lr']:.3g}"
    if not at_rule:
        return title
    chosen = summary["suggestions"][summary["rule"]]
    return (f"{title};\nthe rule's {chosen:.3g} ({summary['rule']}), nearest run {at_rule['max_lr']:.3g}: "
            f"{at_rule['test_acc']:.1f}%")


def main(argv=None):
    """Run the sweep (or with ``--plot_only`` redraw its figures); returns its summary."""
    args = parse_args(argv)
    return redraw(args) if args.plot_only else sweep(args)


def redraw(args):
    """``--plot_only``: the figures of a stored sweep (with ``--compare``, beside another one)."""
    with open(f"{args.output}.json") as file:
        summary = json.load(file)
    label, others, curves, classes = None, [], range_test_curves(summary), summary.get("num_classes")
    title = f"range tests: {summary.get('what', '')}"
    if args.compare:
        with open(args.compare) as file:
            other = json.load(file)
        label, other_label = (INIT_NAMES[s.get("settings", {}).get("init", "zero")] for s in (summary, other))
        others = [(other_label, other["results"])]
        curves = range_test_curves(summary, f"{label}, ") + range_test_curves(other, f"{other_label}, ")
        classes = classes or other.get("num_classes")
        what = summary.get("what", "").replace(f"{label}, ", "")
        title = f"range tests, {what}:\n{label} and {other_label}"
    plot_sweep(summary["results"], summary["suggestions"], summary["rule"], f"{args.output}.png",
               sweep_title(summary), summary.get("split", "test"), label=label, others=others)
    if len(curves) > 1:
        chance = np.log(classes) if classes else None
        plot_range_tests(curves, f"{args.output}_range_tests.png", title, chance=chance)
    print(sweep_title(summary))
    return summary


def sweep(args):
    """The range test(s), then one short one-cycle run per peak of the grid (and per suggestion); writes
    ``<output>.json`` and its figures."""
    device = get_device(args.device)
    precision = Precision.resolve(device)
    train_loader, test_loader, num_classes = loaders(args, device)
    folder = args.dataset == "imagefolder"
    split = "validation" if folder else "test"
    what = (f"ResNet-50 ({INIT_NAMES[args.init]}, ImageNet recipe), {len(train_loader.dataset)} images at "
            f"{args.image_size}px, batch {args.batch_size}" if folder
            else f"S10 recipe, {len(train_loader.dataset)} training images")
    print(f"{describe_machine(device)}; {precision.name}; {len(train_loader.dataset)} training images, "
          f"{len(test_loader.dataset)} {split} images, {args.epochs} epochs per run, batch {args.batch_size}", flush=True)
    tests = [] if args.no_range_test else range_tests(args, train_loader, precision, num_classes)
    suggestions = tests[0].suggestions if tests else {}
    grid = sorted(set(args.grid))
    for name in suggestions and args.suggestion_runs:
        lr = suggestions[name]
        if min(abs(np.log(lr / g)) for g in grid) > np.log(1.15):  # not already within 15% of a grid point
            grid = sorted(grid + [lr])
    results = []
    for max_lr in grid:
        start = time.perf_counter()
        acc, top5, train_loss = one_cycle_run(max_lr, args, train_loader, test_loader, precision, num_classes)
        results.append({"max_lr": max_lr, "test_acc": acc, "test_top5": top5, "final_train_loss": train_loss,
                        "seconds": time.perf_counter() - start})
        top5 = f", top-5 {top5:.2f}%" if top5 is not None else ""
        print(f"max LR {max_lr:9.3g}: {split} accuracy {acc:6.2f}%{top5}  (final train loss {train_loss:.3f}, "
              f"{results[-1]['seconds']:.0f}s)", flush=True)
    best = max(results, key=lambda r: r["test_acc"])
    at_rule = min(results, key=lambda r: abs(np.log(r["max_lr"] / suggestions["min_loss"]))) if suggestions else None
    summary = {"settings": {k: v for k, v in vars(args).items() if k not in ("data_dir", "output", "recipe")},
               "what": what, "split": split, "recipe": args.recipe.name, "num_classes": num_classes,
               "machine": describe_machine(device), "precision": precision.name,
               "suggestions": suggestions, "rule": "min_loss", "results": results,
               "best": best, "at_rule": at_rule,
               "range_tests": [{"num_iter": t.settings["num_iter"], "suggestions": t.suggestions, "reason": t.reason,
                                "seconds": t.seconds, "lrs": t.all_lrs, "losses": t.all_losses,
                                "smooth_f": t.settings["smooth_f"]} for t in tests]}
    with open(f"{args.output}.json", "w") as file:
        json.dump(summary, file, indent=2)
    title = sweep_title(summary)
    plot_sweep(results, suggestions, "min_loss", save_path=f"{args.output}.png", title=title, split=split)
    written = [f"{args.output}.json", f"{args.output}.png"]
    if len(tests) > 1:
        plot_range_tests(range_test_curves(summary), f"{args.output}_range_tests.png", f"range tests: {what}",
                         chance=np.log(num_classes))
        written.append(f"{args.output}_range_tests.png")
    print(title)
    print("wrote " + ", ".join(written))
    return summary


if __name__ == "__main__":
    main()
