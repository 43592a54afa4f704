"""What the notebook builders share: cell makers, the nbval tag, the "Open in Colab" badge, the Colab setup
cell, and the code every lesson writes alike: its Settings cell's lines (environment variables, SMOKE's
device and temporary folders), its imports cell's device and precision, and the range test and one-cycle
training set-up of S10 and the ImageNet lesson. Each returns source text; the builders put it in cells.

``REPO_URL`` is the one place that names this repository's address; after moving or forking the
repository, run ``python tools/set_repo_url.py https://github.com/<account>/<name>`` to rewrite it here
and in the committed notebooks (badge and setup cell) without re-executing them.
"""
import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

REPO_URL = "https://github.com/your-account/one-cycle"
BRANCH = "main"
md, code = new_markdown_cell, new_code_cell
CHECK_OUTPUT = {"tags": ["nbval-check-output"]}  # nbval compares this cell's output (a tag: the source stays the lesson's)
NOTEBOOK_METADATA = {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                     "language_info": {"name": "python"}}


def write_notebook(cells, path):
    """Write a lesson's ``cells`` to ``path`` as a notebook (sources only; executing it makes the outputs)."""
    nbformat.write(new_notebook(cells=cells, metadata=NOTEBOOK_METADATA), path)


def badge(notebook_name, repo_url=REPO_URL, branch=BRANCH):
    """Markdown for the "Open in Colab" badge of ``notebook_name`` in ``repo_url``."""
    path = repo_url.removeprefix("https://github.com/").removesuffix(".git").strip("/")
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{path}/blob/{branch}/{notebook_name})")


SETUP_TEMPLATE = '''# Colab setup; outside Colab this cell only says so. In Colab it fetches this repository when its
# modules are not importable, changes into it, installs what requirements.txt (the lessons' libraries;
# not the tests' requirements-dev.txt) lists and Colab lacks (never torch or torchvision: Colab's own
# CUDA builds stay), and names the GPU.
REPO_URL = "{repo_url}"  # this repository (README: "Running in Colab")
PLACEHOLDER = "github.com/your-account/"  # REPO_URL before the repository has a public address
import os
import sys


def missing_requirements(path, skip=("torch", "torchvision")):
    """The lines of a requirements file that the running Python does not satisfy, except ``skip``."""
    from importlib.metadata import PackageNotFoundError, version
    from packaging.requirements import Requirement
    missing = []
    with open(path) as file:
        for line in file:
            line = line.split("#")[0].strip()
            requirement = Requirement(line) if line else None
            if requirement is None or requirement.name.lower() in skip:
                continue
            try:
                if requirement.specifier.contains(version(requirement.name), prereleases=True):
                    continue
            except PackageNotFoundError:
                pass
            missing.append(line)
    return missing


def colab_setup():
    """Fetch this repository if its modules are not importable, install what it needs, name the GPU."""
    import importlib.util
    import subprocess
    if importlib.util.find_spec("recipes") is None:
        if PLACEHOLDER in REPO_URL:
            raise RuntimeError(f"this repository has no public address yet: REPO_URL ({{REPO_URL}}) is a "
                               "placeholder. Upload the repository's folder to this runtime (Files pane) and "
                               "open the notebook from inside it, or publish the repository, run "
                               "tools/set_repo_url.py with its address, and set REPO_URL above to it.")
        folder = os.path.abspath(REPO_URL.rstrip("/").split("/")[-1].removesuffix(".git"))
        if not os.path.isdir(folder):
            done = subprocess.run(["git", "clone", "--quiet", REPO_URL, folder], capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"could not fetch {{REPO_URL}}: {{done.stderr.strip()}}\\n"
                                   "Set REPO_URL at the top of this cell to this repository's address.")
        os.chdir(folder)
        sys.path.insert(0, folder)
    missing = missing_requirements("requirements.txt")
    import torch
    import torchvision
    if missing:
        with open("colab-constraints.txt", "w") as file:  # pip may not replace Colab's torch
            file.write(f"torch=={{torch.__version__}}\\ntorchvision=={{torchvision.__version__}}\\n")
        print("installing:", " ".join(missing))
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-c", "colab-constraints.txt", *missing],
                       check=True)
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        print(f"GPU: {{torch.cuda.get_device_name()}} (compute capability {{major}}.{{minor}}: "
              f"{{'bf16' if major >= 8 else 'fp16 + GradScaler'}} autocast)")
    else:
        print({cpu_note!r})


if "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ:
    colab_setup()
else:
    print("not in Colab: nothing to set up")'''


def setup_cell_source(cpu_note, repo_url=REPO_URL):
    """The Colab setup cell; ``cpu_note`` is what it prints on a runtime without a GPU."""
    return SETUP_TEMPLATE.format(repo_url=repo_url, cpu_note=cpu_note)


def is_setup_cell(source):
    """True for the Colab setup cell (any version of it)."""
    return source.startswith("# Colab setup;")


