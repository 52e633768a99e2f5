"""docs/architecture: the cards, diagrams and index are what cards.py reads off the graphs the model
scripts build today; --summary names them; --graph writes the graph for TensorBoard and netron.

Regenerating every card builds 16 forward graphs (DenseNet-201's is the slowest, about 8 s);
the whole file takes about a minute on two cores. The committed files are the same text on
every runtime (TF 1.15 on Python 3.6 and 3.7, TF 2.15): parameter counts, shapes and the
multiply-adds of the conv and matmul ops do not depend on the runtime, nor do the op names
the block diagrams are drawn from, so this test compares them byte for byte everywhere.
"""
import glob
import io
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT, run_main, summary_params
import cards
from compat import tf
from graph import Graph
from settings import hparams

OUT = os.path.join(ROOT, "docs", "architecture")


def committed(name):
    with io.open(os.path.join(OUT, name), encoding="utf-8") as f:
        return f.read()


@pytest.fixture(scope="module")
def generated():
    return cards.generate()


def test_committed_cards_are_what_the_graphs_give(generated):
    stale = cards.stale(generated)
    assert not stale, "out of date in docs/architecture: %s; run ./kit python cards.py" % ", ".join(stale)
    assert not cards.orphans(generated), "docs/architecture holds files cards.py does not make"


