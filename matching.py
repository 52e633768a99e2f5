"""Setting runs against reference rows: which row of references.csv a run is compared with
(match_reference), whether the two are comparable and by how much the run misses (assess, side).
Reads no TensorFlow.
"""
import settings
from references import ARCH_KEYS, REQUIRED_KEYS, _as_int, _truthy, reference_accuracy, row_arch, tolerance
from runfolders import ARCH_HPARAMS, describe_arch, run_arch

# The name a dataset_label must have for the data to count as the official archive
# (the labels batches.load_data gives verified data).
OFFICIAL_LABELS = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100", "mnist": "MNIST"}
# The condition of a reference column without augmentation (DenseNet's C10 and C100: Huang et al. 2017,
# section 4.2, no augmentation and dropout 0.2 after every conv but the first). The flags that give it
# choose that column, as --num_layers chooses a row: they are no change of the recipe.
UNAUGMENTED = {"augment": False, "dropout_rate": 0.2}
# Switches that reproduce the original repositories' harness bugs (settings.py's HARNESS group).
HARNESS_BUG_FLAGS = tuple(s.name for s in settings.SETTINGS if s.group == settings.HARNESS)


def _fmt_key(key, value):
    if isinstance(value, bool):
        return "%s=%s" % (key, "yes" if value else "no")
    return "%s=%s" % (key, value)


def arch_differences(run, row):
    """Architecture keys on which run and reference row disagree (empty list: same architecture)."""
    model = run["model"]
    mine = run_arch(run)
    theirs = row_arch(row)
    diffs = []
    for key in ARCH_KEYS.get(model, ()):
        if key not in theirs or theirs[key] is None:
            continue
        have = mine.get(key)
        if have is None:
            if key in REQUIRED_KEYS.get(model, ()):
                diffs.append("run records no %s, reference %s" % (key, _fmt_key(key, theirs[key])))
            continue
        if have != theirs[key]:
            diffs.append("run %s, reference %s" % (_fmt_key(key, have), _fmt_key(key, theirs[key])))
    return diffs


def _problems(run, row, check_model=False):
    """Reasons why row is not the reference for run (empty: it is)."""
    reasons = []
    if check_model and row["model"] != run["model"]:
        reasons.append("model differs: run %s, reference %s" % (run["model"], row["model"]))
        return reasons
    diffs = arch_differences(run, row)
    if diffs:
        reasons.append("architecture differs: " + ", ".join(diffs))
    if row.get("dataset") != run["dataset"]:
        reasons.append("dataset differs: run %s, reference %s" % (run["dataset"], row.get("dataset")))
    if row.get("preset") != run["preset"]:
        if run["preset"] == "original" and row.get("preset") == "paper":
            reasons.append("preset differs: the run uses the original repository's recipe (preset original), "
                           "%s is a paper result (preset paper); train with --preset paper to compare with it"
                           % row["id"])
        else:
            reasons.append("preset differs: run preset %s, reference preset %s" % (run["preset"], row.get("preset")))
    return reasons


def _wants_augmented(run):
    # The kit never augments MNIST; on CIFAR --augment (pad 4, random crop, flip) is on by default.
    return run["dataset"] != "mnist" and _truthy(run["hparams"].get("augment", True))


def _preference(run, row):
    """Sort key among equally good rows: augmentation as the run, then the row marked default, then file order."""
    aug = (row.get("augmented") == "yes") == _wants_augmented(run)
    return (0 if aug else 1, 0 if row.get("default", "yes") != "no" else 1, row["_line"])


def match_reference(run, refs, forced_id=None):
    """Return (row or None, reasons it is not comparable, ids of other fully matching rows)."""
    if forced_id:
        byid = dict((r["id"], r) for r in refs)
        row = byid[forced_id]
        return row, _problems(run, row, check_model=True), []
    same_model = [r for r in refs if r["model"] == run["model"]]
    scored = [(r, _problems(run, r)) for r in same_model]
    full = sorted([r for r, p in scored if not p], key=lambda r: _preference(run, r))
    if full:
        best = full[0]
        others = [r["id"] for r in full[1:] if _preference(run, r)[0] == _preference(run, best)[0]]
        return best, [], others
    # No exact match: show the nearest row and say what differs (one thing: a row of another dataset and
    # preset is no near one, and its "train with --preset paper" no help)
    for wanted in (("preset",), ("dataset",)):
        near = [(r, p) for r, p in scored
                if p and all(any(x.startswith(w + " differs") for w in wanted) for x in p)]
        if near:
            near.sort(key=lambda rp: _preference(run, rp[0]))
            return near[0][0], near[0][1], []
    what = "%s on %s" % (describe_arch(run["model"], run_arch(run)), run["dataset"])
    reason = "no reference row for %s (preset %s)" % (what, run["preset"])
    if run["model"] == "ResNet" and run_arch(run).get("shortcut") is False:
        reason += ": the papers show plain nets only as training curves (He et al. 2015, Figure 6)"
    elif run["model"] == "SE_ResNeXt":
        reason += ": Hu et al. print no SE-ResNeXt CIFAR number (see the se-resnet rows for SE-ResNet)"
    return None, [reason], []