# The Settings cell. Every lesson reads its settings from environment variables of the same names (a SMOKE
# run, SMOKE=1, gets small values, generated data and temporary folders); the names of the recipe's
# settings are the recipe's fields, upper-cased (EPOCHS is recipe.epochs, LR_ITER recipe.lr_iter).
SMOKE_SETTING = 'SMOKE = os.environ.get("SMOKE") == "1"'
DEVICE_SETTING = 'DEVICE = "cpu" if SMOKE else "auto"'
WORKERS_SETTING = "WORKERS = 0 if SMOKE else None  # None: the cores less one (at most 16) DataLoader workers"


def settings_cell(imports, *lines):
    """A lesson's Settings cell: ``import os`` and ``import tempfile`` (it reads the environment and makes
    SMOKE's temporary folders), the lesson's own ``imports``, then its ``lines``."""
    return "\n".join(["import os", "import tempfile", "", imports, "", *lines])


def env_int(name, default, smoke=None, then=""):
    """The line that reads the whole number ``name`` from the environment variable ``name``: ``default``,
    or ``smoke`` in a SMOKE run (Python source, or numbers); ``then``: source appended to the value."""
    value = default if smoke is None else f"{smoke} if SMOKE else {default}"
    return f'{name} = int(os.environ.get("{name}", {value})){then}'


def env_text(name, default=None):
    """The line that reads the text ``name`` from the environment variable ``name`` (``default``: a
    string; None when unset)."""
    return f'{name} = os.environ.get("{name}"' + ("" if default is None else f', "{default}"') + ")"


def recipe_setting(name, smoke):
    """``env_int`` for a setting of the recipe: ``name`` is its field upper-cased, and the recipe's value
    is the default (``smoke`` in a SMOKE run)."""
    return env_int(name, f"recipe.{name.lower()}", smoke)


def smoke_folder(name, folder, comment=None):
    """The line that names an output folder: ``folder``, or a new temporary folder in a SMOKE run."""
    return f'{name} = tempfile.mkdtemp() if SMOKE else "{folder}"' + (f"  # {comment}" if comment else "")


# the lessons' figures: a learner's run writes its own, the committed ones in Data/ came from FIGURES=Data
FIGURES_SETTING = ('FIGURES = tempfile.mkdtemp() if SMOKE else os.environ.get("FIGURES", "runs/figures")'
                   '  # Data: the committed ones')


def shown(*names, sep=" "):
    """``NAME={NAME}`` for each of ``names``, for an f-string that prints the settings by their names."""
    return sep.join(f"{name}={{{name}}}" for name in names)


# The imports cell: the lesson's imports, then the device and precision every later cell uses.
DEVICE_NEEDS = ("import torch", "Precision", "get_device", "describe_machine")


def imports_cell(imports, threads=False):
    """A lesson's imports cell: inline figures, the lesson's ``imports`` (which import what the device lines
    use), then the device (``DEVICE`` from the Settings cell), its precision (``Precision.resolve``) and,
    on CUDA, cuDNN's benchmark mode, printed with the machine; ``threads``: first set torch's CPU threads
    to the Settings cell's ``THREADS``."""
    missing = [name for name in DEVICE_NEEDS if name not in imports]
    if missing:
        raise ValueError(f"the imports cell must import {', '.join(missing)}")
    lines = ["%matplotlib inline", imports, "", "device = get_device(DEVICE)", "precision = Precision.resolve(device)"]
    if threads:
        lines.append("torch.set_num_threads(THREADS)")
    lines += ['torch.backends.cudnn.benchmark = device.type == "cuda"',
              'print(f"device: {device}, precision: {precision}")',
              'print(f"machine: {describe_machine(device)}")']
    return "\n".join(lines)


# The range test and one-cycle training (S10 and the ImageNet lesson; the speedrun's net needs more set-up).
TRAINING_RECIPE = "recipe = replace(recipe, max_lr=MAX_LR, epochs=EPOCHS)  # the recipe this run trains with"


def fresh_model(model):
    """Seed every generator with ``SEED``, then build ``model`` (the source that makes the net) prepared
    for the precision: the range test and the training start from the same weights."""
    return f"seed_everything(SEED)\nmodel = precision.prepare({model})"


def range_test(model):
    """The range test's set-up and call: ``criterion``, a ``fresh_model``, the recipe's optimizer at its
    ``lr_start`` and ``lr_result``, ``find_lr`` over ``LR_ITER`` batches of ``train_loader``."""
    return f"""criterion = build_criterion(recipe)
{fresh_model(model)}
optimizer = build_optimizer(recipe, model.parameters(), lr=recipe.lr_start)
lr_result = find_lr(model, optimizer, criterion, train_loader, device=device, start_lr=recipe.lr_start,
                    end_lr=recipe.lr_end, num_iter=LR_ITER, precision=precision)"""


def one_cycle_training(model):
    """A ``fresh_model`` with the recipe's optimizer and one-cycle schedule, at the recipe's ``max_lr``
    over its ``epochs`` (set from ``MAX_LR`` and ``EPOCHS`` by ``TRAINING_RECIPE``)."""
    return f"""{fresh_model(model)}
optimizer = build_optimizer(recipe, model)
scheduler = build_one_cycle(recipe, optimizer, len(train_loader))"""
