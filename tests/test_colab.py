"""The notebooks' "Open in Colab" badge and Colab setup cell, and tools/set_repo_url.py."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")  # absent where only the unit tests run (gpu_check.sh's machine)
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import notebook_common  # noqa: E402

NOTEBOOKS = sorted(path.name for path in ROOT.glob("*.ipynb"))


def setup_cell(name):
    cells = nbformat.read(ROOT / name, as_version=4).cells
    return next(cell for cell in cells if cell.cell_type == "code")


# Put before the cell: no test reaches the network or installs anything. The cell's subprocess.run
# becomes one that prints each pip command ("pip: [...]") instead of running it, runs git only on
# local paths (GIT_ALLOW_PROTOCOL=file in run_cell refuses every network transport too) and refuses
# anything else.
OFFLINE = """
import json as _json, subprocess as _subprocess, sys as _sys
_real_run = _subprocess.run
def _offline_run(command, *args, **kwargs):
    if list(command[:3]) == [_sys.executable, "-m", "pip"]:
        print("pip:", _json.dumps(list(command[3:])))
        return _subprocess.CompletedProcess(command, 0, "", "")
    if command[0] == "git" and not any("://" in str(part) for part in command):
        return _real_run(command, *args, **kwargs)
    raise RuntimeError(f"the test does not run {command}")
_subprocess.run = _offline_run
"""

# Put before the cell (after OFFLINE): the running Python has none of the requirements installed.
NOTHING_INSTALLED = """
import importlib.metadata as _metadata, torch as _torch, torchvision as _torchvision
def _not_installed(name):
    raise _metadata.PackageNotFoundError(name)
