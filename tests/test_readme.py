"""The README's shell commands, run exactly as a user types them.

Every command in a ```bash block of README.md is either run here, word for word, or named in
NOT_RUN with the reason; a command that is neither fails `test_every_readme_command_is_run_or_explained`.

A command runs as a subprocess of bash, in a folder that looks like a fresh checkout (links to
this checkout's files and environments, no runs/ and no data/). Only two things are added, both
through the environment:
  KIT_DATA_DIR   a tiny dataset (the synthetic images of fakedata.py) laid out as an earlier
                 verified download leaves it; the checksum and download path itself is tested in
                 test_cifar10.py and test_mnist.py against a local HTTP server;
  KIT_MAX_STEPS  a step limit, so that a 300-epoch command ends after a few steps.
"""
import json
import os
import re
import subprocess

import pytest

import fakedata
from conftest import ROOT

README = os.path.join(ROOT, "README.md")
MAX_STEPS = 1
# The reference environment runs every command; the other passes of the suite (Python 3.6, TF 2.15)
# run the opening command and --eval, the path every user takes, to keep CI within its time.
EVERY_COMMAND = os.environ.get("KIT_ENV") == "tf1"

# README commands this suite does not run: (pattern, why). A pattern matches a whole command.
NOT_RUN = [
    (r"(KIT_ENV=tf2 )?\./kit test", "the command that runs this suite: .ci/run runs it in every environment"),
    (r"docker/run\.sh python ResNeXt\.py --summary", "needs a Docker engine: .ci/docker-e2e runs it as written"),
    (r"docker/run\.sh python ResNeXt\.py", "needs a Docker engine: .ci/docker-e2e trains through docker/run.sh "
                                            "(ResNet-20, 30 steps, resumed, as another user, and stopped by Ctrl-C)"),
    (r"KIT_IMAGE=ngc docker/run\.sh .*", "NVIDIA's base image cannot be had here: .ci/docker-e2e builds on a "
                                          "stand-in without TensorFlow as far as that goes"),
    (r"\./kit bash requirements/horovod\.sh", "builds Horovod for minutes: the first step of .ci/run runs it"),
    (r"\./kit horovodrun -np 4 -H localhost:4 .*", "four training processes on this machine's two cores: "
                                                   "test_horovod.py runs the same command with two"),
    (r"\./kit horovodrun .*host1.*", "needs two machines named host1 and host2"),
    (r".* --run_dir runs/(resnet20|densenet|dn-mnist)\S*( .*)?|.*--data_source \$MNIST.*|for s in .*|done",
     "a full-length reproduction on the user's copy of the real data (its result is in the README)"),
    (r"\./kit python compare\.py runs/\S+.*", "compares the run folders of full-length reproductions"),
]
def readme_commands():
    """The commands of the README's ```bash blocks, comments stripped, continuation lines joined."""
    text = open(README).read()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        block = block.replace("\\\n", " ")
        for line in block.splitlines():
            line = line.split("  #")[0].strip() if not line.lstrip().startswith("#") else ""
            if line:
                commands.append(re.sub(r"\s+", " ", line))
    return commands


def make_checkout(root):
    """`root` made to look like a fresh clone: links to every top-level entry of this checkout (the
    built environments included, so `./kit` finds them), no runs/ and no data/, and a tiny dataset."""
    for name in os.listdir(ROOT):
        if name not in ("runs", "data", ".git") and not name.startswith((".pytest", "__pycache__")):
            os.symlink(os.path.join(ROOT, name), str(root / name))
    data = root / "tiny-data"
    made = fakedata.write_cifar10(str(data), n_train=160, n_test=40, tarballs=False)
    fakedata.write_cifar100(str(data))
    for name, folder in (("cifar10", made["py"]), ("cifar10-bin", made["bin"]),
                         ("cifar100", str(data / "cifar-100-python"))):
        fakedata.mark_verified(folder, name)  # as a verified download leaves it
    return root


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    if not os.environ.get("KIT_ENV"):
        pytest.skip("the README's commands go through ./kit: run the suite as the README says, ./kit test")
    return make_checkout(tmp_path_factory.mktemp("clone"))


def run(checkout, command, timeout=900):
    """Run `command` as written, in `checkout`; returns stdout + stderr after checking exit 0."""
    env = dict(os.environ, KIT_DATA_DIR=str(checkout / "tiny-data"), KIT_MAX_STEPS=str(MAX_STEPS))
    for k in ("KIT_DATA_SOURCE", "PYTHONPATH"):
        env.pop(k, None)
    p = subprocess.run(["bash", "-c", command], cwd=str(checkout), env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout)
    assert p.returncode == 0, "%s\nexit %d\n%s\n%s" % (command, p.returncode, p.stdout[-3000:], p.stderr[-3000:])
    return p.stdout + p.stderr


