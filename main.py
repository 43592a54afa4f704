"""One command line for long or headless runs: the LR range test (--find_lr), training, or both, on
CIFAR-10/100 or an ImageNet-style folder, in one process or several under torchrun.

Every training setting is a field of the recipe of the data set and model (recipes.py: S10 for CIFAR
with the custom ResNet, RESNET50_CIFAR for CIFAR with --model resnet50, IMAGENET for image folders), and
each field is an option of the same name that overrides it. The run prints the recipe it uses, whole.

  # the range test alone: writes lr_finder_plot.png, lr_finder_log.txt and suggested_lr.json
  python main.py --data_dir ~/imagenet --find_lr --batch_size 256 --amp --output_dir runs/r50_lr
  # train with its suggestion (the JSON is checked for the same batch size)
  python main.py --data_dir ~/imagenet --epochs 16 --batch_size 256 --max_lr runs/r50_lr/suggested_lr.json --amp --output_dir runs/r50
  # both in one command: the range test, then training at its suggested max LR
  python main.py --dataset CIFAR100 --find_lr --epochs 30 --output_dir runs/c100
  # continue after a crash, Ctrl-C or SIGTERM: the same schedule, from the last finished epoch
  python main.py --data_dir ~/imagenet --epochs 16 --batch_size 256 --max_lr 0.8 --amp --output_dir runs/r50 --resume
  torchrun --nproc_per_node=4 main.py --data_dir ~/imagenet --epochs 16 --batch_size 256 --max_lr 0.8 --amp ...
  CPU smoke run:  python main.py --dataset cifar10 --epochs 1 --max_samples 500 --batch_size 50 --output_dir /tmp/smoke

--find_lr alone, or with --epochs 1 (the range test is "always 1 epoch"), runs only the range test; with
--epochs N > 1 it then trains for N epochs at the suggested max LR. Training writes last.pt, best.pt,
epoch_<k>.pt (--save_every), history.json and curves.png into --output_dir. Under torchrun,
--batch_size is the global batch, split over the processes; only rank 0 writes files and prints.
"""
# Only the standard library and recipes.py at the top: --help and argument errors answer before torch loads.
import os
import shlex
import sys
from dataclasses import fields, replace
from pathlib import Path

import command_line
from command_line import DEFAULT_SEED, SettingsError
from recipes import RECIPES, Recipe, recipe_for

REPORT_FILES = ("suggested_lr.json", "lr_finder_log.txt")


def build_parser(raise_errors=False):
    """The command line: one option per recipe field (``command_line.add_recipe_options``) and the
    options of the data, the range test and the run, each with its help. ``raise_errors``: errors raise
    SettingsError instead of exiting."""
    parser = command_line.SettingsParser(description=__doc__, formatter_class=command_line.HelpFormatter,
                                         raise_errors=raise_errors)
    command_line.add_data_options(parser)
    command_line.add_range_test_options(parser)
    command_line.add_run_options(parser)
    command_line.add_recipe_options(parser)
    return parser


def resolve_recipe(args):
    """The recipe of the run: ``--recipe`` (or the data set's and model's), each option given overriding
    its field; ``--cutout`` switches the recipe's holes off, or on at one 16-pixel hole."""
    base = RECIPES[args.recipe] if args.recipe else recipe_for(args.dataset, args.model)
    given = {f.name: getattr(args, f.name) for f in fields(Recipe)
             if f.metadata.get("cli", True) and getattr(args, f.name, None) is not None}
    recipe = replace(base, model=args.model, **given)
    if args.cutout is False:
        recipe = replace(recipe, cutout_holes=0)
    elif args.cutout and not (recipe.cutout_holes and recipe.cutout_length):
        recipe = replace(recipe, cutout_holes=recipe.cutout_holes or 1, cutout_length=recipe.cutout_length or 16)
    return recipe


def check_data_and_model(args):
    """Fill ``args.dataset`` and ``args.model`` from what the data folder holds; raise SettingsError for
    a data set, model and recipe that do not go together."""
    data_dir = Path(args.data_dir).expanduser() if args.data_dir else None
    require(data_dir is None or data_dir.is_dir(), f"--data_dir {args.data_dir} is not an existing folder")
    has_splits = data_dir is not None and (data_dir / "train").is_dir() and (data_dir / "val").is_dir()
    args.dataset = args.dataset or ("imagefolder" if has_splits else "cifar10")
    require(args.dataset != "imagefolder" or has_splits,
            f"--dataset imagefolder needs --data_dir with train/ and val/ class folders; {args.data_dir} has none")
    if args.recipe:
        model = RECIPES[args.recipe].model
        require(args.model in (None, model), f"--recipe {args.recipe} trains --model {model}, not {args.model}")
        require((args.dataset == "imagefolder") == (args.recipe == "imagenet"),
                f"--recipe {args.recipe} is for {'image folders' if args.recipe == 'imagenet' else 'CIFAR'}")
        args.model = model
    require(args.model != "speedrun" or args.dataset != "imagefolder", "--model speedrun is built for 32x32 CIFAR images")
    args.model = args.model or ("resnet50" if args.dataset == "imagefolder" else "custom_resnet")
    require(not (args.model == "custom_resnet" and args.dataset == "imagefolder"),
            "--model custom_resnet is built for 32x32 CIFAR images; use --model resnet50 for image folders")
    require(not args.pretrained or args.model == "resnet50", "--pretrained applies to --model resnet50")
    require(not args.torchvision_init or (args.model == "resnet50" and not args.pretrained),
            "--torchvision_init applies to --model resnet50 trained from scratch (not with --pretrained)")


