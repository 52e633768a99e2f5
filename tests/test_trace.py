"""The loop a learner reads, and the path from `python ResNeXt.py` to its first training step.

trainer.train is the TF1 idiom top to bottom: it must stay on one screen and at most three
blocks deep (`with` session, `for` epoch, `for` batch). bench/trace.py counts the kit's functions
that run before the first training `sess.run`; the bound below is today's count in the reference
environment (TF 1.15), so that a change that lengthens the path has to say so here (and in
BENCHMARKS.md).
"""
import ast
import inspect
import os
import re
import subprocess
import sys
import textwrap

import pytest

import trainer
from conftest import ROOT

FUNCTIONS_BEFORE_FIRST_STEP = 62  # bench/trace.py, `python ResNeXt.py`; 69 in the single-file trainer.py it replaced


def depth(node, level=0):
    """How many compound statements (with, for, while, if, try) nest inside `node`'s body."""
    blocks = (ast.With, ast.For, ast.While, ast.If, ast.Try)
    deepest = level
    for child in ast.iter_child_nodes(node):
        deepest = max(deepest, depth(child, level + 1 if isinstance(child, blocks) else level))
    return deepest


def test_the_loop_is_one_screen_and_three_blocks_deep():
    source = textwrap.dedent(inspect.getsource(trainer.train))
    fn = ast.parse(source).body[0]
    body = fn.body[1:] if isinstance(fn.body[0], ast.Expr) else fn.body  # without the docstring
    lines = source.splitlines()[body[0].lineno - 1:]
    assert len(lines) <= 40, "\n".join(lines)
    assert max(depth(stmt, 1 if isinstance(stmt, (ast.With, ast.For, ast.If)) else 0) for stmt in body) <= 3
    text = "\n".join(lines)
    for idiom in ("tf.ConfigProto(allow_soft_placement=True", "tf.Session(", "sess.run(g.init)", "for epoch in",
                  "g.training: True", "g.train_op", "evaluate("):
        assert idiom in text, idiom


def test_the_depth_count_sees_a_fourth_block():
    fn = ast.parse("def f():\n    with a:\n        for x in y:\n            for z in x:\n                if z:\n"
                   "                    pass\n").body[0]
    assert depth(fn.body[0], 1) == 4


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    import fakedata
    root = tmp_path_factory.mktemp("data")
    made = fakedata.write_cifar10(str(root), n_train=40, n_test=20, tarballs=False)
    fakedata.mark_verified(made["py"], "cifar10")  # as a verified download leaves it
    return str(root)


def test_the_path_to_the_first_step(tiny_data):
    env = dict(os.environ, KIT_DATA_DIR=tiny_data)
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "trace.py")], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True).stdout
    m = re.search(r"(\d+) files, (\d+) functions, (\d+) distinct lines", out)
    assert m, out
    rows = dict(re.findall(r"^\| (\S+\.py) \| \d+: (.*) \|$", out, re.M))
    assert rows["trainer.py"] == "main, train", out
    assert "Build_ResNext" in rows["ResNeXt.py"] and "sess" not in rows["ResNeXt.py"]
    # compat.py's own functions differ per runtime (TF 2 checks its version on the way): not held here
    shim = len(rows["compat.py"].split(", ")) if "compat.py" in rows else 0
    assert int(m.group(2)) - shim <= FUNCTIONS_BEFORE_FIRST_STEP, out
    assert int(m.group(2)) == sum(len(v.split(", ")) for v in rows.values())


@pytest.mark.parametrize("script", ["NoSuchModel.py", "README.md", "docs"])
def test_a_script_that_is_not_one_is_refused_in_one_line(script):
    # runpy raised FileNotFoundError, SyntaxError or IsADirectoryError, with its traceback
    out = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "trace.py"), script], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == "error: %s is not a Python script of %s: name a model script, e.g. ResNeXt.py or " \
                         "Densenet.py\n" % (script, ROOT)