def assess(run, row, reasons):
    """Verdict for one run against its row."""
    result = {"row": row, "ref_acc": None, "diff": None, "caveats": [], "compared": "final"}
    if row is not None:
        result["ref_acc"] = reference_accuracy(row)
    planned, done = run["planned"], run["done"]
    reasons = list(reasons)
    if planned is None:
        reasons.append("config.json records no epochs_planned, so whether the run finished is unknown")
    elif done < planned:
        reasons.append("unfinished: %d of %d epochs" % (done, planned))
    elif run["final_acc"] is None:
        reasons.append("no evaluated epoch in metrics.jsonl yet")
    h = run["hparams"]
    if _as_int(h.get("train_subset")):
        reasons.append("trained on only %d training images (--train_subset)" % _as_int(h.get("train_subset")))
    if _as_int(h.get("test_subset")):
        reasons.append("evaluated on only %d test images (--test_subset)" % _as_int(h.get("test_subset")))
    overrides = run["config"].get("overrides")
    if overrides:  # flags that chose the architecture chose the reference row: they change no recipe
        chose = ARCH_HPARAMS.get(run["model"], ())
        if row is not None and row.get("augmented") == "no" and row.get("dataset") != "mnist" and all(
                h.get(k) == v for k, v in UNAUGMENTED.items()):
            chose += tuple(UNAUGMENTED)  # the whole condition of the row's column, not half of it
        overrides = dict((k, v) for k, v in overrides.items() if k not in chose)
    if overrides:
        reasons.append("the %s preset was changed by %s" % (run["preset"], ", ".join(
            "--%s %s" % (k, v) for k, v in sorted(overrides.items()))))
    elif overrides is None:
        result["caveats"].append("the run does not record which flags changed its preset (written before "
                                 "config.json had \"overrides\")")
    workers = _as_int(run["config"].get("workers")) or 1
    if workers > 1:  # Horovod: the global batch and (--hvd_scale_lr) the learning rate are the preset's times N
        reasons.append("trained by %d processes: each step took %d x %s images"
                       % (workers, workers, h.get("batch_size")))
    bugs = [k for k in HARNESS_BUG_FLAGS if _truthy(h.get(k))]
    if bugs and run["preset"] != "original":
        result["caveats"].append("the run enables the original harness's bugs: " + ", ".join(bugs))

    official = OFFICIAL_LABELS.get(run["dataset"])
    label = run["dataset_label"]
    if not label:
        result["caveats"].append("the run does not record what data it used (no dataset_label)")
    elif "jpeg" in str(label).lower() or "jpg" in str(label).lower():
        result["caveats"].append("data is %s: expect a few points lower" % label)
    elif official and (str(label).strip() != official or run.get("data_verified") is False):
        result["caveats"].append("data is %s, not the checksum-verified official %s archive" % (label, official))

    if row is not None:
        if row.get("value_kind") == "read off a figure":
            result["caveats"].append("reference read off a figure (approximate)")
        if row.get("augmented") == "yes" and not _wants_augmented(run):
            result["caveats"].append("reference is with augmentation, the run is not")
        if row.get("augmented") == "no" and _wants_augmented(run) and row.get("dataset") != "mnist":
            result["caveats"].append("reference is without augmentation (with dropout), the run augments")

    if reasons:
        result["verdict"] = "not comparable: " + "; ".join(reasons)
        return result

    # Compare the final epoch, except where the source reports its highest accuracy.
    acc = run["final_acc"]
    if row.get("value_kind") == "best" and row["_mean"] is None:
        acc = run["best_acc"]
        result["compared"] = "best"
        result["caveats"].append("the source reports its highest test accuracy: compared with the run's best epoch")
    diff = round(acc - result["ref_acc"], 2)
    result["diff"] = diff
    word = "paper's" if row.get("preset") == "paper" else "source's"
    tol = tolerance(row)
    if row["_spread"] is not None:
        how = "+/-%.2f points" % tol
    else:
        how = "default tolerance +/-%.2f points: no spread printed" % tol
    where = side(diff, tol)
    if where == "within":
        result["verdict"] = "within the %s spread (%s)" % (word, how)
    else:
        result["verdict"] = "%s the reference by %.2f points (%s)" % (where, abs(diff), how)
    return result


def side(diff, tol):
    """"within", "below" or "above" the reference, for a difference of `diff` points."""
    if abs(diff) <= tol + 1e-9:
        return "within"
    return "below" if diff < 0 else "above"
