"""Architecture cards and diagrams of every model and preset, read from the graphs the scripts build.

    ./kit python cards.py                  # (re)write docs/architecture/
    ./kit python cards.py --check          # compare with docs/architecture/; exit 1 naming stale files
    ./kit python cards.py ResNet-paper-20  # only these cards (the index is written with all of them)

For every entry of CARDS this builds the model as `trainer.Graph` does (placeholders and the
model script's build function; no loss or optimizer, which add no trainable variables) and
writes, under docs/architecture/:

  NAME.md, NAME.json   the card: a stage table in the shape of Table 1 of the ResNeXt paper
                       (stage, output size H x W x C, block specification, parameters,
                       multiply-adds), the paper's figures beside the measured ones
                       (references.csv), and each deviation from the paper linked to its row
                       in the "Presets and deviations" tables of docs/deviations.md;
  NAME.dot, NAME.svg   the network: stages, and runs of equal blocks, with the output shape on
                       every edge;
  NAME-block.dot/.svg  one block (the first that downsamples), drawn from the name scopes of its
                       ops, with the tensor shapes on the edges;
  README.md            the index.

Everything is read off the graph. Stages are the tensors the model reports to `--summary`
(ops.report) and the name scopes they are built in; blocks are the name scopes block_i
(ResNeXt, SE-ResNeXt), unit_i (ResNet) and bottleN_i (DenseNet) inside a stage. Only ops on
the data path count: computed from the images and needed for the logits (no batch-norm
moving-average updates, no dead ops). A stage's parameters are the trainable variables its ops
read; its multiply-adds those of its convolutions and fully connected layers for one image,
counted by flops.py as bench/bench.py counts them.

The DOT text is written here, without a Python package for Graphviz: the tests regenerate it
under `./kit test`, whose environments hold only the training requirements, and text written
in a fixed order is the same on every runtime. Graphviz's `dot` program (Debian: `apt-get
install graphviz`) only renders it to SVG; without it the SVGs are left as they are, and
each SVG records the sha256 of the DOT text it was rendered from, so a stale one is found.
"""
from __future__ import division, print_function

import argparse
import hashlib
import importlib
import io
import json
import os
import re
import shutil
import subprocess
import sys

from compat import tf
from flops import op_flops
import compare
import ops as kit_ops
import trainer

ROOT = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(ROOT, "docs", "architecture")
README = os.path.join(ROOT, "docs", "deviations.md")  # the deviation tables the cards link to
README_LINK = "../deviations.md"  # that page as a card links it

# (file name, model script, flags, title). The flags are what a user types after the script.
CARDS = [
    ("ResNeXt-original", "ResNeXt", [], "ResNeXt as taki0112/ResNeXt-Tensorflow builds it"),
    ("ResNeXt-paper", "ResNeXt", ["--preset", "paper"], "ResNeXt-29 8x64d (Xie et al. 2017)"),
    ("SE_ResNeXt-original", "SE_ResNeXt", [], "SE-ResNeXt as taki0112/SENet-Tensorflow builds it"),
    ("SE_ResNeXt-paper", "SE_ResNeXt", ["--preset", "paper"], "SE-ResNeXt-29 8x64d, r = 16 (Hu et al.)"),
    ("Densenet-original", "Densenet", [], "DenseNet as Densenet-Tensorflow's Densenet_Cifar10.py builds it"),
    ("Densenet-original-mnist", "Densenet", ["--dataset", "mnist"],
     "DenseNet as Densenet-Tensorflow's Densenet_MNIST.py builds it"),
    ("Densenet-paper", "Densenet", ["--preset", "paper"], "DenseNet (L=40, k=12) (Huang et al. 2017)"),
    ("Densenet-paper-bc", "Densenet", ["--preset", "paper", "--bc"], "DenseNet-BC (L=100, k=12) (Huang et al. 2017)"),
    ("ResNet-original-20", "ResNet", [], "Pre-activation ResNet-20 as chao-ji/tf-resnet-cifar10 builds it"),
    ("ResNet-original-56", "ResNet", ["--num_layers", "56"],
     "Pre-activation ResNet-56 as chao-ji/tf-resnet-cifar10 builds it"),
    ("ResNet-original-110", "ResNet", ["--num_layers", "110"],
     "Pre-activation ResNet-110 as chao-ji/tf-resnet-cifar10 builds it"),
    ("ResNet-original-plain-20", "ResNet", ["--shortcut_connections", "false"],
     "Plain-20 (no shortcuts) as chao-ji/tf-resnet-cifar10 builds it"),
    ("ResNet-paper-20", "ResNet", ["--preset", "paper"], "ResNet-20 (He et al. 2015)"),
    ("ResNet-paper-56", "ResNet", ["--preset", "paper", "--num_layers", "56"], "ResNet-56 (He et al. 2015)"),
    ("ResNet-paper-110", "ResNet", ["--preset", "paper", "--num_layers", "110"], "ResNet-110 (He et al. 2015)"),
    ("ResNet-paper-plain-20", "ResNet", ["--preset", "paper", "--shortcut_connections", "false"],
     "Plain-20 (He et al. 2015, Figure 6)"),
]

BUILD_FN = {"ResNeXt": "Build_ResNext", "SE_ResNeXt": "Build_SEnet", "Densenet": "Dense_net", "ResNet": "Build_ResNet"}

# A name scope directly inside a stage's is a block when it is named so (see the model scripts).
BLOCK_SCOPE = re.compile(r"^(block|unit|bottleN)_\d+$")
SHAPE_OPS = ("Shape", "ShapeN", "Size", "Rank")  # read a tensor's shape, not its values
TIMES = u"\u00d7"
DATASETS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "mnist": "MNIST"}


