"""The reference table: references.csv read into rows, and what a row says (its accuracy, its
architecture keys, its tolerance, a one-line description for the report).

Also the input error (CompareError) and the value parsers that runfolders.py, matching.py and
compare.py share. Reads no TensorFlow.
"""
import csv
import io
import os
import sys

# Where the source prints no spread (no std over runs), a run within this many
# points of the reference accuracy is called "within the paper's spread".  The
# spreads that are printed (ResNet-110: 0.16; ResNet-1001: 0.14, 0.20 and 0.22)
# are one standard deviation over 5 runs; 0.5 points is about three of those.
DEFAULT_TOLERANCE_POINTS = 0.5

REFERENCES_FILE = "references.csv"

# Architecture keys compared per model (reference column -> meaning in the run's hparams).
# ResNet's unit: original (He et al. 2015) or preact (He et al. 2016), the run's --unit.
ARCH_KEYS = {
    "ResNet": ("num_layers", "block", "unit", "shortcut", "se"),
    "ResNeXt": ("num_layers", "cardinality", "depth"),
    "SE_ResNeXt": ("num_layers", "cardinality", "depth"),
    "Densenet": ("depth", "growth_k", "bc"),
}
# Keys a run must record for its model (others are skipped when the run does not record them).
REQUIRED_KEYS = {
    "ResNet": ("num_layers",),
    "ResNeXt": ("cardinality", "depth"),
    "SE_ResNeXt": ("cardinality", "depth"),
    "Densenet": ("depth", "growth_k"),
}
# The columns every row is read by: which run it is for and the number it gives.
REQUIRED_COLUMNS = ("id", "model", "preset", "dataset", "metric", "value")
INT_KEYS = ("num_layers", "cardinality", "depth", "growth_k")
BOOL_KEYS = ("shortcut", "se", "bc")


class CompareError(Exception):
    """A problem with the input: reported as one line on stderr, exit code 2."""


# ----------------------------------------------------------------------------- helpers

def _truthy(value):
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, (int, float)):
        return value != 0
    return str(value).strip().lower() in ("1", "true", "yes", "y", "on", "t")


def _as_int(value):
    if value is None or value == "":
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):  # OverflowError: int() of an infinity, float() of a huge int
        return None


def _as_float(value):
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int() of an infinity, float() of a huge int
        return None


# ----------------------------------------------------------------------------- references

def default_references_path():
    """references.csv next to this module (source tree, editable install), else the installed copy."""
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.path.join(here, REFERENCES_FILE),
                  os.path.join(sys.prefix, "share", "tf1-residual-kit", REFERENCES_FILE)]
    for path in candidates:
        if os.path.isfile(path):
            return path
    return candidates[0]


def load_references(path=None):
    """Read references.csv into a list of dicts with parsed numbers and keys: the kit's own, or the
    file at `path` (compare.py's --references), where the advice of an error is about that file."""
    if path is not None and not path.strip():
        raise CompareError("--references needs a file to read: give the path of a CSV file in the format of the "
                           "kit's references.csv, or leave --references out for the kit's own (got an empty path)")
    given = path is not None
    path = path or default_references_path()
    if os.path.isdir(path):
        raise CompareError("%s is a folder: pass --references the path of a CSV file in the format of the kit's "
                           "references.csv" % path)
    if not os.path.isfile(path):
        if given:
            raise CompareError("%s not found: pass --references the path of a CSV file in the format of the kit's "
                               "references.csv, or leave --references out for the kit's own" % path)
        raise CompareError("%s not found: the kit's reference table is missing; reinstall the kit, or pass "
                           "--references the path of a references CSV" % path)
    try:
        with io.open(path, "r", encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
    except (OSError, ValueError, csv.Error) as e:  # unreadable, not UTF-8, not CSV
        raise CompareError("cannot read %s (%s): pass a references.csv in the kit's format" % (path, e))
    # A table without these columns would match no run, or read an error as an accuracy, in silence.
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing or not rows:
        raise CompareError("%s %s: pass a references.csv in the kit's format (its first line names the columns, "
                           "among them %s; one row per published number)"
                           % (path, "lacks the column(s) %s" % ", ".join(missing) if missing else "has no rows",
                              ", ".join(REQUIRED_COLUMNS)))
    out = []
    for n, row in enumerate(rows, start=2):
        row = dict((k, (v or "").strip()) for k, v in row.items() if k is not None)
        if not row.get("id"):
            raise CompareError("%s line %d: row without an id" % (path, n))
        row["_line"] = n
        row["_value"] = _as_float(row.get("value"))
        row["_mean"] = _as_float(row.get("mean"))
        row["_spread"] = _as_float(row.get("spread"))
        if row["_value"] is None:
            raise CompareError("%s line %d (%s): value is not a number" % (path, n, row["id"]))
        out.append(row)
    return out


def reference_accuracy(row):
    """Reference test accuracy in %: the mean where one is printed, else the headline value."""
    value = row["_mean"] if row["_mean"] is not None else row["_value"]
    if row.get("metric") == "test_error_pct":
        return round(100.0 - value, 4)
    return value


def row_arch(row):
    keys = ARCH_KEYS.get(row["model"], ())
    arch = {}
    for key in keys:
        raw = row.get(key, "")
        if key in BOOL_KEYS:
            if key == "se":
                arch[key] = raw.lower() == "yes"          # a ResNet row without se is a plain ResNet
            elif raw:
                arch[key] = raw.lower() == "yes"
        elif key in INT_KEYS:
            if raw:
                arch[key] = _as_int(raw)
        elif raw:
            arch[key] = raw
    return arch


def describe_row(row):
    """One line about a reference row: what it is, the number, where it is printed."""
    metric = {"test_error_pct": "test error %", "test_acc_pct": "test accuracy %"}.get(row.get("metric"),
                                                                                      row.get("metric"))
    number = row.get("value", "")
    if row.get("mean"):
        number += ", mean %s" % row["mean"]
    if row.get("spread"):
        number += " +/- %s" % row["spread"]
    kind = row.get("value_kind")
    runs = _as_int(row.get("runs"))
    if kind == "single" or (kind and runs == 1):
        number += " (single run)"
    elif kind and kind != "unstated":
        number += " (%s of %d runs)" % (kind, runs) if runs else " (%s)" % kind
    return "%s = %s, %s %s; printed as \"%s\"; %s, %s" % (
        row["id"], row.get("variant", ""), metric, number, row.get("as_printed", ""),
        row.get("source", ""), row.get("where", ""))


def tolerance(row):
    """How many points a result may miss the row's accuracy by: its printed spread, else the default."""
    return row["_spread"] if row["_spread"] is not None else DEFAULT_TOLERANCE_POINTS
