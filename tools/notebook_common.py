"""What the notebook builders share: cell makers, the nbval tag, the "Open in Colab" badge and the Colab setup cell.

``REPO_URL`` is the one place that names this repository's address; after moving or forking the
repository, run ``python tools/set_repo_url.py https://github.com/<account>/<name>`` to rewrite it here
and in the committed notebooks (badge and setup cell) without re-executing them.
"""
from nbformat.v4 import new_code_cell, new_markdown_cell

REPO_URL = "https://github.com/your-account/one-cycle"
BRANCH = "main"
md, code = new_markdown_cell, new_code_cell
CHECK_OUTPUT = {"tags": ["nbval-check-output"]}  # nbval compares this cell's output (a tag: the source stays the lesson's)


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
