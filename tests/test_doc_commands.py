"""Every command the documentation shows for a model script or compare.py is one it accepts.

test_readme.py runs the README's commands; the pages under docs/ and lab/ show many more (the
reproduction recipes, the deviations, Horovod, TF 2). A flag renamed or a check tightened must not
leave a page whose command fails for the reader who pastes it. Each command found is parsed as the
script parses it, then, for a model script, resolved against its presets and checked (the common
checks and the script's own `validate`): everything that happens before data or a graph.

A command is `python X.py ...` (or `./kit python ...`, `kit-resnext ...` and the other console
scripts) in a code block, on one line or on several joined by a trailing backslash, or in a code
span. A shell variable takes the value its page assigns it (F="--preset paper ..."), or "1" where
the page leaves it to the reader ($s, $MNIST): a number and a path both parse. A flag shown as
optional, [--bc], is given.
"""
import ast
import glob
import io
import os
import re
import shlex
import contextlib

import pytest

from conftest import ROOT
import compare
import Densenet
import ResNet
import ResNeXt
import SE_ResNeXt
from settings import KitError, build_parser, resolve, check_common

MODELS = {"ResNeXt": ResNeXt, "SE_ResNeXt": SE_ResNeXt, "Densenet": Densenet, "ResNet": ResNet}
CONSOLE = {"kit-resnext": "ResNeXt", "kit-se-resnext": "SE_ResNeXt", "kit-densenet": "Densenet",
           "kit-resnet": "ResNet", "kit-compare": "compare"}
PAGES = (["README.md", "lab/README.md"]
         + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
         + [name + ".py" for name in MODELS])  # a model script's docstring opens with its usage
COMMAND = re.compile(r"(?:\bpython3? +(%s)\.py|\b(%s))(?=[\s`]|$)"
                     % ("|".join(list(MODELS) + ["compare"]), "|".join(CONSOLE)))