class CardError(Exception):
    """A card cannot be made (README table or flags out of step): one line, exit 2."""


# ----------------------------------------------------------------------------- the graph

def settings(model, argv):
    """(module, checked settings) of `model` for the flags `argv`, as its script would run."""
    module = importlib.import_module(model)
    hp = trainer.hparams(model, module.PRESETS, module.add_flags, module.validate, list(argv))
    return module, hp


def forward_graph(model, hp):
    """What trainer.Graph builds up to the logits: its placeholders, global step and the model."""
    build_fn = getattr(importlib.import_module(model), BUILD_FN[model])
    shape, num_classes = trainer.input_shape(hp["dataset"])
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(hp["seed"])
        images = tf.placeholder(tf.float32, [None] + list(shape), name="images")
        tf.placeholder(tf.int64, [None], name="labels")
        training = tf.placeholder(tf.bool, [], name="training")
        tf.train.get_or_create_global_step()
        build_fn(images, training, hp, num_classes)
    return graph


def _shape(tensor):
    """Static shape without the batch dimension."""
    return tensor.get_shape().as_list()[1:]


def data_path(graph, logits):
    """Ops computed from the images that the logits depend on (shape reads cut the path)."""
    needed, todo = set(), [logits.op]
    while todo:
        op = todo.pop()
        if op not in needed:
            needed.add(op)
            todo.extend(t.op for t in op.inputs)
    path, todo = set(), [graph.get_operation_by_name("images")]
    while todo:
        for t in todo.pop().outputs:
            for c in t.consumers():
                if c in needed and c not in path and c.type not in SHAPE_OPS:
                    path.add(c)
                    todo.append(c)
    return path


def op_item(op, path):
    """What a row of Table 1 says about one op of the data path, as a tuple; None for the rest."""
    t = op.type
    if t == "Conv2D":
        k = op.inputs[1].get_shape().as_list()
        return ("conv", k[0], k[1], k[3], op.get_attr("strides")[1], 1)
    if t == "MatMul":
        return ("fc", op.outputs[0].get_shape().as_list()[-1])
    if t in ("AvgPool", "MaxPool"):
        return ("avg pool" if t == "AvgPool" else "max pool", op.get_attr("ksize")[1], op.get_attr("strides")[1])
    if t == "Mean" and op.inputs[0].get_shape().ndims == 4:
        return ("global avg pool",)
    if t == "Pad":
        return ("zero-pad", _shape(op.outputs[0])[-1])
    if t == "StridedSlice" and op.inputs[0].get_shape().ndims == 4 and op.outputs[0].get_shape().ndims == 4:
        step = _shape(op.inputs[0])[0] // max(_shape(op.outputs[0])[0], 1)
        return ("subsample", step) if step > 1 else None
    if t == "Sigmoid":
        return ("sigmoid",)
    if t in ("Add", "AddV2") and all(x.op in path for x in op.inputs):
        return ("add",)
    return None


def items(ops, path):
    """The items of `ops` (in graph order); the convs of one name scope are one grouped conv."""
    out, scopes = [], []
    for op in ops:
        item = op_item(op, path)
        if item is None:
            continue
        scope = op.name.rsplit("/", 1)[0]
        if item[0] == "conv" and out and out[-1][0] == "conv" and scopes[-1] == scope:
            last = out[-1]
            out[-1] = last[:3] + (last[3] + item[3], last[4], last[5] + 1)
            continue
        out.append(item)
        scopes.append(scope)
    return out


def fmt_item(item):
    kind = item[0]
    if kind == "conv":
        _, kh, kw, width, stride, groups = item
        text = "%d%s%d, %d" % (kh, TIMES, kw, width)
        if groups > 1:
            text += ", C=%d" % groups
        return text + (", /%d" % stride if stride > 1 else "")
    if kind == "fc":
        return "fc, %d" % item[1]
    if kind in ("avg pool", "max pool"):
        return "%s %d%s%d, /%d" % (kind, item[1], TIMES, item[1], item[2])
    if kind == "zero-pad":
        return "zero-pad to %d" % item[1]
    if kind == "subsample":
        return "subsample /%d" % item[1]
    return kind


def fmt_shape(shape):
    return TIMES.join(str(d) for d in shape)


def _ancestors(tensor, inside):
    seen, todo = set(), [tensor.op]
    while todo:
        op = todo.pop()
        if op in inside and op not in seen:
            seen.add(op)
            todo.extend(t.op for t in op.inputs)
    return seen


def block_layout(ops, path):
    """(main items, shortcut items or None) of one block.

    The block's last addition of two data-path tensors is its residual addition; the ops
    only one of its inputs depends on form a side, and the side with fewer convolutions is
    the shortcut ([] for the identity). No addition: a plain block, shortcut None.
    """
    adds = [op for op in ops if op_item(op, path) == ("add",)]
    if not adds:
        return items(ops, path), None
    add, inside = adds[-1], set(ops)
    a, b = (_ancestors(t, inside) for t in add.inputs[:2])
    sides = [a - b, b - a]
    convs = [sum(op.type == "Conv2D" for op in side) for side in sides]
    shortcut = sides[1] if convs[1] <= convs[0] else sides[0]
    main = [op for op in ops if op not in shortcut and op is not add]
    return items(main, path), items([op for op in ops if op in shortcut], path)


def layout_text(layout):
    main, shortcut = layout
    text = "[%s]" % "; ".join(fmt_item(i) for i in main)
    if shortcut is not None:
        text += " + " + ("[%s]" % "; ".join(fmt_item(i) for i in shortcut) if shortcut else "identity")
    return text


