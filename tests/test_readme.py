"""The README: the learner's part (everything above "## Development") stays short, and every relative
link and image in it points at a file of the repository or a heading of the README."""
import re
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LEARNER_PART_LIMIT = 13_000  # bytes above the "## Development" heading: three lessons, 4 KB each


def without_code(text):
    """The markdown with fenced code blocks and inline code removed (links there are not links)."""
    return re.sub(r"`[^`\n]*`", "", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))


def heading_anchors(text):
    """GitHub's anchors for the headings: lower case, punctuation dropped, spaces as hyphens, "-1", "-2"
    after repeats."""
    anchors, seen = set(), Counter()
    for heading in re.findall(r"^#{1,6} +(.+?) *$", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
        seen[slug] += 1
    return anchors


def relative_targets(text):
    """The targets of the markdown links and images that are not web addresses."""
    targets = re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", without_code(text))
    return [target for target in targets if not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def test_the_learners_part_is_under_the_limit_and_the_development_part_follows():
    text = README.read_text(encoding="utf-8")
    assert re.search(r"^## Development$", text, re.M), 'the README needs a "## Development" section'
    learner = text[:re.search(r"^## Development$", text, re.M).start()]
    size = len(learner.encode("utf-8"))
    assert size < LEARNER_PART_LIMIT, f"{size} bytes above '## Development' (limit {LEARNER_PART_LIMIT:,})"
    assert "make test" in text, "CI runs the README's test command"


def test_every_relative_link_and_image_resolves():
    text = README.read_text(encoding="utf-8")
    anchors = heading_anchors(text)
    targets = relative_targets(text)
    assert any(target.startswith("Data/") for target in targets) and "#results" in targets  # the parser sees them
    broken = []
    for target in targets:
        path, _, anchor = target.partition("#")
        if path and not (ROOT / path).exists():
            broken.append(target)
        elif not path and anchor not in anchors:
            broken.append(target)
    assert not broken, f"README links that lead nowhere: {broken}"


def test_the_link_check_catches_a_missing_file_and_a_missing_heading():
    text = "# A title\n![figure](Data/missing.png) [there](#a-title) [gone](#nowhere) `[code](not/a/link)`\n"
    assert relative_targets(text) == ["Data/missing.png", "#a-title", "#nowhere"]
    assert heading_anchors(text + "## Every option of main.py\n## A title\n") == \
        {"a-title", "every-option-of-mainpy", "a-title-1"}
