"""Architecture cards and diagrams of every model and preset, read from the graphs the scripts build.

    ./kit python cards.py                  # (re)write docs/architecture/
    ./kit python cards.py --check          # compare with docs/architecture/; exit 1 naming stale or orphan files
    ./kit python cards.py ResNet-paper-20  # only these cards (the index is written with all of them)

For every entry of CARDS this builds the model as `graph.Graph` does (placeholders and the
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

What a card says about the network is read off its graph by netinfo.py; the paper's side (the
deviation tables, references.csv) comes from paperside.py and the diagrams from diagrams.py.
graphview.py uses the cards for `--summary` and writes `--graph`.
"""
from __future__ import division, print_function

import argparse
import io
import json
import os
import sys

from diagrams import block_dot, network_dot, render_svg, sha256_text, svg_source_hash
from netinfo import CardError, Net, TIMES, fmt_int, fmt_macs, fmt_shape, forward_graph, settings
from paperside import deviation_tables, deviations, millions, paper_argv, reference
import paperside

ROOT = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(ROOT, "docs", "architecture")
README = os.path.join(ROOT, "docs", "deviations.md")  # the deviation tables the cards link to
README_LINK = "../deviations.md"  # that page as a card links it
github_anchor = paperside.github_anchor  # the anchors the cards link to, as tests/test_cards.py checks them

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

DATASETS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "mnist": "MNIST"}


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
    else:  # on an original network's card the row looked up is the paper's network's: say so
        params_cell = result_cell = "none%s: %s" % ("" if card["preset"] == "paper" else " for the paper's network, "
                                                    + paper_net, p["no_row"] or "no row in references.csv")
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


# ----------------------------------------------------------------------------- files

def read_text(path):
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
    readme_text = read_text(README)
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
        if not os.path.exists(path) or read_text(path) != text:
            bad.append(fname)
        if fname.endswith(".dot"):
            svg = os.path.join(out_dir, fname[:-4] + ".svg")
            if not os.path.exists(svg) or svg_source_hash(read_text(svg)) != sha256_text(text):
                bad.append(fname[:-4] + ".svg")
    return bad


def orphans(files, out_dir=OUT_DIR):
    """The files in `out_dir` that `files` (every card and the index) would not make, nor render from its
    DOT: a card since removed or renamed, which would still describe a network no script builds."""
    made = set(files) | set(f[:-4] + ".svg" for f in files if f.endswith(".dot"))
    return sorted(f for f in (os.listdir(out_dir) if os.path.isdir(out_dir) else [])
                  if f not in made and not f.startswith("."))


ORPHANS = "in docs/architecture but made by no card (one removed or renamed): %s; remove them with git rm\n"


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


# ----------------------------------------------------------------------------- command line

def main(argv=None):
    p = argparse.ArgumentParser(prog="cards.py", description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help="cards to write (default: all); one of: %s"
                   % ", ".join(c[0] for c in CARDS))
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 if a committed file is stale or made by no card")
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
    left = [] if args.names else orphans(files, OUT_DIR)  # a few cards named: the others' files are no orphans
    if args.check:
        bad = stale(files, OUT_DIR)
        if bad:
            sys.stderr.write("stale in docs/architecture: %s; run ./kit python cards.py\n" % ", ".join(bad))
        if left:
            sys.stderr.write(ORPHANS % ", ".join(left))
        if bad or left:
            return 1
        print("docs/architecture is up to date (%d files)" % len(files))
        return 0
    write(files, OUT_DIR)
    if left:  # they may be a user's own: reported, never deleted
        sys.stderr.write(ORPHANS % ", ".join(left))
    return 0


if __name__ == "__main__":
    sys.exit(main())