def latest(checkout, run_dir):
    """The name of the latest checkpoint in `run_dir` (relative to the checkout)."""
    return open(str(checkout / run_dir / "checkpoints" / "latest")).read().strip()


def config(checkout, run_dir):
    return json.load(open(str(checkout / run_dir / "config.json")))


LAST = "step-%08d" % MAX_STEPS


def _first(checkout, out):
    if "resumed from" in out:  # run again in this checkout: the run is at the step KIT_MAX_STEPS ends it at
        assert "where KIT_MAX_STEPS=%d ends this run: nothing to train" % MAX_STEPS in out, out
    else:
        assert "3957696 trainable parameters" in out and "KIT_MAX_STEPS=%d" % MAX_STEPS in out
    assert latest(checkout, "runs/ResNeXt-original-cifar10") == LAST
    c = config(checkout, "runs/ResNeXt-original-cifar10")
    assert c["epochs_planned"] == 300 and c["hparams"]["run_dir"] is None


def _summary(checkout, out):
    assert int(out.rsplit("trainable parameters:", 1)[1].split()[0]) == 3957696


def _paper(checkout, out):
    c = config(checkout, "runs/ResNeXt-paper-cifar10")
    assert c["num_params"] == 34426698 and c["epochs_planned"] == 300
    assert latest(checkout, "runs/ResNeXt-paper-cifar10") == LAST


def _cifar100(checkout, out):
    assert config(checkout, "runs/ResNeXt-original-cifar100")["hparams"]["dataset"] == "cifar100"
    assert latest(checkout, "runs/ResNeXt-original-cifar100") == LAST


def _eval(checkout, out):
    assert "checkpoint runs/ResNeXt-original-cifar10/checkpoints/%s on " % LAST in out
    assert re.search(r"accuracy \d\.\d{4}", out)


def _run_dir(checkout, out):
    assert latest(checkout, "runs/my-run") == LAST


# The opening block and "Using a model script", in README order, each with what it must have done
# (--eval comes after the first command made a checkpoint).
RUN = [
    ("./kit python ResNeXt.py", _first),
    ("./kit python ResNeXt.py --summary", _summary),
    ("./kit python ResNeXt.py --preset paper --epochs 300", _paper),
    ("./kit python ResNeXt.py --dataset cifar100", _cifar100),
    ("./kit python ResNeXt.py --eval", _eval),
    ("./kit python ResNeXt.py --run_dir runs/my-run", _run_dir),
]
TF2 = "KIT_ENV=tf2 ./kit python ResNeXt.py"  # run by test_the_tf2_command, in the tf2 pass


def not_run_reason(command):
    for pattern, reason in NOT_RUN:
        if re.fullmatch(pattern, command):
            return reason
    return None


def test_every_readme_command_is_run_or_explained():
    commands = readme_commands()
    assert commands[:2] == ["./kit python ResNeXt.py", "./kit test"], "the README's opening block changed"
    ran = [c for c, _ in RUN] + [TF2]
    unexplained = [c for c in commands if c not in ran and not_run_reason(c) is None]
    assert not unexplained, "README commands neither run by test_readme.py nor in its NOT_RUN: %s" % unexplained
    # every command the tests claim to run is still in the README, RUN's in their order
    present = [c for c in commands if c in ran]
    assert sorted(set(present)) == sorted(ran) and [c for c in present if c != TF2] == [c for c, _ in RUN]


def test_the_opening_command_then_eval_and_compare(checkout):
    _first(checkout, run(checkout, RUN[0][0]))
    _eval(checkout, run(checkout, "./kit python ResNeXt.py --eval"))
    out = run(checkout, "./kit python compare.py")  # with no run folder: every run under runs/
    assert "ResNeXt-original-cifar10" in out


def test_the_using_a_model_script_block(checkout):
    if not EVERY_COMMAND:
        pytest.skip("runs in the reference environment's pass (./kit test with KIT_ENV=tf1)")
    for command, check in RUN:
        check(checkout, run(checkout, command))
    out = run(checkout, "./kit python compare.py")
    for name in ("ResNeXt-original-cifar10", "ResNeXt-paper-cifar10", "ResNeXt-original-cifar100", "my-run"):
        assert name in out


