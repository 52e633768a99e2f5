"""The paper's side of an architecture card: the deviation tables of docs/deviations.md the card
links to, the flags of the same network under the paper preset, and its row of references.csv."""
from __future__ import division

import importlib
import re

from netinfo import CardError
from matching import match_reference
from references import load_references
from settings import build_parser


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
    actions = build_parser(model, module.PRESETS, model)._option_string_actions
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
    row, reasons, _ = match_reference(run, load_references())
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