class Net(object):
    """Stages, blocks, parameters and multiply-adds of a built graph, read from its ops."""

    def __init__(self, graph):
        reported = graph.get_collection(kit_ops.STAGES)
        self.stage_names = [name for name, _ in reported]
        self.outputs = dict((name, _shape(t)) for name, t in reported)
        self.input = _shape(graph.get_operation_by_name("images").outputs[0])
        self.order = dict((op, i) for i, op in enumerate(graph.get_operations()))
        self.path = data_path(graph, reported[-1][1])
        self.bounds = [self.order[t.op] for _, t in reported]
        self._group()
        self.macs = {}   # (stage, block or None) -> multiply-adds of its ops
        for op in self.path:
            key = (self.stage_of[op], self.block_of.get(op))
            self.macs[key] = self.macs.get(key, 0) + op_flops(op) // 2
        self.params = {}  # (stage, block or None) -> trainable parameters its ops read
        trainable = graph.get_collection(tf.GraphKeys.TRAINABLE_VARIABLES)
        for v in trainable:
            user = self._first_user(v.op)
            key = (self.stage_of[user], self.block_of.get(user)) if user is not None else (self._stage(v.op), None)
            self.params[key] = self.params.get(key, 0) + kit_ops.count_params([v])
        names = sorted("%s %s" % (v.op.name, v.get_shape().as_list())
                       for v in graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES))
        self.variables = dict(count=len(names), trainable=len(trainable),
                              sha256=hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest())

    def _group(self):
        """stage_of, block_of, and the path ops of each stage and block in graph order."""
        self.stage_of, self.block_of = {}, {}
        self.ops = dict((s, []) for s in self.stage_names)
        self.blocks = dict((s, []) for s in self.stage_names)  # block names in graph order
        self.block_ops = {}                                      # (stage, block) -> ops
        for op in sorted(self.path, key=self.order.get):
            stage = self.stage_of[op] = self._stage(op)
            self.ops[stage].append(op)
            parts = op.name.split("/")
            if parts[0] == stage and len(parts) >= 3 and BLOCK_SCOPE.match(parts[1]):
                block = self.block_of[op] = parts[1]
                if (stage, block) not in self.block_ops:
                    self.blocks[stage].append(block)
                    self.block_ops[(stage, block)] = []
                self.block_ops[(stage, block)].append(op)

    def _stage(self, op):
        """The stage whose name scope holds `op`, else the first one reported after it was made."""
        head = op.name.split("/", 1)[0]
        if head in self.outputs:
            return head
        i = self.order[op]
        for name, bound in zip(self.stage_names, self.bounds):
            if i <= bound:
                return name
        return self.stage_names[-1]

    def _first_user(self, var_op):
        """The first data-path op that reads a variable (through its read and cond switches)."""
        seen, todo = set(), [var_op]
        while todo:
            op = todo.pop(0)
            for t in op.outputs:
                for c in t.consumers():
                    if c in self.path:
                        return c
                    if c not in seen:
                        seen.add(c)
                        todo.append(c)
        return None

    def total(self, table, stage=None, block=None):
        """Sum of `table` (params or macs) over a stage, a block, or everything."""
        return sum(v for (s, b), v in table.items()
                   if (stage is None or s == stage) and (block is None or b == block))

    def layout(self, stage, block):
        return block_layout(self.block_ops[(stage, block)], self.path)

    def block_output(self, stage, block):
        """Shape of the last tensor a block makes that ops outside it read."""
        inside = set(self.block_ops[(stage, block)])
        for op in reversed(self.block_ops[(stage, block)]):
            for t in op.outputs:
                if any(c in self.path and c not in inside for c in t.consumers()):
                    return _shape(t)
        return self.outputs[stage]

    def runs(self, stage):
        """Consecutive blocks with the same layout, as lists of block names."""
        runs = []
        for block in self.blocks[stage]:
            if runs and self.layout(stage, runs[-1][0]) == self.layout(stage, block):
                runs[-1].append(block)
            else:
                runs.append([block])
        return runs

    def stage_spec(self, stage):
        """Table 1's block column: runs of blocks as [items] + shortcut x n, else the stage's own items."""
        if self.blocks[stage]:
            return ["%s %s%d" % (layout_text(self.layout(stage, run[0])), TIMES, len(run)) for run in self.runs(stage)]
        found = items(self.ops[stage], self.path)
        if found:
            return ["; ".join(fmt_item(i) for i in found)]
        return ["batch norm, ReLU"] if any(op.type.startswith("FusedBatchNorm") for op in self.ops[stage]) else ["-"]

    def table(self):
        """The stage table as JSON-ready data."""
        stages = []
        for stage in self.stage_names:
            runs = [dict(blocks=[run[0], run[-1]] if len(run) > 1 else [run[0]], count=len(run),
                         spec=layout_text(self.layout(stage, run[0])),
                         params=sum(self.total(self.params, stage, b) for b in run),
                         multiply_adds=sum(self.total(self.macs, stage, b) for b in run),
                         output=self.block_output(stage, run[-1]))
                    for run in self.runs(stage)]
            stages.append(dict(name=stage, output=self.outputs[stage], spec=self.stage_spec(stage),
                               params=self.total(self.params, stage), multiply_adds=self.total(self.macs, stage),
                               runs=runs))
        return stages

    def example_block(self):
        """(stage, block) drawn in the block diagram: the first that downsamples, else the second of the first stage."""
        candidates = [(s, b) for s in self.stage_names for b in self.blocks[s]]
        for stage, block in candidates:
            if any(_stride(i) > 1 for i in self.layout(stage, block)[0]):
                return stage, block
        if not candidates:
            return None
        first = [c for c in candidates if c[0] == candidates[0][0]]
        return first[1] if len(first) > 1 else first[0]