@pytest.mark.parametrize("script", ["SE_ResNeXt", "Densenet", "ResNet"])
def test_the_first_command_and_eval_for_every_model_script(checkout, script):
    """What the opening command does for ResNeXt.py, each model script does with no flag at all."""
    if not EVERY_COMMAND:
        pytest.skip("runs in the reference environment's pass (./kit test with KIT_ENV=tf1)")
    folder = "runs/%s-original-cifar10" % script
    out = run(checkout, "./kit python %s.py" % script)
    assert latest(checkout, folder) == LAST, out
    assert re.search(r"^epoch: 1/\d+, ", open(str(checkout / folder / "logs.txt")).read(), re.M)
    out = run(checkout, "./kit python %s.py --eval" % script)
    assert "checkpoint %s/checkpoints/%s on " % (folder, LAST) in out


def test_the_tf2_command(tmp_path):
    """`KIT_ENV=tf2 ./kit ...` would build TF 2.15's environment: it runs in the suite's tf2 pass."""
    if os.environ.get("KIT_ENV") != "tf2":
        pytest.skip("KIT_ENV=tf2 commands run in the tf2 pass of the suite (KIT_ENV=tf2 ./kit test)")
    checkout = make_checkout(tmp_path)
    out = run(checkout, TF2)
    assert latest(checkout, "runs/ResNeXt-original-cifar10") == LAST, out
    assert config(checkout, "runs/ResNeXt-original-cifar10")["tensorflow"].startswith("2.")


def readme_table(heading):
    """The rows (lists of cells) of the first table after `heading` in the README."""
    text = open(README).read()
    rows = []
    for line in text[text.index(heading):].splitlines()[1:]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not set(cells[0]) <= set("-: "):
                rows.append(cells)
        elif rows:
            break
    return rows


def test_where_is_names_code_that_exists():
    """Every `name` the "Where is" table puts after a file link is defined in that file."""
    import ast
    rows = readme_table("## Where is")
    assert len(rows) >= 10
    for _, where in rows:
        for path, names in re.findall(r"\[`([\w/.]+\.py)`\]\([\w/.]+\)(?::\s*((?:`\w+`(?:,\s*)?)+))?", where):
            tree = ast.parse(open(os.path.join(ROOT, path)).read())
            defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
            defined |= {t.id for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                        if isinstance(t, ast.Name)}  # module-level tables, e.g. settings.SETTINGS
            for name in re.findall(r"`(\w+)`", names):
                assert name in defined, "%s has no %s (README, Where is)" % (path, name)


def test_the_models_table_gives_the_cards_parameter_totals():
    """The opening table's parameter totals are those the architecture cards read off the built graphs."""
    cards = {}
    folder = os.path.join(ROOT, "docs", "architecture")
    for name in os.listdir(folder):
        if name.endswith(".json"):
            cards[name[:-5]] = json.load(open(os.path.join(folder, name)))["params"]
    want = {"ResNeXt.py": ("ResNeXt-original", "ResNeXt-paper"),
            "SE_ResNeXt.py": ("SE_ResNeXt-original", "SE_ResNeXt-paper"),
            "Densenet.py": ("Densenet-original", "Densenet-paper", "Densenet-paper-bc"),
            "ResNet.py": ("ResNet-original-20", "ResNet-paper-20")}
    rows = {r[0].strip("`"): r for r in readme_table("| script | `--preset original` reproduces")}
    assert set(rows) == set(want)
    for script, names in want.items():
        printed = [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]{4,}", rows[script][-1])]
        assert printed == [cards[n] for n in names], (script, printed)


@pytest.mark.parametrize("script", ["ResNeXt", "SE_ResNeXt", "Densenet", "ResNet"])
def test_model_scripts_open_with_a_short_docstring_that_links_the_details(script):
    """A model script reads as its paper's figure: the details live in docs/deviations.md."""
    import ast
    doc = ast.get_docstring(ast.parse(open(os.path.join(ROOT, script + ".py")).read()))
    assert len(doc.splitlines()) <= 15 and "docs/deviations.md" in doc
    assert "\n### %s.py\n" % script in open(os.path.join(ROOT, "docs", "deviations.md")).read()


def test_pip_install_ships_every_top_level_module():
    """`pip install .`, one of the README's ways to run, installs the flat modules setup.py lists."""
    listed = re.findall(r'"(\w+)"', open(os.path.join(ROOT, "setup.py")).read().split("MODULES =")[1].split("]")[0])
    modules = sorted(f[:-3] for f in os.listdir(ROOT) if f.endswith(".py") and f != "setup.py")
    assert sorted(listed) == modules
