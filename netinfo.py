"""What a card says about a network, read from the graph a model script builds: its stages,
blocks, parameters and multiply-adds (Net), and the text of Table 1's cells (fmt_item, layout_text).

Everything is read off the graph. Stages are the tensors the model reports to `--summary`
(ops.report) and the name scopes they are built in; blocks are the name scopes block_i
(ResNeXt, SE-ResNeXt), unit_i (ResNet) and bottleN_i (DenseNet) inside a stage. Only ops on
the data path count: computed from the images and needed for the logits (no batch-norm
moving-average updates, no dead ops). A stage's parameters are the trainable variables its ops
read; its multiply-adds those of its convolutions and fully connected layers for one image,
counted by flops.py as bench/bench.py counts them.
A layer is read as Table 1 writes it: ResNeXt's C parallel paths (`--formulation literal`, the
paper's Figure 3(a)) are the fused formulation's wide 1x1 conv and grouped 3x3 conv (3(c)), so
both formulations have one stage table and one card.
"""
from __future__ import division

import hashlib
import importlib
import re
import sys

from compat import tf
from flops import op_flops
import ops as kit_ops
from batches import INPUT_SHAPES
from settings import hparams

BUILD_FN = {"ResNeXt": "Build_ResNext", "SE_ResNeXt": "Build_SEnet", "Densenet": "Dense_net", "ResNet": "Build_ResNet"}

# A name scope directly inside a stage's is a block when it is named so (see the model scripts).
BLOCK_SCOPE = re.compile(r"^(block|unit|bottleN)_\d+$")
SHAPE_OPS = ("Shape", "ShapeN", "Size", "Rank")  # read a tensor's shape, not its values
CONCAT_TYPES = ("ConcatV2", "Concat")
TIMES = u"\u00d7"


class CardError(Exception):
    """A card cannot be made (README table or flags out of step): one line, exit 2."""


def settings(model, argv):
    """(module, checked settings) of `model` for the flags `argv`, as its script would run."""
    module = importlib.import_module(model)
    hp = hparams(model, module.PRESETS, module.validate, list(argv))
    return module, hp


def forward_graph(model, hp):
    """What graph.Graph builds up to the logits: its placeholders, global step and the model."""
    build_fn = getattr(importlib.import_module(model), BUILD_FN[model])
    shape, num_classes = INPUT_SHAPES[hp["dataset"]]
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(hp["seed"])
        images = tf.placeholder(tf.float32, [None] + list(shape), name="images")
        tf.placeholder(tf.int64, [None], name="labels")
        training = tf.placeholder(tf.bool, [], name="training")
        tf.train.get_or_create_global_step()
        build_fn(images, training, hp, num_classes)
    return graph


def static_shape(tensor):
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
        return ("zero-pad", static_shape(op.outputs[0])[-1])
    if t == "StridedSlice" and op.inputs[0].get_shape().ndims == 4 and op.outputs[0].get_shape().ndims == 4:
        step = static_shape(op.inputs[0])[0] // max(static_shape(op.outputs[0])[0], 1)
        return ("subsample", step) if step > 1 else None
    if t == "Sigmoid":
        return ("sigmoid",)
    if t in ("Add", "AddV2") and all(x.op in path for x in op.inputs):
        return ("add",)
    return None


def items(ops, path):
    """The items of `ops` (in graph order); identical parallel paths merged by a concatenation are
    one layer (_parallel): ResNeXt's C paths, and the C convs of fused.py's grouped conv."""
    return [item for item, _ in _sourced_items(ops, path)]


def _sourced_items(ops, path):
    """items(ops, path) as (item, the ops it was read from) pairs."""
    ops = list(ops)
    merged, taken = {}, set()
    for op in reversed(ops):  # outermost concatenation first: a nested one is its paths' business
        if op.type in CONCAT_TYPES and op not in taken:
            found = _parallel(op, ops, path)
            if found is not None:
                merged[op], branch_ops = found
                taken |= branch_ops
    out = []
    for op in ops:
        if op in taken:
            continue
        if op in merged:
            out.extend(merged[op])
            continue
        item = op_item(op, path)
        if item is None:
            continue
        out.append((item, [op]))
    return out


def _parallel(concat, ops, path):
    """(merged items, the paths' ops) when `concat` joins C >= 2 identical parallel paths along
    the channels, else None.

    That is ResNeXt's Figure 3(a), which the paper shows to be the same layers as Figure 3(c): a
    conv that every path applies to one shared tensor is one conv C times as wide (its kernels
    side by side, 3(b)); a conv each path applies to its own tensor is a grouped conv, C groups
    (3(c)). Pooling and subsampling act per channel and stay as they are. A path is the ops of
    the block only its input of the concatenation depends on, read by nothing but its own ops
    and the concatenation; paths with any other item, or that differ, are left as a chain.
    """
    ins = [t for t in concat.inputs if t.op in path]
    out_shape = static_shape(concat.outputs[0])
    shapes = [static_shape(t) for t in ins]
    if (len(ins) < 2 or len(ins) != len(concat.inputs) - 1 or None in out_shape
            or any(s != shapes[0] for s in shapes) or out_shape[:-1] != shapes[0][:-1]
            or out_shape[-1] != len(ins) * shapes[0][-1]):
        return None
    reach = [_ancestors(t, set(ops)) for t in ins]
    branches = [r - set().union(*(o for j, o in enumerate(reach) if j != i)) for i, r in enumerate(reach)]
    for branch, t in zip(branches, ins):
        if t.op not in branch or any(c in path and c not in branch and c is not concat
                                     for op in branch for u in op.outputs for c in u.consumers()):
            return None
    found = [_sourced_items([op for op in ops if op in b], path) for b in branches]
    kinds = [[item for item, _ in f] for f in found]
    if not kinds[0] or any(k != kinds[0] for k in kinds) or any(
            item[0] not in ("conv", "avg pool", "max pool", "subsample") for item in kinds[0]):
        return None
    c, merged = len(ins), []
    for k, item in enumerate(kinds[0]):
        if item[0] == "conv":
            reads = [_reads(f[k][1]) for f in found]
            shared = all(r == reads[0] for r in reads)
            item = item[:3] + (item[3] * c, item[4], item[5] if shared else item[5] * c)
        merged.append((item, [op for f in found for op in f[k][1]]))
    return merged, set().union(*branches)


def _reads(sources):
    """The tensors the convs among `sources` read from outside them."""
    return set(op.inputs[0] for op in sources if op.type == "Conv2D" and op.inputs[0].op not in sources)


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


def fmt_int(n):
    return "{:,}".format(n)


def fmt_macs(n):
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return "%.2f%s" % (n / size, unit)
    return str(n)


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
        self.outputs = dict((name, static_shape(t)) for name, t in reported)
        self.input = static_shape(graph.get_operation_by_name("images").outputs[0])
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
                    return static_shape(t)
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


if __name__ == "__main__":  # the name reads like a command's: say which ones to run
    sys.stderr.write("netinfo.py is a library, not a command: run python ResNeXt.py --summary (or another model "
                     "script) for one network's card, or python cards.py to write docs/architecture/\n")
    sys.exit(2)