def _stride(item):
    """The stride of a conv or pooling item; 1 for the others."""
    if item[0] == "conv":
        return item[4]
    return item[2] if item[0] in ("avg pool", "max pool") else 1


# ----------------------------------------------------------------------------- the paper's side

def github_anchor(heading):
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower(), flags=re.UNICODE)
    return text.replace(" ", "-")


def deviation_tables(readme_text):
    """{model: (anchor, rows)} of docs/deviations.md's "Presets and deviations" section.

    A row is (point, original cell, paper cell, [flags]); the model is the script named in
    the subsection's heading, e.g. "### ResNeXt (`ResNeXt.py`)".
    """
    readme_text = "\n" + readme_text  # the section may open the page
    start = readme_text.find("\n## Presets and deviations")
    if start < 0:
        raise CardError("docs/deviations.md has no \"## Presets and deviations\" section: the cards link their deviations "
                        "to its tables")
    end = readme_text.find("\n## ", start + 1)
    section = readme_text[start:end if end > 0 else len(readme_text)]
    tables = {}
    for part in section.split("\n### ")[1:]:
        heading, body = part.split("\n", 1)
        script = re.search(r"\(`(\w+)\.py`\)", heading)
        if not script:
            continue
        rows = []
        for line in body.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
            if len(cells) < 4 or set(cells[0]) <= set("-: ") or cells[0] == "point":
                continue
            rows.append((cells[0], cells[1], cells[2], re.findall(r"`(--\w+)`", cells[-1])))
        tables[script.group(1)] = (github_anchor(heading), rows)
    return tables


def fmt_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if value == "":
        return "''"
    return "%g" % value if isinstance(value, float) else str(value)


def deviations(model, hp, paper_hp, readme_text):
    """The deviation table rows whose flags this card's settings set otherwise than the paper preset."""
    module = importlib.import_module(model)
    actions = trainer.build_parser(model, module.add_flags, module.PRESETS, model)._option_string_actions
    tables = deviation_tables(readme_text)
    if model not in tables:
        raise CardError("docs/deviations.md's \"Presets and deviations\" has no table for %s.py" % model)
    anchor, rows = tables[model]
    found = []
    for point, original, paper, flags in rows:
        differing, dests = [], set()
        for flag in flags:
            if flag not in actions:
                raise CardError("docs/deviations.md's %s table names %s, which %s.py does not have: correct the table"
                                % (model, flag, model))
            dest = actions[flag].dest
            if dest in dests:  # two spellings of one flag, e.g. --bn_decay and --batch_norm_decay
                continue
            dests.add(dest)
            if hp.get(dest) != paper_hp.get(dest):
                differing.append((flag, fmt_value(hp.get(dest)), fmt_value(paper_hp.get(dest))))
        if differing:
            found.append(dict(point=point, here=["%s %s" % (f, a) for f, a, _ in differing],
                              paper=["%s %s" % (f, b) for f, _, b in differing], anchor=anchor))
    return found


def paper_argv(argv):
    """The same network's flags with the paper preset: the card's variant flags, --preset paper."""
    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--preset":
            skip = True
        elif not a.startswith("--preset="):
            rest.append(a)
    return ["--preset", "paper"] + rest


def reference(model, hp, preset):
    """(row, why there is none) of references.csv for this network under `preset`, as compare.py matches runs."""
    run = dict(model=model, preset=preset, dataset=hp["dataset"], hparams=hp)
    row, reasons, _ = compare.match_reference(run, compare.load_references())
    if row is None:
        return None, reasons[0]
    if reasons:
        return None, "no row in references.csv for this network (the nearest, `%s`: %s)" % (row["id"],
                                                                                             "; ".join(reasons))
    keys = ("id", "variant", "params", "metric", "value", "as_printed", "value_kind", "runs", "source", "where",
            "dataset", "augmented")
    return dict((k, row.get(k, "")) for k in keys), None


def millions(n, like):
    """n in the precision a paper prints, e.g. 34426698 like '34.4M' -> '34.4M'."""
    decimals = len(like.rstrip("M").split(".")[1]) if "." in like else 0
    return "%.*fM" % (decimals, n / 1e6)


# ----------------------------------------------------------------------------- cards

def make_card(name, model, argv, title, readme_text):
    """Everything one card says, as JSON-ready data, plus the Net it was read from."""
    _, hp = settings(model, argv)
    net = Net(forward_graph(model, hp))
    stages = net.table()
    params = net.total(net.params)
    p_argv = paper_argv(argv)
    _, paper_hp = settings(model, p_argv)
    paper_row, no_row = reference(model, paper_hp, "paper")
    original_row = reference(model, hp, "original")[0] if hp["preset"] == "original" else None
    paper_card = [c[0] for c in CARDS if c[1] == model and settings_equal(c[2], p_argv)]
    example = net.example_block()
    card = dict(
        name=name, model=model, title=title, argv=list(argv), preset=hp["preset"], dataset=hp["dataset"],
        command="./kit python %s.py %s" % (model, " ".join(argv + ["--summary"]).strip()),
        input=net.input, stages=stages, params=params, multiply_adds=net.total(net.macs), variables=net.variables,
        paper=dict(argv=p_argv, card=paper_card[0] if paper_card and paper_card[0] != name else None,
                   row=paper_row, no_row=no_row,
                   params_agree=(millions(params, paper_row["params"]) == paper_row["params"])
                   if paper_row and paper_row.get("params") and hp["preset"] == "paper" else None),
        original_claim=original_row,
        deviations=deviations(model, hp, paper_hp, readme_text),
        readme_anchor=deviation_tables(readme_text)[model][0],
        diagrams=dict(network=name + ".svg", block=name + "-block.svg" if example else None,
                      block_name="/".join(example) if example else None),
    )
    return card, net


