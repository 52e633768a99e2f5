"""The Graphviz diagrams of an architecture card: the network (stages and runs of equal blocks)
and one block (node by name scope), as DOT text, and their rendering to SVG.

The DOT text is written here, without a Python package for Graphviz: the tests regenerate it
under `./kit test`, whose environments hold only the training requirements, and text written
in a fixed order is the same on every runtime. Graphviz's `dot` program (Debian: `apt-get
install graphviz`) only renders it to SVG; without it the SVGs are left as they are, and
each SVG records the sha256 of the DOT text it was rendered from, so a stale one is found.
"""
from __future__ import division

import hashlib
import re
import shutil
import subprocess

from netinfo import CardError, TIMES, fmt_int, fmt_item, fmt_macs, fmt_shape, items, layout_text, static_shape


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
                edges.append((a, owner[op], fmt_shape(static_shape(t))))
        for t in op.outputs:
            if any(c in net.path and c not in inside for c in t.consumers()):
                out_shapes.append((owner[op], fmt_shape(static_shape(t))))
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