def require(ok, message):
    """Raise ``SettingsError(message)`` unless ``ok``."""
    if not ok:
        raise SettingsError(message)


def check_run(args, recipe, world):
    """Reject what cannot run: a range test under torchrun or with --resume, accumulation with training, a
    batch that does not divide over the processes, a loader that cannot make these batches."""
    require(recipe.batch_size % world == 0, f"--batch_size {recipe.batch_size} must divide over {world} processes")
    require(not (args.find_lr and world > 1), "--find_lr runs in one process: run it without torchrun")
    require(not (args.find_lr and args.resume), "--resume continues a training run; it does not apply to --find_lr")
    accumulated = recipe.batch_size * args.lr_accumulation_steps
    require(not (args.find_lr and args.train and args.lr_accumulation_steps > 1),
            f"--lr_accumulation_steps {args.lr_accumulation_steps} makes the range test find the max LR for batches "
            f"of {accumulated} images, but training steps every --batch_size {recipe.batch_size} images (it does not "
            f"accumulate): drop --lr_accumulation_steps, or run the range test alone (--find_lr without --epochs) "
            f"and train at --batch_size {accumulated} with --max_lr <its suggested_lr.json>")
    require(not (args.amp and args.precision not in (None, "auto")),
            f"--amp means --precision auto; it contradicts --precision {args.precision}: choose one")
    require(not (args.use_albumentation and args.loader == "batched"),
            "--use_albumentation and --loader batched contradict each other: choose one")
    loader = "albumentations" if args.use_albumentation else args.loader
    if recipe.alternating_flip:
        why = "--alternating_flip" if args.alternating_flip else f"--recipe {args.recipe}"
        require(loader != "albumentations", f"{why}: alternating flips come from the batched loader; leave out "
                "--loader albumentations / --use_albumentation (or add --no-alternating_flip)")
        loader = "batched"
    if recipe.model == "speedrun":
        require(loader != "albumentations", "--model speedrun trains from the batched loader (its whitening layer "
                "starts from the training images' patches): leave out --loader albumentations / --use_albumentation")
        loader = "batched"
    if recipe.start_size:
        require(args.dataset == "imagefolder", "--start_size (progressive resizing) applies to image folders; CIFAR "
                "trains at 32 px")
        require(loader != "albumentations", "--start_size: progressive resizing comes from the batched loader; leave "
                "out --loader albumentations / --use_albumentation")
        loader = "batched"
    return loader


def check_output(args, train):
    """The output folders: a previous run or report in them needs --resume or --overwrite; both must be
    writable. Returns ``(output_dir, report_dir, lr_plot, resume)``."""
    output_dir = Path(args.output_dir).expanduser()
    report_dir, lr_plot = output_dir, None
    if args.lr_plot:
        plot = Path(args.lr_plot).expanduser()
        report_dir, lr_plot = (plot, None) if plot.is_dir() or not plot.suffix else (plot.parent, plot)
    resume = None
    if args.resume:
        resume = Path(output_dir / "last.pt" if args.resume is True else args.resume).expanduser()
        require(resume.is_file(), f"--resume: checkpoint {resume} does not exist")
    previous_run = (output_dir / "last.pt").exists() and train
    previous_report = args.find_lr and any((report_dir / name).exists() for name in REPORT_FILES)
    require(not (previous_run or previous_report) or args.resume or args.overwrite,
            f"{'--output_dir ' + str(args.output_dir) if previous_run else str(report_dir)} holds a previous "
            f"{'run (last.pt)' if previous_run else 'range test (suggested_lr.json)'}: pass --resume to continue it, "
            "--overwrite to replace it, or choose another folder")
    for folder in {output_dir, report_dir}:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            probe = folder / f".write_test_{os.getpid()}"
            probe.write_text("")
            probe.unlink()
        except OSError as error:
            raise SettingsError(f"folder {folder} cannot be written: {error.strerror or error}") from None
    return output_dir, report_dir, lr_plot, resume


def validate(parser, args, argv=None):
    """Reject impossible settings with an argparse error (exit code 2) before any work starts; returns the
    run's resolved ``RunSettings``, also kept as ``args.settings`` (the specification's ``build_data(args)``
    reads it)."""
    try:
        args.settings = settings_from(args, sys.argv[1:] if argv is None else argv)
    except SettingsError as error:
        parser.error(str(error))
    return args.settings


