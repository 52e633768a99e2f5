"""docs/audit.md, the audit of the `original` presets: every row names kit code that exists and
quotes deviation text that is where it says; the commits agree with docs/deviations.md and the presets.
With clones of the original repositories (KIT_ORIGINALS=<folder holding ResNeXt-Tensorflow,
SENet-Tensorflow, Densenet-Tensorflow and tf-resnet-cifar10>), every original line is read at
its commit and must hold the code the row quotes."""
import ast
import os
import re
import subprocess

import pytest

from conftest import ROOT

AUDIT = os.path.join(ROOT, "docs", "audit.md")
HEADING = re.compile(r"^## .*?([\w.-]+/[\w.-]+) at ([0-9a-f]{7})$")
ORIGINAL = re.compile(r"^([\w/.-]+):(\d+)$")
KIT_REF = re.compile(r"`([\w/]+\.py):([\w.]+)`")
QUOTE = re.compile(r"([\w/.-]+\.(?:md|py)) \"([^\"]+)\"")
REPOSITORIES = {"taki0112/ResNeXt-Tensorflow", "taki0112/SENet-Tensorflow", "taki0112/Densenet-Tensorflow",
                "chao-ji/tf-resnet-cifar10"}
SCRIPTS = ("ResNeXt.py", "SE_ResNeXt.py", "Densenet.py", "ResNet.py")


def read(path):
    with open(os.path.join(ROOT, path)) as f:
        return f.read()


def audit_rows():
    """(repository, commit, [point, original, code, kit, verdict]) for every table row that
    follows a '## ... owner/name at <commit>' heading."""
    found, where = [], None
    for line in read(AUDIT).splitlines():
        if line.startswith("## "):
            m = HEADING.match(line)
            where = m.groups() if m else None
        elif where and line.startswith("| ") and not line.startswith("| point |"):
            found.append(where + ([c.strip() for c in line.strip()[2:-2].split(" | ")],))
    return found


ROWS = audit_rows()


def names_in(path):
    """Top-level functions, classes and assignments of a kit module, and Class.method names."""
    tree = ast.parse(read(path))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
            if isinstance(node, ast.ClassDef):
                names.update(node.name + "." + f.name for f in node.body if isinstance(f, ast.FunctionDef))
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def squeeze(text):
    return " ".join(text.split())


def test_every_model_has_a_section_at_the_commit_the_readme_and_its_preset_name():
    sections = set((repo, commit) for repo, commit, _ in ROWS)
    assert set(repo for repo, _ in sections) == REPOSITORIES
    assert len(ROWS) >= 100
    readme = read("docs/deviations.md")
    scripts = "".join(read(s) for s in SCRIPTS)
    for repo, commit in sections:
        assert commit in readme and commit in scripts, (repo, commit)


@pytest.mark.parametrize("repo,commit,cells", ROWS, ids=["%s:%s" % (r[0].split("/")[1], r[2][1]) for r in ROWS])
def test_row_points_at_real_kit_code_and_real_deviation_text(repo, commit, cells):
    assert len(cells) == 5, cells
    point, original, code, kit, verdict = cells
    assert ORIGINAL.match(original), original
    assert code.startswith("`") and code.endswith("`"), code
    refs = KIT_REF.findall(kit)
    assert refs, "no kit function named: %s" % kit
    for path, name in refs:
        assert name in names_in(path), "%s has no %s" % (path, name)
    assert verdict.startswith(("same", "deviation")), verdict
    quotes = QUOTE.findall(verdict)
    assert quotes or not verdict.startswith("deviation"), "a deviation must quote the row that covers it"
    for path, text in quotes:
        assert squeeze(text) in squeeze(read(path)), "%s does not say %r" % (path, text)


def _original_file(cache, repo, commit, path):
    root = os.environ["KIT_ORIGINALS"]
    clone = os.path.join(root, repo.split("/")[1])
    git_dir = os.path.join(clone, ".git") if os.path.isdir(os.path.join(clone, ".git")) else clone
    assert os.path.isdir(git_dir), "KIT_ORIGINALS=%s holds no clone of %s" % (root, repo)
    key = (repo, commit, path)
    if key not in cache:
        cache[key] = subprocess.check_output(["git", "--git-dir", git_dir, "show", "%s:%s" % (commit, path)],
                                             universal_newlines=True).splitlines()
    return cache[key]


@pytest.mark.skipif(not os.environ.get("KIT_ORIGINALS"),
                    reason="set KIT_ORIGINALS to a folder with clones of the four original repositories")
def test_every_original_line_holds_the_quoted_code():
    cache, wrong = {}, []
    for repo, commit, cells in ROWS:
        path, line = ORIGINAL.match(cells[1]).groups()
        text = _original_file(cache, repo, commit, path)[int(line) - 1]
        if cells[2].strip("`") not in text:
            wrong.append("%s %s:%s is %r, not %r" % (repo, path, line, text.strip(), cells[2]))
    assert not wrong, "\n".join(wrong)