_metadata.version = _not_installed
"""


def run_cell(source, cwd, colab, prelude=OFFLINE):
    """Run a setup cell in a fresh Python in ``cwd`` (in Colab or not) after ``prelude``; the cell
    prints its working directory last."""
    env = {key: value for key, value in os.environ.items() if key not in ("COLAB_RELEASE_TAG", "PYTHONPATH")}
    env["GIT_ALLOW_PROTOCOL"] = "file"
    if colab:
        env["COLAB_RELEASE_TAG"] = "test"
    program = prelude + source + "\nprint('cwd', os.getcwd())"
    return subprocess.run([sys.executable, "-c", program], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=120)


def pip_commands(stdout):
    """The pip commands the cell asked for (the offline prelude printed them instead of running them)."""
    return [json.loads(line.removeprefix("pip: ")) for line in stdout.splitlines() if line.startswith("pip: ")]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_badge_and_setup_cell_come_first(name):
    cells = nbformat.read(ROOT / name, as_version=4).cells
    assert cells[0].cell_type == "markdown"
    assert cells[0].source.startswith(notebook_common.badge(name)), "the title cell starts with the Colab badge"
    cell = setup_cell(name)
    assert notebook_common.is_setup_cell(cell.source), "the first code cell is the Colab setup cell"
    assert f'REPO_URL = "{notebook_common.REPO_URL}"' in cell.source
    current = notebook_common.SETUP_TEMPLATE.split("{cpu_note!r}")[0].format(repo_url=notebook_common.REPO_URL)
    assert cell.source.startswith(current), "the setup cell is the current one: tools/sync_markdown.py copies it in"
    assert [o.get("text") for o in cell.outputs] == ["not in Colab: nothing to set up\n"], "run outside Colab"


def test_setup_cell_does_nothing_outside_colab(tmp_path):
    done = run_cell(setup_cell("S10.ipynb").source, tmp_path, colab=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"not in Colab: nothing to set up\ncwd {tmp_path}\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(subprocess.run(["git", "-C", str(ROOT), "rev-parse"], capture_output=True).returncode != 0,
                    reason="the repository is not a git checkout here")
def test_setup_cell_in_colab_fetches_the_repository_and_changes_into_it(tmp_path):
    source = setup_cell("S10.ipynb").source.replace(notebook_common.REPO_URL, str(ROOT))
    done = run_cell(source, tmp_path, colab=True)
    assert done.returncode == 0, done.stderr
    clone = tmp_path / ROOT.name
    assert (clone / "recipes.py").exists() and (clone / "requirements.txt").exists()
    assert done.stdout.splitlines()[-1] == f"cwd {clone}"
    assert "installing" not in done.stdout and not pip_commands(done.stdout), "this environment has every requirement"
    import torch
    expected = "GPU: " if torch.cuda.is_available() else "No GPU in this runtime"
    assert expected in done.stdout
    # run again (Colab "Run all" twice): the clone is reused, not fetched again
    again = run_cell(source, tmp_path, colab=True)
    assert again.returncode == 0 and again.stdout.splitlines()[-1] == f"cwd {clone}"


def test_setup_cell_names_the_constant_when_the_address_is_wrong(tmp_path):
    source = setup_cell("S10.ipynb").source.replace(notebook_common.REPO_URL, str(tmp_path / "no-such-repo"))
    done = run_cell(source, tmp_path, colab=True)
    assert done.returncode != 0
    assert "could not fetch" in done.stderr and "Set REPO_URL at the top of this cell" in done.stderr


def test_missing_requirements_skips_torch_and_what_is_installed(tmp_path):
    namespace = {}
    exec(setup_cell("S10.ipynb").source, namespace)  # outside Colab: defines the helpers, sets nothing up
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# a comment\ntorch>=999  # never reinstalled\ntorchvision>=999\nnumpy>=1.0\n\n"
                            "albumentations>=99\nno-such-package-for-this-test>=1\n")
    assert namespace["missing_requirements"](requirements) == ["albumentations>=99", "no-such-package-for-this-test>=1"]
    assert namespace["missing_requirements"](ROOT / "requirements.txt") == []


def requirement_names(path):
    """The project names a requirements file lists (``-r`` lines and comments left out)."""
    from packaging.requirements import Requirement
    lines = (line.split("#")[0].strip() for line in path.read_text().splitlines())
    return {Requirement(line).name.lower() for line in lines if line and not line.startswith("-")}


def test_requirements_are_split_by_who_needs_them():
    lessons, development = requirement_names(ROOT / "requirements.txt"), requirement_names(ROOT / "requirements-dev.txt")
    assert {"torch", "torchvision", "albumentations", "torch-lr-finder", "torchsummary"} <= lessons
    assert {"nbval", "pytest", "jupyter", "nbconvert"} <= development and not development & lessons
    assert "-r requirements.txt" in (ROOT / "requirements-dev.txt").read_text().splitlines()
    assert "-r requirements-dev.txt" in (ROOT / "Makefile").read_text()


def test_setup_cell_on_a_bare_colab_installs_the_lessons_libraries_only(tmp_path):
    # a runtime where the repository's modules are importable (recipes.py) and no requirement is installed;
    # the cell's pip command is recorded, never run
    shutil.copy(ROOT / "requirements.txt", tmp_path / "requirements.txt")
    (tmp_path / "recipes.py").write_text("")
    done = run_cell(setup_cell("S10.ipynb").source, tmp_path, colab=True, prelude=OFFLINE + NOTHING_INSTALLED)
    assert done.returncode == 0, done.stderr
    [command] = pip_commands(done.stdout)
    assert command[:4] == ["install", "-q", "-c", "colab-constraints.txt"]
    installed = {requirement.split(">")[0].split("<")[0].split("=")[0] for requirement in command[4:]}
    assert installed == requirement_names(ROOT / "requirements.txt") - {"torch", "torchvision"}
    assert not installed & {"nbval", "pytest", "jupyter", "nbconvert"}, "development tools are not for learners"
    import torch
    import torchvision
    assert (tmp_path / "colab-constraints.txt").read_text() == \
        f"torch=={torch.__version__}\ntorchvision=={torchvision.__version__}\n"


def test_set_repo_url_rewrites_badges_and_setup_cells_only(tmp_path):
    for name in (*NOTEBOOKS, "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "tools").mkdir()
    shutil.copy(ROOT / "tools" / "notebook_common.py", tmp_path / "tools" / "notebook_common.py")
    before = {name: nbformat.read(tmp_path / name, as_version=4) for name in NOTEBOOKS}
    done = subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import set_repo_url; "
                           "set_repo_url.main('https://github.com/learner/one-cycle-fork', sys.argv[2])",
                           str(ROOT / "tools"), str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert 'REPO_URL = "https://github.com/learner/one-cycle-fork"' in (tmp_path / "tools" / "notebook_common.py").read_text()
    for name in NOTEBOOKS:
        after = nbformat.read(tmp_path / name, as_version=4)
        assert f"colab.research.google.com/github/learner/one-cycle-fork/blob/main/{name}" in after.cells[0].source
        changed = [i for i, (a, b) in enumerate(zip(before[name].cells, after.cells)) if a != b]
        setup = next(i for i, cell in enumerate(after.cells) if cell.cell_type == "code")
        assert changed == [0, setup]
        assert 'REPO_URL = "https://github.com/learner/one-cycle-fork"' in after.cells[setup].source
    bad = subprocess.run([sys.executable, str(ROOT / "tools" / "set_repo_url.py"), "git@github.com:x/y"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "is not a GitHub repository address" in bad.stderr


def test_setup_cell_says_plainly_when_the_repository_has_no_public_address_yet(tmp_path):
    source = setup_cell("S10.ipynb").source  # as committed: REPO_URL is the placeholder until publishing
    assert "your-account" in notebook_common.REPO_URL, "published: this test's premise is gone, remove it"
    done = run_cell(source, tmp_path, colab=True)
    assert done.returncode != 0 and "this repository has no public address yet" in done.stderr
    assert notebook_common.REPO_URL in done.stderr and "tools/set_repo_url.py" in done.stderr
    assert list(tmp_path.iterdir()) == []  # no clone was tried
