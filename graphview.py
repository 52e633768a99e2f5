"""What `--summary` and `--graph` add to a model script's run: the architecture card of the network
it built (print_location), and the graph written for TensorBoard and netron (write_graph)."""
import json
import os
import shlex

from compat import tf, kit_command
from cards import CARDS, OUT_DIR, read_text
from netinfo import Net
from settings import KitError


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
        if json.loads(read_text(path))["stages"] == stages:
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
        raise KitError("cannot write the graph to %s (%s): pass --graph a folder you can write"
                       % (folder, reason))
    out.write("wrote the graph to %s: events for `%s --logdir %s` (each variable drawn inside the scope of "
              "the layer that reads it), graph.pbtxt for netron (every name as in the graph and the checkpoints)\n"
              % (folder, kit_command("tensorboard") or "tensorboard", shlex.quote(folder)))  # pasted into a shell