def settings_equal(argv_a, argv_b):
    return sorted(argv_a) == sorted(argv_b)


def fmt_int(n):
    return "{:,}".format(n)


def fmt_macs(n):
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return "%.2f%s" % (n / size, unit)
    return str(n)


def row_text(row):
    """e.g. 'test error 3.65 % (mean of 10 runs)'."""
    metric = {"test_error_pct": "test error", "test_acc_pct": "test accuracy"}.get(row["metric"], row["metric"])
    kind, runs = row.get("value_kind") or "unstated", row.get("runs")
    how = "one run" if kind == "single" else "%s of %s runs" % (kind, runs) if runs else kind
    return "%s %s %%%s" % (metric, row["value"], "" if kind == "unstated" else " (%s)" % how)


def card_markdown(card):
    """The card as Markdown."""
    name, p = card["name"], card["paper"]
    lines = ["<!-- Generated by `./kit python cards.py` from the graph the model script builds: edit cards.py, "
             "not this file. -->", "# %s" % card["title"], ""]
    lines.append("`%s` builds this network: %s input %s, preset `%s`. Diagrams: [network](%s)%s; data: [%s](%s)."
                 % (card["command"], DATASETS[card["dataset"]], fmt_shape(card["input"]), card["preset"],
                    card["diagrams"]["network"],
                    ", [one block (%s)](%s)" % (card["diagrams"]["block_name"], card["diagrams"]["block"])
                    if card["diagrams"]["block"] else "", name + ".json", name + ".json"))
    lines += ["", "| | this graph | paper |", "|---|---|---|"]
    row = p["row"]
    paper_net = "`%s.py %s`" % (card["model"], " ".join(p["argv"]))
    if p["card"]:
        paper_net += " ([card](%s.md))" % p["card"]
    if row:
        where = "%s, %s" % (row["source"].split(",")[0], row["where"])
        params_cell = "%s (%s, `%s`)" % (row["params"] or "not printed", where, row["id"])
        if p["params_agree"] is not None:
            params_cell += ": %s" % ("agrees" if p["params_agree"] else "**differs**")
        elif card["preset"] != "paper":
            params_cell += ", for the paper's network, %s" % paper_net
        result_cell = "%s, %s" % (row_text(row), row["variant"])
    else:
        params_cell = result_cell = "none: %s" % (p["no_row"] or "no row in references.csv")
    lines.append("| parameters | %s (%s) | %s |" % (fmt_int(card["params"]), millions(card["params"], "0.00M"),
                                                    params_cell))
    lines.append("| multiply-adds per image | %s (%s) | not printed |"
                 % (fmt_int(card["multiply_adds"]), fmt_macs(card["multiply_adds"])))
    lines.append("| result | not trained here | %s |" % result_cell)
    claim = card["original_claim"]
    if claim:
        lines.append("| the original repository's claim | | %s, %s (`%s`) |" % (row_text(claim), claim["where"],
                                                                                claim["id"]))
    lines += ["", "## Stages", "", "| stage | output size | block | parameters | multiply-adds |",
              "|---|---|---|---:|---:|"]
    for s in card["stages"]:
        lines.append("| %s | %s | %s | %s | %s |" % (s["name"], fmt_shape(s["output"]), "<br>".join(s["spec"]),
                                                     fmt_int(s["params"]), fmt_int(s["multiply_adds"])))
    lines.append("| **total** | | | **%s** | **%s** |" % (fmt_int(card["params"]), fmt_int(card["multiply_adds"])))
    lines += ["", "A block is written as in the papers' tables: [kernel, output channels; ...] per layer (C = groups "
              "of a grouped convolution, /2 = stride 2), `+ identity` or `+ [...]` for its shortcut, and "
              "`%sn` for n such blocks in a row. Parameters are the trainable variables a stage's ops read; "
              "multiply-adds those of its convolutions and fully connected layers for one image (flops.py, as "
              "bench/bench.py counts them). Variables: %d (%d trainable), sha256 of their names and shapes "
              "`%s`." % (TIMES, card["variables"]["count"], card["variables"]["trainable"],
                         card["variables"]["sha256"][:16])]
    anchor_link = "%s#%s" % (README_LINK, card["readme_anchor"])
    lines += ["", "## Deviations from the paper", ""]
    if card["deviations"]:
        lines += ["Where these settings differ from %s (rows of the deviations table; rows without a flag, such as "
                  "the optimiser's, are there too):" % paper_net, "",
                  "| point | here | paper | table |", "|---|---|---|---|"]
        for d in card["deviations"]:
            lines.append("| %s | %s | %s | [deviations](%s#%s) |" % (d["point"], "<br>".join("`%s`" % x for x in d["here"]),
                                                                 "<br>".join("`%s`" % x for x in d["paper"]),
                                                                 README_LINK, d["anchor"]))
    else:
        lines.append("None: no flag of the [deviations table](%s) is set otherwise than `--preset paper` sets it."
                     % anchor_link)
    lines += ["", "## Diagrams", "", "![%s: network](%s)" % (name, card["diagrams"]["network"])]
    if card["diagrams"]["block"]:
        lines += ["", "![%s: %s](%s)" % (name, card["diagrams"]["block_name"], card["diagrams"]["block"])]
    return "\n".join(lines) + "\n"


