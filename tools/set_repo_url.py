"""Point the "Open in Colab" badges and the Colab setup cells at this repository's address.

    python tools/set_repo_url.py https://github.com/<account>/<name>

Rewrites ``REPO_URL`` in ``tools/notebook_common.py`` and, in the committed notebooks and the README,
the badge links and the setup cells' ``REPO_URL``, without touching any output (no re-execution).
"""
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import notebook_common  # noqa: E402


def github_path(url):
    match = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)(\.git)?/?", url)
    if not match:
        raise SystemExit(f"{url!r} is not a GitHub repository address (https://github.com/<account>/<name>)")
    return match.group(1)


def main(new_url, root=ROOT):
    root = Path(root)
    old_path, new_path = github_path(notebook_common.REPO_URL), github_path(new_url)
    if old_path == new_path:
        print(f"already {new_url}")
        return

    def replace(text):  # the repository address, and the badge's colab.research.google.com/github/<path>/
        text = text.replace(f"https://github.com/{old_path}", f"https://github.com/{new_path}")
        return text.replace(f"colab.research.google.com/github/{old_path}/", f"colab.research.google.com/github/{new_path}/")

    common = root / "tools" / "notebook_common.py"
    common.write_text(replace(common.read_text()))
    readme = root / "README.md"
    readme.write_text(replace(readme.read_text()))
    notebooks = sorted(path.name for path in root.glob("*.ipynb"))  # the lessons, at the top level
    for name in notebooks:
        notebook = nbformat.read(root / name, as_version=4)
        for cell in notebook.cells:
            cell.source = replace(cell.source)
        nbformat.write(notebook, root / name)
    print(f"REPO_URL: https://github.com/{old_path} -> https://github.com/{new_path} "
          f"(tools/notebook_common.py, README.md, {', '.join(notebooks)})")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
