"""A run folder as the training loop writes it (config.json, metrics.jsonl) read into one dict
(load_run), and the run's network in references.csv's terms (run_arch, densenet_depth) and by name
(describe_arch). Reads no TensorFlow.
"""
import io
import json
import math
import os

from references import CompareError, _as_float, _as_int, _truthy


def load_run(run_dir):
    """Read one run folder; raise CompareError with a one-line message if it is not one."""
    name = os.path.basename(os.path.normpath(run_dir)) or run_dir
    if not os.path.isdir(run_dir):
        raise CompareError("%s: no such folder: pass a run folder written by the training loop "
                           "(the --run_dir of a training run)" % run_dir)
    cfg_path = os.path.join(run_dir, "config.json")
    met_path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(cfg_path):
        raise CompareError("%s: config.json not found: this is not a run folder; pass the folder a training "
                           "run wrote (its --run_dir), which holds config.json and metrics.jsonl" % run_dir)
    if not os.path.isfile(met_path):
        raise CompareError("%s: metrics.jsonl not found: the run has not written any metrics; pass the folder "
                           "a training run wrote (its --run_dir), or wait until its first epoch is evaluated"
                           % run_dir)
    try:
        with io.open(cfg_path, "r", encoding="utf-8") as f:
            config = json.load(f)
    except ValueError as e:  # UnicodeDecodeError included
        raise CompareError("%s: config.json is not valid JSON (%s): rewrite it or rerun training" % (run_dir, e))
    except OSError as e:
        raise CompareError("%s: cannot read config.json (%s): fix its permissions" % (run_dir, e.strerror or e))
    if not isinstance(config, dict) or not config.get("model"):
        raise CompareError("%s: config.json has no \"model\" field: it was not written by the training loop"
                           % run_dir)
    try:
        with io.open(met_path, "r", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except ValueError:
        raise CompareError("%s: metrics.jsonl is not UTF-8 text: the file is damaged" % run_dir)
    except OSError as e:
        raise CompareError("%s: cannot read metrics.jsonl (%s): fix its permissions" % (run_dir, e.strerror or e))
    records = []
    nonblank = [(i, line) for i, line in enumerate(lines, start=1) if line.strip()]
    for k, (lineno, line) in enumerate(nonblank):
        try:
            rec = json.loads(line)
        except ValueError:
            if k == len(nonblank) - 1:
                break          # a line still being written by a running training: ignore it
            raise CompareError("%s: metrics.jsonl line %d is not valid JSON: the file is damaged"
                               % (run_dir, lineno))
        if isinstance(rec, dict) and "epoch" in rec:
            damage = _damage(rec)
            if damage:
                raise CompareError("%s: metrics.jsonl line %d %s: the file is damaged" % (run_dir, lineno, damage))
            records.append(rec)
    records.sort(key=lambda r: _as_float(r.get("epoch")) or 0)

    hparams = config.get("hparams") or {}
    if not isinstance(hparams, dict):
        hparams = {}
    run = {
        "dir": run_dir,
        "name": name,
        "config": config,
        "hparams": hparams,
        "model": str(config.get("model")),
        "preset": str(config.get("preset") or "?"),
        "dataset": str(config.get("dataset") or "?"),
        "dataset_label": config.get("dataset_label"),
        "records": records,
    }
    run["planned"] = _as_int(config.get("epochs_planned"))
    run["data_verified"] = config.get("data_verified")
    run["done"] = _as_int(records[-1].get("epoch")) if records else 0
    # A run stopped inside an epoch (KIT_MAX_STEPS, or a --steps cut short) logs that epoch as "partial": it is
    # not done, unless its last step is the run's last (--steps 64000 ends inside epoch 164 by design)
    spe = _as_int(config.get("steps_per_epoch"))
    planned_steps = _as_int(hparams.get("steps")) or (_as_int(hparams.get("epochs")) or 0) * (spe or 0)
    if records and records[-1].get("partial") and (_as_int(records[-1].get("step")) or 0) < planned_steps:
        run["done"] -= 1

    accs = [_pct(r.get("test_acc")) for r in records]
    accs = [a for a in accs if a is not None]
    run["final_acc"] = round(accs[-1], 2) if accs else None
    run["best_acc"] = round(max(accs), 2) if accs else None
    return run


def _number(value):
    """Whether a value read from JSON is a finite number (true and false are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _damage(rec):
    """What is wrong with an epoch's record of metrics.jsonl (None: nothing). The report reads its epoch and
    test_acc as numbers, the plot its test_loss (NaN where the loss diverged, as the loop writes it)."""
    for key in ("epoch", "test_acc"):
        if key not in rec:
            return "has no %s" % key
        if not _number(rec[key]):
            return "has %s %s, not a number" % (key, _shown(rec[key]))
    loss = rec.get("test_loss")
    if loss is not None and (isinstance(loss, bool) or not isinstance(loss, (int, float))):
        return "has test_loss %s, not a number" % _shown(loss)
    return None


def _shown(value, limit=40):
    text = json.dumps(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _pct(value):
    v = _as_float(value)
    if v is None:
        return None
    return v * 100.0


# The hparams run_arch reads: flags that pick which network of a paper's table a run is.
ARCH_HPARAMS = {"ResNet": ("num_layers", "shortcut_connections", "unit"),
                "ResNeXt": ("cardinality", "depth", "blocks"), "SE_ResNeXt": ("cardinality", "depth", "blocks"),
                "Densenet": ("depth", "growth_k", "bc")}


def run_arch(run):
    """Architecture keys of a run, in the vocabulary of references.csv."""
    h = run["hparams"]
    model = run["model"]
    arch = {}
    if model == "ResNet":
        arch["num_layers"] = _as_int(h.get("num_layers"))
        arch["shortcut"] = _truthy(h.get("shortcut_connections", True))
        arch["block"] = "basic"                 # ResNet.py builds basic units only,
        arch["se"] = False                      # and no SE: the bottleneck and SE rows never match
        arch["unit"] = h.get("unit") or None    # runs recorded before --unit existed: not compared
    elif model in ("ResNeXt", "SE_ResNeXt"):
        arch["cardinality"] = _as_int(h.get("cardinality"))
        arch["depth"] = _as_int(h.get("depth"))
        blocks = _as_int(h.get("blocks"))
        arch["num_layers"] = 9 * blocks + 2 if blocks else None   # ResNeXt-29 = 3 stages x 3 blocks x 3 + 2
    elif model == "Densenet":
        arch["depth"] = densenet_depth(h)
        arch["growth_k"] = _as_int(h.get("growth_k"))
        arch["bc"] = _truthy(h.get("bc", False))
    return arch


def densenet_depth(h):
    """L of a DenseNet run as Huang et al. count it: its convolutions plus the classifier.

    Densenet.py takes either --layers (a count per dense block) or --depth (the paper's three
    equal blocks; 0 stands for 40, or 100 with --bc), so config.json's "depth" alone is 0 for
    most runs. A bottleneck layer holds two convs and a plain layer one; add the first conv, a
    transition between each two blocks and the fully connected layer. Hence L=40 is three
    blocks of 12 plain layers, and the original CIFAR preset (6, 12, 48, 32 bottleneck layers)
    is DenseNet-201. None where the run records neither.
    """
    layers = h.get("layers")
    if layers:
        try:
            blocks = [int(n) for n in str(layers).split(",")]
        except ValueError:
            return None
        return (2 if _truthy(h.get("bc", False)) else 1) * sum(blocks) + len(blocks) + 1
    depth = _as_int(h.get("depth"))
    if depth == 0:
        return 100 if _truthy(h.get("bc", False)) else 40
    return depth


def describe_arch(model, arch):
    """A short human name: ResNet-20, ResNeXt 8x64d, DenseNet-BC L=100 k=12 ..."""
    g = arch.get
    if model == "ResNet":
        name = "ResNet-%s" % (g("num_layers") if g("num_layers") is not None else "?")
        if g("se"):
            name = "SE-" + name
        if g("unit") == "preact":
            name += " pre-act"
        if g("block") == "bottleneck":
            name += " bottleneck"
        if g("shortcut") is False:
            name += " plain"
        return name
    if model in ("ResNeXt", "SE_ResNeXt"):
        prefix = "SE-ResNeXt" if model == "SE_ResNeXt" else "ResNeXt"
        layers = "-%d" % g("num_layers") if g("num_layers") else ""
        return "%s%s %sx%sd" % (prefix, layers, g("cardinality") or "?", g("depth") or "?")
    if model == "Densenet":
        return "DenseNet%s L=%s k=%s" % ("-BC" if g("bc") else "", g("depth") or "?", g("growth_k") or "?")
    return model