def index_markdown(cards):
    lines = ["<!-- Generated by `./kit python cards.py`: edit cards.py, not this file. -->",
             "# Architecture cards", "",
             "One card per model and preset (and the common depths), read from the graph the model script builds: "
             "the stage table (output size, block, parameters and multiply-adds per stage), the paper's figures beside "
             "them, the deviations from the paper, and two diagrams drawn from the graph's name scopes. Regenerate "
             "with `./kit python cards.py` (SVGs need Graphviz: `apt-get install graphviz`); "
             "`tests/test_cards.py` fails when a card no longer matches its graph. `--summary` names the card of "
             "the network it builds; `--graph [DIR]` writes that graph for TensorBoard and netron.", "",
             "Stages are the tensors a model reports to `--summary` and the name scopes they are built in; blocks "
             "are the name scopes `block_i`, `unit_i` and `bottleN_i` inside them. Only the ops between the images "
             "and the logits count. The diagrams are DOT text written by cards.py itself, so the tests can "
             "regenerate and compare them in the training environments, and Graphviz's `dot` renders them; each "
             "SVG records the sha256 of the DOT text it came from.", "",
             "| card | flags | parameters | the paper's network | multiply-adds | network | block |",
             "|---|---|---:|---|---:|---|---|"]
    for c in cards:
        row, agree = c["paper"]["row"], c["paper"]["params_agree"]
        paper = "%s (`%s`)%s" % (row["params"] or "-", row["id"], "" if agree is None else ": agrees" if agree
                                 else ": **differs**") if row else "-"
        lines.append("| [%s](%s.md) | `%s` | %s | %s | %s | [svg](%s) | %s |" % (
            c["title"], c["name"], " ".join([c["model"] + ".py"] + c["argv"]), fmt_int(c["params"]), paper,
            fmt_macs(c["multiply_adds"]), c["diagrams"]["network"],
            "[svg](%s)" % c["diagrams"]["block"] if c["diagrams"]["block"] else "-"))
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- diagrams

def dot_quote(text):
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def dot_header(name, title):
    return ["digraph %s {" % dot_quote(name),
            '  graph [rankdir=TB, fontname="Helvetica", fontsize=12, labelloc=t, nodesep=0.25, ranksep=0.3, '
            'label=%s];' % dot_quote(title),
            '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", color="#5b7bb2", fontname="Helvetica", '
            'fontsize=10];',
            '  edge [color="#555555", fontname="Helvetica", fontsize=9];']


def network_dot(card, net):
    """The network: input, each stage (a cluster of its runs of equal blocks), logits; shapes on the edges."""
    lines = dot_header(card["name"], "%s\n%s" % (card["title"], card["command"]))
    lines.append('  input [label=%s, shape=ellipse, fillcolor=white];'
                 % dot_quote("images\n%s" % fmt_shape(card["input"])))
    chain = [("input", card["input"])]
    for s in card["stages"]:
        stats = "%s params, %s MACs" % (fmt_int(s["params"]), fmt_macs(s["multiply_adds"]))
        if not s["runs"]:
            lines.append("  %s [label=%s];" % (dot_quote(s["name"]), dot_quote("%s\n%s\n%s" % (
                s["name"], "\n".join(s["spec"]), stats))))
            chain.append((s["name"], s["output"]))
            continue
        lines.append("  subgraph %s {" % dot_quote("cluster_" + s["name"]))
        lines.append('    label=%s; style="rounded"; color="#999999"; fontsize=11;'
                     % dot_quote("%s: %s" % (s["name"], stats)))
        for i, run in enumerate(s["runs"]):
            node = "%s/%s" % (s["name"], run["blocks"][0])
            names = " ... ".join(run["blocks"])
            main, shortcut = net.layout(s["name"], run["blocks"][0])
            body = [fmt_item(x) for x in main]
            if shortcut is not None:
                body.append("shortcut: %s" % ("; ".join(fmt_item(x) for x in shortcut) if shortcut else "identity"))
            label = "%s%s\n%s\n%s params" % (names, " (%s%d)" % (TIMES, run["count"]) if run["count"] > 1 else "",
                                             "\n".join(body), fmt_int(run["params"]))
            lines.append("    %s [label=%s];" % (dot_quote(node), dot_quote(label)))
            last = i == len(s["runs"]) - 1
            chain.append((node, s["output"] if last else run["output"]))
        lines.append("  }")
    for (a, shape), (b, _) in zip(chain, chain[1:]):
        lines.append("  %s -> %s [label=%s];" % (dot_quote(a), dot_quote(b), dot_quote(" " + fmt_shape(shape))))
    lines.append("}")
    return "\n".join(lines) + "\n"


def node_key(op_name, prefix):
    """The node of a block diagram an op belongs to: the first name scope below the block (with
    chao-ji's nested BatchNorm scope its own node), or the op itself where it has no scope."""
    parts = op_name[len(prefix):].split("/")
    if len(parts) == 1:
        return parts[0]
    if len(parts) > 2 and parts[1] == "BatchNorm":
        return "/".join(parts[:2])
    return parts[0]


def describe_node(ops, key, path):
    """A node's label: what its ops do, and its scope name where that is a layer of the model."""
    types = set(op.type for op in ops)
    found = [fmt_item(i) for i in items(ops, path) if i != ("add",)]
    if re.match(r"^dropout(_\d+)?$", key):
        what = "dropout"
    elif "Conv2D" in types:
        what = ("ReLU, " if "Relu" in types else "") + "conv " + "; ".join(found)
    elif any(t.startswith("FusedBatchNorm") for t in types):
        what = "batch norm"
    elif found:
        what = "; ".join(found)
    else:
        for t, text in (("Add", "add"), ("AddV2", "add"), ("ConcatV2", "concat"), ("Relu", "ReLU"),
                        ("Mul", "multiply"), ("Reshape", "reshape")):
            if t in types:
                what = text
                break
        else:
            what = "/".join(sorted(types))
    layer = bool(types & {"Conv2D", "MatMul"}) or any(t.startswith("FusedBatchNorm") for t in types)
    return "%s\n%s" % (key, what) if layer else what