def settings_from(args, argv):
    """The resolved ``training_run.RunSettings`` of parsed arguments; raises SettingsError for settings
    that cannot run."""
    from training_run import RunSettings

    world = int(os.environ.get("WORLD_SIZE", 1))
    check_data_and_model(args)
    # --find_lr alone (or with --epochs 1) is the range test only: the typed --epochs decides, not the recipe's
    args.train = not args.find_lr or (args.epochs or 1) > 1
    recipe = resolve_recipe(args)
    for problem in recipe.problems() + command_line.range_test_problems(args):
        raise SettingsError(problem)
    loader = check_run(args, recipe, world)
    if loader == "batched":
        problem = command_line.batched_loader_problem(args.dataset != "imagefolder", recipe, world)
        require(problem is None, problem)
    if isinstance(recipe.max_lr, str):
        require(not args.find_lr, "--find_lr picks the max LR itself; leave out --max_lr")
        recipe = replace(recipe, max_lr=command_line.max_lr_from_report(recipe.max_lr, recipe.batch_size))
    output_dir, args.report_dir, lr_plot, args.resume = check_output(args, args.train)
    return RunSettings(
        recipe=replace(recipe, max_lr=recipe.max_lr or 0.0), dataset=args.dataset, data_dir=args.data_dir,
        num_classes=args.num_classes, max_samples=args.max_samples, holdout=args.holdout, cache_dir=args.cache_dir,
        workers=args.workers, loader=loader, strict_images=args.strict_images, pretrained=args.pretrained,
        torchvision_init=args.torchvision_init, device="cpu" if args.no_cuda else args.device,
        precision=args.precision or "auto", deterministic=args.deterministic, compile=args.compile,
        seed=args.seed if args.resume or args.seed is not None else DEFAULT_SEED, find_lr=args.find_lr,
        train=args.train,
        lr_step_mode=args.lr_step_mode, lr_smooth_f=args.lr_smooth_f, lr_diverge_th=args.lr_diverge_th,
        lr_accumulation_steps=args.lr_accumulation_steps, report_dir=args.report_dir, lr_plot=lr_plot,
        output_dir=output_dir, save_every=args.save_every, resume=args.resume, overwrite=args.overwrite,
        plots=not args.no_plots,
        command=shlex.join(["python", "main.py", *argv]))


def settings_from_argv(argv):
    """The resolved ``RunSettings`` of a main.py command line (a list of strings), for Python callers
    (experiments.py); raises SettingsError instead of exiting."""
    return settings_from(build_parser(raise_errors=True).parse_args(argv), argv)


def build_data(args):
    """The specification's ``main.build_data(args)`` after ``validate(parser, args)``: ``(train_set, val_set,
    class_names)`` (``training_run.build_data``)."""
    from training_run import build_data as build

    return build(args.settings)


def resume_command(argv, args):
    """The command that continues an interrupted training run: the same options, ``--resume`` instead of
    ``--overwrite``, and a finished range test's ``suggested_lr.json`` instead of ``--find_lr``; under
    torchrun, started by ``torchrun --nproc_per_node=<processes per machine>``."""
    kept, skip_value = [], False
    for item in argv:
        if skip_value and not item.startswith("--"):
            skip_value = False
            continue
        skip_value = item in ("--resume", "--checkpoint")
        if item not in ("--find_lr", "--overwrite", "--resume", "--checkpoint"):
            kept.append(item)
    if args.find_lr:
        kept += ["--max_lr", str(args.report_dir / "suggested_lr.json")]
    world = int(os.environ.get("WORLD_SIZE", 1))
    processes = os.environ.get("LOCAL_WORLD_SIZE", world)
    launcher = ["python"] if world == 1 else ["torchrun", f"--nproc_per_node={processes}"]
    return shlex.join([*launcher, "main.py", *kept, "--resume"])


def one_line(error):
    """The message of an error, without the worker traceback a DataLoader wraps around it."""
    text = str(error)
    if "Original Traceback" in text:
        last = [line for line in text.strip().splitlines() if line.strip()][-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return text


def main(argv=None):
    """Parse, resolve, run, and end with one line: a data, checkpoint or divergence error, or how to
    continue an interrupted run. ``argv`` (a list of strings) lets Python code call it."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = validate(parser, args, argv)
    master = int(os.environ.get("RANK", 0)) == 0
    if settings.deterministic:  # cuBLAS reads this when it starts: before torch touches the GPU
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    from training_run import USER_ERRORS, train_run

    try:
        result = train_run(settings)
    except USER_ERRORS as error:
        sys.exit(f"main.py: error: {one_line(error)}")
    if result.interrupted:
        if not master:  # rank 0 says how to continue, once
            sys.exit(1)
        if result.checkpoint is None:
            sys.exit("main.py: stopped before the first epoch finished: there is nothing to resume")
        sys.exit(f"main.py: stopped. Continue with: {resume_command(argv, args)}")
    return result


if __name__ == "__main__":
    main()