def test_check_names_the_files_of_a_card_that_is_gone(tmp_path, monkeypatch, capsys):
    """cards.py --check passed with the files of a removed or renamed card still in docs/architecture,
    describing a network no script builds; a named card's check leaves the other cards' files alone."""
    made = {"A.md": "a\n", "A.dot": "digraph {}\n", "README.md": "index\n"}
    for name in list(made) + ["A.svg", "Gone.md", "Gone.json", "Gone-block.svg", ".keep"]:
        (tmp_path / name).write_text(u"x")
    monkeypatch.setattr(cards, "OUT_DIR", str(tmp_path))
    monkeypatch.setattr(cards, "generate", lambda names=None, log=None: made)
    monkeypatch.setattr(cards, "stale", lambda files, out_dir: [])  # only the orphans are at stake here
    assert cards.main(["--check"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == ("in docs/architecture but made by no card (one removed or renamed): Gone-block.svg, "
                                 "Gone.json, Gone.md; remove them with git rm\n")
    assert cards.main(["--check", "ResNet-paper-20"]) == 0
    # writing the cards reports them too, and deletes nothing: a file there may be someone's own
    monkeypatch.setattr(cards, "write", lambda files, out_dir: None)
    assert cards.main([]) == 0
    assert capsys.readouterr().err.endswith(": Gone-block.svg, Gone.json, Gone.md; remove them with git rm\n")
    assert sorted(os.listdir(str(tmp_path))) == sorted(list(made) + ["A.svg", "Gone.md", "Gone.json",
                                                                      "Gone-block.svg", ".keep"])


def test_deleting_a_layer_makes_the_cards_stale(monkeypatch):
    """DenseNet-BC without the 1x1 conv of its bottleneck layers: the card test would fail."""
    import Densenet
    monkeypatch.setattr(Densenet, "bottleneck_layer", Densenet.plain_layer)
    stale = cards.stale(cards.generate(["Densenet-paper-bc"]))
    assert {"Densenet-paper-bc.md", "Densenet-paper-bc.json", "Densenet-paper-bc.dot"} <= set(stale)


def test_stage_figures_add_up_and_the_paper_sizes_agree():
    papers = {"ResNeXt-paper": "34.4M", "Densenet-paper": "1.0M", "Densenet-paper-bc": "0.8M",
              "ResNet-paper-20": "0.27M", "ResNet-paper-56": "0.85M", "ResNet-paper-110": "1.7M"}
    with io.open(cards.README, encoding="utf-8") as f:
        readme = f.read()
    anchors = {cards.github_anchor(h) for h in re.findall(r"^#+ (.*)$", readme, re.M)}
    for path in sorted(glob.glob(os.path.join(OUT, "*.json"))):
        card = json.loads(committed(os.path.basename(path)))
        assert sum(s["params"] for s in card["stages"]) == card["params"], path
        assert sum(s["multiply_adds"] for s in card["stages"]) == card["multiply_adds"], path
        for s in card["stages"]:
            if s["runs"]:
                assert sum(r["params"] for r in s["runs"]) == s["params"], (path, s["name"])
                assert sum(r["multiply_adds"] for r in s["runs"]) == s["multiply_adds"], (path, s["name"])
        assert card["readme_anchor"] in anchors
        assert all(d["anchor"] in anchors for d in card["deviations"])
        if card["name"] in papers:
            assert card["paper"]["row"]["params"] == papers[card["name"]]
            assert card["paper"]["params_agree"] is True, card["name"]
            assert card["deviations"] == [], card["name"]
        if card["preset"] == "original" and card["dataset"] == "cifar10":
            assert card["deviations"], card["name"]


@pytest.mark.parametrize("name, paper_net", [
    ("Densenet-original-mnist", "`Densenet.py --preset paper --dataset mnist`"),
    ("SE_ResNeXt-original", "`SE_ResNeXt.py --preset paper` ([card](SE_ResNeXt-paper.md))")])
def test_a_card_without_a_paper_row_names_the_network_looked_up(name, paper_net):
    """The paper column of an original network's card is about the paper's network. Without a reference
    row it said only "none: no row in references.csv for this network (...: run preset paper, ...)" on a
    card of preset original, as if the card's own network had been looked up."""
    text = cards.card_markdown(json.loads(committed(name + ".json")))
    for label in ("parameters", "result"):
        row = [l for l in text.splitlines() if l.startswith("| %s |" % label)]
        assert len(row) == 1 and row[0].split(" | ")[2].startswith("none for the paper's network, %s: " % paper_net), row
    own = cards.card_markdown(json.loads(committed("SE_ResNeXt-paper.json")))
    assert "| none: no reference row for SE-ResNeXt-29 8x64d" in own  # a paper card's network is its own


@pytest.mark.parametrize("name", ["ResNet-original-20", "ResNeXt-original", "Densenet-paper"])
def test_summary_names_the_card_and_its_total_is_the_cards(name):
    import importlib
    _, model, argv, _ = [c for c in cards.CARDS if c[0] == name][0]
    code, out, err = run_main(importlib.import_module(model), argv + ["--summary"])
    assert code == 0, err
    card = json.loads(committed(name + ".json"))
    assert summary_params(out) == card["params"]
    lines = out.splitlines()
    assert lines[-2].startswith("architecture card: ")
    assert lines[-2].endswith(os.path.join("architecture", name + ".md"))
    assert lines[-1].startswith("diagrams: ") and (name + ".svg") in lines[-1] and (name + "-block.svg") in lines[-1]


SMALL_RESNEXT = ["--cardinality", "2", "--depth", "4", "--blocks", "1"]


@pytest.mark.parametrize("model", ["ResNeXt", "SE_ResNeXt"])
def test_literal_formulation_has_the_fused_stage_table(model):
    """Figure 3(a) (--formulation literal: C parallel paths concatenated) is the same layers as 3(c) (fused:
    one wide 1x1 conv, then a grouped 3x3 conv). The table read the C paths as one chain of 2C convs,
    "[1x1, 4; 3x3, 4; 1x1, 4; 3x3, 4; 1x1, 64]", so --summary found no card for the literal network."""
    import netinfo
    tables = {}
    for formulation in ("fused", "literal"):
        _, hp = netinfo.settings(model, SMALL_RESNEXT + ["--formulation", formulation])
        tables[formulation] = netinfo.Net(netinfo.forward_graph(model, hp)).table()
    assert tables["literal"] == tables["fused"]
    assert tables["literal"][1]["runs"][0]["spec"].startswith(u"[1\u00d71, 8; 3\u00d73, 8, C=2; 1\u00d71, 64")


@pytest.mark.parametrize("model", ["ResNeXt", "SE_ResNeXt"])
def test_summary_of_the_literal_formulation_names_the_card(model, tmp_path, monkeypatch):
    """The card, made by cards.py from the fused graph, is the literal network's too. (The committed cards are
    of C=8 networks, whose literal graph takes seconds to build: a card of small settings stands in for them.)"""
    import importlib
    import graphview
    name = model + "-small"
    card, _ = cards.make_card(name, model, SMALL_RESNEXT, "small " + model, cards.read_text(cards.README))
    with io.open(str(tmp_path / (name + ".json")), "w", encoding="utf-8") as f:
        f.write(json.dumps(card, ensure_ascii=False))
    monkeypatch.setattr(graphview, "OUT_DIR", str(tmp_path))
    monkeypatch.setattr(graphview, "CARDS", [(name, model, SMALL_RESNEXT, card["title"])])
    code, out, err = run_main(importlib.import_module(model), SMALL_RESNEXT + ["--summary", "--formulation", "literal"])
    assert code == 0, err
    assert out.splitlines()[-2] == "architecture card: %s" % os.path.join(str(tmp_path), name + ".md")


def test_parallel_paths_are_one_layer_only_where_they_are_alike():
    """Paths that read one tensor with equal convs are one conv C times as wide (the first), then a grouped
    conv (the convs reading each path's own tensor); paths that differ stay a chain, as before."""
    import netinfo

    def spec(kernels):
        graph = tf.Graph()
        with graph.as_default():
            x = tf.placeholder(tf.float32, [None, 8, 8, 4], name="images")
            paths = []
            for i, second in enumerate(kernels):
                with tf.variable_scope("path_%d" % i):
                    y = tf.nn.relu(tf.layers.conv2d(x, 2, 1, use_bias=False, name="conv1"))
                    paths.append(tf.layers.conv2d(y, 2, second, padding="same", use_bias=False, name="conv2"))
            out = tf.concat(paths, axis=3)
            path = netinfo.data_path(graph, out)
            ops = [op for op in graph.get_operations() if op in path]
            return "; ".join(netinfo.fmt_item(i) for i in netinfo.items(ops, path))
    assert spec([3, 3, 3]) == u"1\u00d71, 6; 3\u00d73, 6, C=3"
    assert spec([3, 5]) == u"1\u00d71, 2; 3\u00d73, 2; 1\u00d71, 2; 5\u00d75, 2"


def test_card_multiply_adds_are_benchs_forward_count():
    import ResNet
    from flops import count_flops
    hp = hparams("ResNet", ResNet.PRESETS, ResNet.validate, [])
    g = Graph(ResNet.Build_ResNet, hp, 1)
    card = json.loads(committed("ResNet-original-20.json"))
    assert count_flops(g.graph)[0] == 2 * card["multiply_adds"] == 2 * 40551040
    assert g.num_params == card["params"] == 269370


def test_summary_of_a_network_without_a_card_says_so():
    import ResNet
    code, out, _ = run_main(ResNet, ["--summary", "--num_layers", "8"])
    assert code == 0
    assert out.splitlines()[-1] == "architecture card: none for these settings (cards of every preset: %s)" % \
        os.path.relpath(os.path.join(OUT, "README.md"))


def test_svg_renders_from_the_dot_source(generated):
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is not installed (apt-get install graphviz): the committed SVGs are checked "
                    "against the sha256 of their DOT source only")
    svg = cards.render_svg(generated["ResNeXt-paper-block.dot"], "ResNeXt-paper-block.dot")
    assert svg.startswith("<?xml") and "<svg" in svg
    assert cards.svg_source_hash(svg) == cards.sha256_text(generated["ResNeXt-paper-block.dot"])
    for text in ("split_layer_2_0_conv2", "conv 3×3, 1024, C=8, /2", "shortcut_2_0_conv1", "16×16×512"):
        assert text in svg
    svg = cards.render_svg(generated["ResNeXt-paper.dot"], "ResNeXt-paper.dot")
    for text in ("residual_layer_3: 26,247,168 params", "block_1 ... block_2 (×2)", "8×8×1024"):
        assert text in svg


def _events_graph(folder):
    graph_def = None
    for path in glob.glob(os.path.join(folder, "events.out.tfevents.*")):
        for event in tf.train.summary_iterator(path):
            if event.graph_def:
                graph_def = tf.GraphDef()
                graph_def.ParseFromString(event.graph_def)
    return graph_def


def test_graph_flag_writes_tensorboard_and_pbtxt(tmp_path):
    from google.protobuf import text_format
    import ResNeXt
    small = ["--cardinality", "2", "--depth", "4", "--blocks", "1", "--stem_dim", "8", "--out_dims", "8,16,32"]
    code, out, err = run_main(ResNeXt, small + ["--run_dir", str(tmp_path / "run"), "--graph"])
    assert code == 0, err
    folder = str(tmp_path / "run" / "graph")
    assert "wrote the graph to %s" % folder in out and "trainable parameters" in out
    assert not os.path.exists(str(tmp_path / "run" / "checkpoints"))  # nothing trained
    pbtxt = tf.GraphDef()
    with io.open(os.path.join(folder, "graph.pbtxt"), encoding="utf-8") as f:
        text_format.Merge(f.read(), pbtxt)
    real = {n.name for n in pbtxt.node}
    assert {"images", "split_layer_1_0_conv1/kernel", "residual_layer_1/block_0/split_layer_1_0_conv1/Conv2D"} <= real
    shown = _events_graph(folder)
    names = {n.name for n in shown.node}
    assert len(names) == len(real)
    assert "residual_layer_1/block_0/split_layer_1_0_conv1/kernel" in names
    assert "split_layer_1_0_conv1/kernel" not in names
    tops = {n.split("/")[0] for n in names}
    assert {"first_layer", "residual_layer_1", "residual_layer_2", "residual_layer_3", "loss", "metrics",
            "gradients"} <= tops and len(tops) <= 20, sorted(tops)
    with tf.Graph().as_default():
        tf.import_graph_def(shown, name="")  # every input still names a node

    code, out, err = run_main(ResNeXt, small + ["--graph", str(tmp_path / "elsewhere")])
    assert code == 0 and os.path.exists(str(tmp_path / "elsewhere" / "graph.pbtxt")), err


def _schedule_nodes(graph_def):
    """The learning_rate scope's nodes, by name: the decay boundaries are constants there."""
    return dict((n.name, n) for n in graph_def.node if n.name.startswith("learning_rate/"))


@pytest.mark.parametrize("argv, steps_per_epoch", [([], 391),  # 50,000 images in batches of 128
                                                   (["--train_subset", "1000", "--batch_size", "100"], 10)])
def test_graph_flag_writes_the_schedule_a_training_run_builds(tmp_path, argv, steps_per_epoch):
    """--lr_decay_epochs are turned into steps with the training set's steps per epoch; --graph built the
    graph with 1, so TensorBoard and netron showed ResNeXt's rate decaying after step 148 instead of 58,258."""
    from google.protobuf import text_format
    import ResNeXt
    small = ["--cardinality", "2", "--depth", "4", "--blocks", "1", "--stem_dim", "8", "--out_dims", "8,16,32"]
    code, out, err = run_main(ResNeXt, small + argv + ["--graph", str(tmp_path)])
    assert code == 0, err
    written = tf.GraphDef()
    with io.open(str(tmp_path / "graph.pbtxt"), encoding="utf-8") as f:
        text_format.Merge(f.read(), written)
    trained = Graph(ResNeXt.Build_ResNext, hparams("ResNeXt", ResNeXt.PRESETS, None, small + argv), steps_per_epoch)
    assert _schedule_nodes(written) == _schedule_nodes(trained.graph.as_graph_def())


def test_bare_graph_flag_writes_into_the_default_run_folder(tmp_path, monkeypatch):
    """`--graph` alone, no --run_dir: the graph goes to runs/<model>-<preset>-<dataset>/graph."""
    import ResNeXt
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(ResNeXt, ["--cardinality", "2", "--depth", "4", "--blocks", "1", "--stem_dim", "8",
                                        "--out_dims", "8,16,32", "--graph"])
    assert code == 0, err
    assert os.path.exists(str(tmp_path / "runs" / "ResNeXt-original-cifar10" / "graph" / "graph.pbtxt"))


def test_graph_flag_leaves_variables_that_sit_with_their_layer(tmp_path):
    """ResNet's variables are in its layers' scopes already (init_conv/BatchNorm/gamma): they stay."""
    import ResNet
    code, out, err = run_main(ResNet, ["--preset", "paper", "--num_layers", "8", "--graph", str(tmp_path)])
    assert code == 0, err
    names = {n.name for n in _events_graph(str(tmp_path)).node}
    assert {"init_conv/BatchNorm/gamma", "block1/unit_1/conv1/kernel", "logits/kernel"} <= names
    assert not [n for n in names if n.startswith("/") or "//" in n]
    assert {n.split("/")[0] for n in names} >= {"init_conv", "block1", "block2", "block3", "logits"}


@pytest.mark.parametrize("prefix, command", [("/src/kit/.venv-tf1", "./kit tensorboard"),
                                             ("/src/kit/.venv-tf2", "KIT_ENV=tf2 ./kit tensorboard"),
                                             ("/usr", "tensorboard")])
def test_graph_flag_names_the_tensorboard_command_of_its_environment(tmp_path, monkeypatch, prefix, command):
    """Under ./kit TensorBoard is installed in .venv-<KIT_ENV>, not on PATH: the bare `tensorboard --logdir`
    the line gave failed there with 'command not found'."""
    import ResNet
    monkeypatch.setattr(sys, "prefix", prefix)
    code, out, err = run_main(ResNet, ["--num_layers", "8", "--graph", str(tmp_path)])
    assert code == 0, err
    assert "events for `%s --logdir %s`" % (command, tmp_path) in out, out


def test_graph_flag_quotes_the_folder_in_the_tensorboard_command(tmp_path, monkeypatch):
    """`./kit tensorboard --logdir dir with space` could not be pasted: the shell split the folder in three."""
    import shlex
    import ResNet
    monkeypatch.setattr(sys, "prefix", "/src/kit/.venv-tf1")
    folder = str(tmp_path / "dir with space")
    code, out, err = run_main(ResNet, ["--num_layers", "8", "--graph", folder])
    assert code == 0, err
    assert "events for `./kit tensorboard --logdir '%s'`" % folder in out, out
    command = out.split("events for `")[1].split("`")[0]
    assert shlex.split(command) == ["./kit", "tensorboard", "--logdir", folder]


def test_graph_flag_to_a_folder_it_cannot_make_is_one_line(tmp_path):
    import ResNet
    blocker = tmp_path / "a_file"
    blocker.write_text(u"not a folder")
    code, out, err = run_main(ResNet, ["--num_layers", "8", "--graph", str(blocker / "graph")])
    assert code == 2
    assert err.startswith("error: cannot write the graph to %s" % (blocker / "graph")) and err.count("\n") == 1, err


@pytest.mark.parametrize("argv", [[], ["--help"]])
def test_netinfo_run_as_a_command_says_which_commands_to_run(argv):
    """netinfo.py is read by cards.py and --summary; run directly it printed nothing and exited 0."""
    p = subprocess.run([sys.executable, "netinfo.py"] + argv, cwd=ROOT, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True)
    assert (p.returncode, p.stdout) == (2, "")
    assert p.stderr == ("netinfo.py is a library, not a command: run python ResNeXt.py --summary (or another model "
                        "script) for one network's card, or python cards.py to write docs/architecture/\n")