def block_dot(card, net):
    """One block, node by name scope, with the shapes of the tensors between them."""
    stage, block = card["diagrams"]["block_name"].split("/")
    ops = net.block_ops[(stage, block)]
    prefix = "%s/%s/" % (stage, block)
    inside = set(ops)
    keys, members = [], {}
    for op in ops:
        key = node_key(op.name, prefix)
        if key not in members:
            keys.append(key)
            members[key] = []
        members[key].append(op)
    ids = dict((k, "n%d" % i) for i, k in enumerate(keys))
    owner = dict((op, ids[k]) for k in keys for op in members[k])
    lines = dot_header(card["name"] + "-block", "%s: %s\n%s" % (card["title"], card["diagrams"]["block_name"],
                                                                layout_text(net.layout(stage, block))))
    sources, edges = [], []

    def source(op):
        """An outside producer, named by its block or stage."""
        where = net.stage_of.get(op, "images")
        if op in net.block_of:
            where += "/" + net.block_of[op]
        label = "from %s" % where
        if label not in sources:
            sources.append(label)
        return "in%d" % sources.index(label)

    out_shapes = []
    for op in ops:
        for t in op.inputs:
            if t.op not in net.path and t.op.type != "Placeholder":
                continue
            a = owner[t.op] if t.op in inside else source(t.op)
            if a != owner[op]:
                edges.append((a, owner[op], fmt_shape(_shape(t))))
        for t in op.outputs:
            if any(c in net.path and c not in inside for c in t.consumers()):
                out_shapes.append((owner[op], fmt_shape(_shape(t))))
    for i, label in enumerate(sources):
        lines.append("  in%d [label=%s, shape=ellipse, fillcolor=white];" % (i, dot_quote(label)))
    for k in keys:
        lines.append("  %s [label=%s];" % (ids[k], dot_quote(describe_node(members[k], k, net.path))))
    lines.append('  out [label="block output", shape=ellipse, fillcolor=white];')
    seen = set()
    for a, b, shape in edges + [(a, "out", shape) for a, shape in out_shapes]:
        if (a, b, shape) not in seen:
            seen.add((a, b, shape))
            lines.append("  %s -> %s [label=%s];" % (a, b, dot_quote(" " + shape)))
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_svg(dot_text, dot_name):
    """SVG from DOT text through Graphviz's dot, marked with the sha256 of that text; None without dot."""
    exe = shutil.which("dot")
    if exe is None:
        return None
    p = subprocess.Popen([exe, "-Tsvg"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = p.communicate(dot_text.encode("utf-8"))
    if p.returncode != 0:
        raise CardError("dot could not render %s: %s" % (dot_name, err.decode("utf-8", "replace").strip()))
    svg = out.decode("utf-8")
    mark = "<!-- rendered from %s, sha256 %s -->\n" % (dot_name, sha256_text(dot_text))
    head, sep, rest = svg.partition("?>\n")
    return head + sep + mark + rest if sep else mark + svg


def sha256_text(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def svg_source_hash(svg_text):
    m = re.search(r"<!-- rendered from \S+, sha256 ([0-9a-f]{64}) -->", svg_text)
    return m.group(1) if m else None


# ----------------------------------------------------------------------------- files

def _read(path):
    with io.open(path, "r", encoding="utf-8") as f:
        return f.read()


def card_files(name, model, argv, title, readme_text):
    """{file name: text} of one card: .md, .json and the two .dot files."""
    card, net = make_card(name, model, argv, title, readme_text)
    files = {name + ".json": json.dumps(card, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
             name + ".md": card_markdown(card),
             name + ".dot": network_dot(card, net)}
    if card["diagrams"]["block"]:
        files[name + "-block.dot"] = block_dot(card, net)
    return card, files


def generate(names=None, log=None):
    """{file name: text} of the selected cards (all by default) and the index."""
    readme_text = _read(README)
    chosen = [c for c in CARDS if names is None or c[0] in names]
    cards, files = [], {}
    for name, model, argv, title in chosen:
        if log:
            log(name)
        card, more = card_files(name, model, argv, title, readme_text)
        cards.append(card)
        files.update(more)
    if names is None:
        files["README.md"] = index_markdown(cards)
    return files


def stale(files, out_dir=OUT_DIR):
    """The files of `files` whose committed copy differs, and the SVGs not rendered from the current DOT."""
    bad = []
    for fname, text in sorted(files.items()):
        path = os.path.join(out_dir, fname)
        if not os.path.exists(path) or _read(path) != text:
            bad.append(fname)
        if fname.endswith(".dot"):
            svg = os.path.join(out_dir, fname[:-4] + ".svg")
            if not os.path.exists(svg) or svg_source_hash(_read(svg)) != sha256_text(text):
                bad.append(fname[:-4] + ".svg")
    return bad


def write(files, out_dir=OUT_DIR, log=print):
    if not os.path.isdir(out_dir):
        os.makedirs(out_dir)
    unrendered, rendered = [], 0
    for fname, text in sorted(files.items()):
        with io.open(os.path.join(out_dir, fname), "w", encoding="utf-8") as f:
            f.write(text)
        if fname.endswith(".dot"):
            svg = render_svg(text, fname)
            if svg is None:
                unrendered.append(fname)
                continue
            with io.open(os.path.join(out_dir, fname[:-4] + ".svg"), "w", encoding="utf-8") as f:
                f.write(svg)
            rendered += 1
    log("wrote %d files and %d SVGs to %s" % (len(files), rendered, out_dir))
    if unrendered:
        log("SVGs not rendered (%d): Graphviz's dot is not installed (Debian: apt-get install graphviz)"
            % len(unrendered))


# ----------------------------------------------------------------------------- --summary and --graph

def locate(model, graph):
    """The name of the card whose stage table is this graph's, or None."""
    if not os.path.isdir(OUT_DIR):
        return None
    stages = None
    for name, card_model, _, _ in CARDS:
        path = os.path.join(OUT_DIR, name + ".json")
        if card_model != model or not os.path.exists(path):
            continue
        if stages is None:
            stages = json.loads(json.dumps(Net(graph).table()))
        if json.loads(_read(path))["stages"] == stages:
            return name
    return None


def _shown(path):
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def print_location(model, graph, out):
    """`--summary`'s pointer to the card and diagrams of the network it built."""
    if not os.path.isdir(OUT_DIR):
        out.write("architecture cards: docs/architecture/ of the kit's source tree\n")
        return
    name = locate(model, graph)
    if name is None:
        out.write("architecture card: none for these settings (cards of every preset: %s)\n"
                  % _shown(os.path.join(OUT_DIR, "README.md")))
        return
    shown = [_shown(os.path.join(OUT_DIR, f)) for f in (name + ".md", name + ".svg", name + "-block.svg")]
    out.write("architecture card: %s\ndiagrams: %s\n" % (shown[0], ", ".join(
        p for p in shown[1:] if os.path.exists(os.path.join(OUT_DIR, os.path.basename(p))))))


def _variable_homes(graph):
    """{variable name: the name scope its nodes are shown in} for the variables that need one.

    The originals name variables after flat layer names (split_layer_1_0_conv1/kernel) which
    sit outside the stage and block scopes the layer's ops are built in (the name scopes do
    not touch variable names, so checkpoints keep them). A variable goes where the first op
    that reads it has the variable's own first scope, e.g. residual_layer_1/block_0/.
    """
    homes, order = {}, dict((op, i) for i, op in enumerate(graph.get_operations()))
    for v in graph.get_collection(tf.GraphKeys.GLOBAL_VARIABLES):
        name = v.op.name
        top = name.split("/")[0]
        own = [v.op] + [c for t in v.op.outputs for c in t.consumers() if c.name.startswith(name + "/")]
        readers = sorted((c for op in own for t in op.outputs for c in t.consumers()
                          if not c.name.startswith(name + "/")), key=order.get)
        parts = readers[0].name.split("/") if readers else [top]
        if parts[0] != top and top in parts[1:-1]:  # else it is drawn beside its reader already
            homes[name] = "/".join(parts[:parts.index(top)])
    return homes


def tensorboard_graph_def(graph):
    """The GraphDef `--graph` gives TensorBoard: the real one, each variable's nodes (variable,
    initializer, read, optimizer slots) shown in the name scope of the layer that reads it, so
    that the view's top level is the stages (see _variable_homes)."""
    homes = _variable_homes(graph)
    graph_def = graph.as_graph_def()

    def moved(name):
        parts = name.split("/")
        for k in range(1, len(parts) + 1):
            home = homes.get("/".join(parts[:k]))
            if home is not None:
                return home + "/" + name
        return name

    def moved_input(text):
        if text.startswith("^"):
            return "^" + moved(text[1:])
        name, colon, port = text.partition(":")
        return moved(name) + colon + port

    for node in graph_def.node:
        node.name = moved(node.name)
        node.input[:] = [moved_input(i) for i in node.input]
        if "_class" in node.attr:
            node.attr["_class"].list.s[:] = [(b"loc:@" + moved(s[5:].decode("utf-8")).encode("utf-8"))
                                             if s.startswith(b"loc:@") else s for s in node.attr["_class"].list.s]
    return graph_def


def write_graph(graph, folder, out):
    """`--graph`: the graph for TensorBoard (events file) and as a text GraphDef (graph.pbtxt, for netron)."""
    try:
        if not os.path.isdir(folder):
            os.makedirs(folder)
        writer = tf.summary.FileWriter(folder)
        writer.add_graph(None, graph_def=tensorboard_graph_def(graph))
        writer.close()
        tf.io.write_graph(graph.as_graph_def(), folder, "graph.pbtxt", as_text=True)
    except (OSError, IOError, tf.errors.OpError) as e:
        reason = getattr(e, "strerror", None) or getattr(e, "message", None) or str(e)
        raise trainer.KitError("cannot write the graph to %s (%s): pass --graph a folder you can write"
                               % (folder, reason))
    out.write("wrote the graph to %s: events for `tensorboard --logdir %s` (each variable drawn inside the scope of "
              "the layer that reads it), graph.pbtxt for netron (every name as in the graph and the checkpoints)\n"
              % (folder, folder))


# ----------------------------------------------------------------------------- command line

def main(argv=None):
    p = argparse.ArgumentParser(prog="cards.py", description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help="cards to write (default: all); one of: %s"
                   % ", ".join(c[0] for c in CARDS))
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if a committed file is stale")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in [c[0] for c in CARDS]]
    if unknown:
        sys.stderr.write("error: unknown card %s: choose from %s\n" % (unknown[0], ", ".join(c[0] for c in CARDS)))
        return 2
    try:
        files = generate(args.names or None, log=lambda n: sys.stderr.write("card %s\n" % n))
    except CardError as e:
        sys.stderr.write("error: %s\n" % e)
        return 2
    if args.check:
        bad = stale(files)
        if bad:
            sys.stderr.write("stale in docs/architecture: %s; run ./kit python cards.py\n" % ", ".join(bad))
            return 1
        print("docs/architecture is up to date (%d files)" % len(files))
        return 0
    write(files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