ASSIGNMENT = re.compile(r"^\s*(?:export +)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
VARIABLE = re.compile(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?")
END = {"|", "||", "&&", ";", ")", "&"}  # what ends a command on its line


def commands(page):
    """[(line number, script, [args])] of the commands shown on `page`."""
    text = io.open(os.path.join(ROOT, page), encoding="utf-8").read()
    fenced = page.endswith(".py")  # a script's docstring: every line is code
    if fenced:
        text = ast.get_docstring(ast.parse(text))
    lines, found, values = text.split("\n"), [], {}
    i = 0
    while i < len(lines):
        start, line = i, lines[i]
        if line.lstrip().startswith("```"):
            fenced, i = not fenced, i + 1
            continue
        while line.endswith("\\") and i + 1 < len(lines):  # a command continued on the next line
            i += 1
            line = line[:-1] + " " + lines[i].strip()
        i += 1
        assigned = ASSIGNMENT.match(line)
        if assigned and not COMMAND.search(line):
            values[assigned.group(1)] = " ".join(shlex.split(assigned.group(2), comments=True))
        for m in COMMAND.finditer(line):
            rest = line[m.end():]
            if line[:m.start()].count("`") % 2:  # inside a code span: the span ends the command
                rest = rest.split("`")[0]
            elif not fenced:  # prose that names a script
                continue
            rest = VARIABLE.sub(lambda v: values.get(v.group(1), "1"), rest)
            words = []
            for w in shlex.split(rest, comments=True):
                if w in END or w.startswith(">") or w.startswith("2>") or w == "...":  # ...: the reader's own flags
                    break
                words.append(w[1:-1] if w.startswith("[") and w.endswith("]") else w)  # [--bc]: shown as optional
            found.append((start + 1, m.group(1) or CONSOLE[m.group(2)], words))
    return found


def accepted(script, args):
    """None if `script` takes `args` up to data and graph, else the message that refuses them."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            if script == "compare":
                compare.build_parser().parse_args(args)
                return None
            module = MODELS[script]
            parser = build_parser(script, module.PRESETS, script)
            hp = resolve(parser.parse_args(args), module.PRESETS, parser)
            check_common(hp, script)
            if getattr(module, "validate", None):
                module.validate(hp)
    except SystemExit:
        return err.getvalue().strip().splitlines()[-1]
    except KitError as e:
        return str(e)
    return None


SHOWN = [(page, n, script, args) for page in PAGES for n, script, args in commands(page)]


def test_the_pages_show_the_commands_this_test_reads():
    """The reader finds them: a change to how pages write commands must not leave this test with none."""
    per_page = {page: sum(1 for p, _, _, _ in SHOWN if p == page) for page in PAGES}
    assert per_page["docs/reproducing.md"] >= 10 and per_page["docs/deviations.md"] >= 10, per_page
    assert per_page["docs/horovod.md"] >= 3 and per_page["README.md"] >= 5, per_page
    assert {script for _, _, script, _ in SHOWN} == set(MODELS) | {"compare"}
    assert all(per_page[name + ".py"] >= 3 for name in MODELS), per_page
    assert ("Densenet.py", 5, "Densenet", ["--preset", "paper", "--bc"]) in SHOWN
    horovod = [args for page, _, _, args in SHOWN if page == "docs/horovod.md" and "runs/one128" in args]
    assert horovod and horovod[0][:2] == ["--preset", "paper"]  # F="..." stood for its flags


@pytest.mark.parametrize("page,line,script,args", SHOWN, ids=["%s:%d" % (p, n) for p, n, _, _ in SHOWN])
def test_every_command_a_page_shows_is_accepted(page, line, script, args):
    assert accepted(script, args) is None, "%s line %d: %s.py %s: %s" % (
        page, line, script, " ".join(args), accepted(script, args))


@pytest.mark.parametrize("args,words", [
    (["--preset", "papers"], "invalid choice: 'papers'"),
    (["--out_dims", "64,128"], "--out_dims takes three positive channel counts"),
    (["--no_such_flag"], "unrecognized arguments: --no_such_flag"),
])
def test_a_command_the_script_refuses_is_reported(args, words):
    assert words in accepted("ResNeXt", args)


def test_a_page_command_is_read_as_the_shell_reads_it(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text(u'```bash\nF="--preset paper --seed 3"\nfor s in 1 2; do\n'
                    u'  ./kit python ResNet.py $F --run_dir runs/r$s \\\n    --threads 1 | tee log  # note\n'
                    u'done\n```\nThen `kit-compare runs/r1 --plot c.png` draws it; python ResNeXt.py --summary.\n')
    monkeypatch.setattr("test_doc_commands.ROOT", str(tmp_path))
    assert commands("page.md") == [
        (4, "ResNet", ["--preset", "paper", "--seed", "3", "--run_dir", "runs/r1", "--threads", "1"]),
        (8, "compare", ["runs/r1", "--plot", "c.png"]),
    ]


ROW = re.compile(r"^\| `([a-z0-9-]+)` \|")  # a row of docs/reproducing.md's tables: | `reference id` | ...


def recipes():
    """[(reference id, script, args)] of the commands docs/reproducing.md's tables give their rows."""
    lines = io.open(os.path.join(ROOT, "docs/reproducing.md"), encoding="utf-8").read().split("\n")
    return [(ROW.match(lines[n - 1]).group(1), script, args) for n, script, args in commands("docs/reproducing.md")
            if ROW.match(lines[n - 1])]


RECIPES = recipes()


def test_the_reproduction_tables_give_a_command_for_most_rows():
    assert len(RECIPES) >= 35 and len({row for row, _, _ in RECIPES}) == len(RECIPES)


@pytest.mark.parametrize("row_id,script,args", RECIPES, ids=[r for r, _, _ in RECIPES])
def test_a_reproduction_command_is_judged_against_its_own_row(row_id, script, args, tmp_path):
    """docs/reproducing.md gives each reference row the command that trains it. The run that command
    makes, finished, must be compared with that very row, under its recipe: a flag missing from the
    command (the architecture of another row) or one too many (a changed recipe) gets another row's
    number, or no verdict, for the reader who followed the page."""
    import json
    from matching import assess, match_reference
    from references import load_references
    from runfolders import load_run
    module = MODELS[script]
    parser = build_parser(script, module.PRESETS, script)
    hp = resolve(parser.parse_args(args), module.PRESETS, parser)
    official = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "mnist": "MNIST"}[hp["dataset"]]
    config = dict(model=script, preset=hp["preset"], dataset=hp["dataset"], dataset_label=official,
                  data_verified=True, hparams=dict(hp), overrides=hp.overrides, epochs_planned=hp["epochs"])
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "metrics.jsonl").write_text(json.dumps(dict(epoch=hp["epochs"], test_acc=0.9)) + "\n")
    run = load_run(str(tmp_path))
    row, reasons, _ = match_reference(run, load_references())
    assert (row or {}).get("id") == row_id and not reasons, (row and row["id"], reasons)
    verdict = assess(run, row, reasons)["verdict"]
    assert not verdict.startswith("not comparable"), verdict
