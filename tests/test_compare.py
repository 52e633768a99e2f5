"""Tests of the reports: compare.py (kit-compare) and its reference table references.csv, and
report.py (the per-class table and confusion matrix of --eval).

The fixture run folders under tests/fixtures/runs/ are in the format the training
loop writes (config.json + metrics.jsonl); their numbers are made up for the tests.
"""
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT, run_main, usage_error
import compare
import report
from settings import ADDED_SETTINGS, COMMON_DEFAULTS, MODEL_SETTINGS, SETTINGS, with_policy

RUNS = os.path.join(ROOT, "tests", "fixtures", "runs")
REFERENCES = os.path.join(ROOT, "references.csv")
GOOD = ["resnet20-paper-cifar10", "resnet110-paper-cifar10", "resnet56-paper-cifar10",
        "resnet20-original-cifar10", "resnext-original-cifar10", "densenet-bc-paper-cifar10-jpeg"]


def fixture(name):
    return os.path.join(RUNS, name)


def kit_compare(*argv):
    """(exit code, stdout, stderr) of `compare.py ARGV`."""
    return run_main(compare, list(argv))


def table_lines(out):
    """Map run name -> its line of the printed table."""
    lines = {}
    for line in out.splitlines():
        first = line.split(" ", 1)[0]
        if first and first not in lines:
            lines[first] = line
    return lines


def copy_run(tmp_path, name, new_name=None, drop=(), **config_changes):
    """Copy a fixture run into tmp_path and update config.json (keys of hparams via hparams={...};
    top-level keys named in `drop` are removed, as in runs written by older versions)."""
    dst = os.path.join(str(tmp_path), new_name or name)
    shutil.copytree(fixture(name), dst)
    path = os.path.join(dst, "config.json")
    with io.open(path, encoding="utf-8") as f:
        cfg = json.load(f)
    hp = config_changes.pop("hparams", {})
    cfg.update(config_changes)
    cfg["hparams"].update(hp)
    for key in drop:
        del cfg[key]
    with io.open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(cfg, indent=1, sort_keys=True))
    return dst


# ----------------------------------------------------------------------------- reference table

def read_table():
    with io.open(REFERENCES, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_reference_table_parses_with_unique_ids_and_sources():
    rows = read_table()
    assert len(rows) >= 40
    required = ["id", "model", "variant", "preset", "dataset", "augmented", "metric", "value", "spread", "runs",
                "params", "source", "where", "as_printed"]
    for col in required:
        assert col in rows[0], col
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), "duplicate ids"
    for r in rows:
        assert r["source"].strip(), r["id"]
        assert r["as_printed"].strip(), r["id"]
        assert r["where"].strip(), r["id"]
        assert r["model"] in ("ResNet", "ResNeXt", "SE_ResNeXt", "Densenet"), r["id"]
        assert r["preset"] in ("paper", "original"), r["id"]
        assert r["dataset"] in ("cifar10", "cifar100", "mnist"), r["id"]
        assert r["augmented"] in ("yes", "no"), r["id"]
        assert r["metric"] in ("test_error_pct", "test_acc_pct"), r["id"]
        float(r["value"])
        if r["spread"]:
            assert float(r["spread"]) > 0 and r["mean"], r["id"]
        if r["preset"] == "paper":
            assert "arXiv" in r["source"], r["id"]
        else:  # a repository, at the commit the original preset reproduces (README, "Presets and deviations")
            assert re.search(r"\(GitHub repository\) at [0-9a-f]{7}, \d{4}-\d\d-\d\d$", r["source"]), r["id"]
    # compare.py reads the same file without complaint
    assert len(compare.load_references(REFERENCES)) == len(rows)


# Every row's number, transcribed again from its source: (value, mean, spread) as printed.
PUBLISHED = {
    # He et al. 2015, Table 6 (CIFAR-10 test error %)
    "resnet20-c10-he2015": ("8.75", "", ""), "resnet32-c10-he2015": ("7.51", "", ""),
    "resnet44-c10-he2015": ("7.17", "", ""), "resnet56-c10-he2015": ("6.97", "", ""),
    "resnet110-c10-he2015": ("6.43", "6.61", "0.16"), "resnet1202-c10-he2015": ("7.93", "", ""),
    # He et al. 2016, Tables 2 to 4
    "resnet110-preact-c10-he2016": ("6.37", "", ""),
    "resnet164-preact-c10-he2016": ("5.46", "", ""), "resnet164-preact-c100-he2016": ("24.33", "", ""),
    "resnet1001-preact-c10-he2016": ("4.92", "4.89", "0.14"),
    "resnet1001-preact-c10-bs64-he2016": ("4.62", "4.69", "0.20"),
    "resnet1001-preact-c100-he2016": ("22.71", "22.68", "0.22"),
    # Hu et al., Tables 4 (CIFAR-10) and 5 (CIFAR-100)
    "resnet110-c100-hu2017": ("26.88", "", ""),
    "se-resnet110-c10-hu2017": ("5.21", "", ""), "se-resnet164-c10-hu2017": ("4.39", "", ""),
    "se-resnet110-c100-hu2017": ("23.85", "", ""), "se-resnet164-c100-hu2017": ("21.31", "", ""),
    # Xie et al. 2017, Table 7
    "resnext29-8x64d-c10-xie2017": ("3.65", "", ""), "resnext29-8x64d-c100-xie2017": ("17.77", "", ""),
    "resnext29-16x64d-c10-xie2017": ("3.58", "", ""), "resnext29-16x64d-c100-xie2017": ("17.31", "", ""),
    # Huang et al. 2017, Table 2: C10, C10+, C100, C100+
    "densenet40-k12-c10-huang2017": ("7.00", "", ""), "densenet40-k12-c10plus-huang2017": ("5.24", "", ""),
    "densenet40-k12-c100-huang2017": ("27.55", "", ""), "densenet40-k12-c100plus-huang2017": ("24.42", "", ""),
    "densenet100-k12-c10-huang2017": ("5.77", "", ""), "densenet100-k12-c10plus-huang2017": ("4.10", "", ""),
    "densenet100-k12-c100-huang2017": ("23.79", "", ""), "densenet100-k12-c100plus-huang2017": ("20.20", "", ""),
    "densenet100-k24-c10-huang2017": ("5.83", "", ""), "densenet100-k24-c10plus-huang2017": ("3.74", "", ""),
    "densenet100-k24-c100-huang2017": ("23.42", "", ""), "densenet100-k24-c100plus-huang2017": ("19.25", "", ""),
    "densenet-bc100-k12-c10-huang2017": ("5.92", "", ""), "densenet-bc100-k12-c10plus-huang2017": ("4.51", "", ""),
    "densenet-bc100-k12-c100-huang2017": ("24.15", "", ""), "densenet-bc100-k12-c100plus-huang2017": ("22.27", "", ""),
    "densenet-bc250-k24-c10-huang2017": ("5.19", "", ""), "densenet-bc250-k24-c10plus-huang2017": ("3.62", "", ""),
    "densenet-bc250-k24-c100-huang2017": ("19.64", "", ""), "densenet-bc250-k24-c100plus-huang2017": ("17.60", "", ""),
    "densenet-bc190-k40-c10plus-huang2017": ("3.46", "", ""), "densenet-bc190-k40-c100plus-huang2017": ("17.18", "", ""),
    # the original repositories (chao-ji's read off a figure)
    "densenet-mnist-taki0112": ("99.2", "", ""),
    "resnet20-c10-chaoji": ("8.9", "", ""), "resnet56-c10-chaoji": ("7.1", "", ""),
    "resnet110-c10-chaoji": ("6.4", "", ""),
}


def test_reference_table_key_numbers_equal_the_published_ones():
    t = dict((r["id"], r) for r in read_table())
    assert sorted(t) == sorted(PUBLISHED)
    for ref_id, published in PUBLISHED.items():
        assert (t[ref_id]["value"], t[ref_id]["mean"], t[ref_id]["spread"]) == published, ref_id
    assert (t["resnet20-c10-he2015"]["value"], t["resnet20-c10-he2015"]["params"]) == ("8.75", "0.27M")
    r110 = t["resnet110-c10-he2015"]
    assert (r110["value"], r110["mean"], r110["spread"], r110["runs"]) == ("6.43", "6.61", "0.16", "5")
    assert r110["as_printed"] == u"6.43 (6.61\u00b10.16)"
    assert t["resnet1202-c10-he2015"]["value"] == "7.93"
    assert t["resnext29-8x64d-c10-xie2017"]["value"] == "3.65"
    assert t["resnext29-8x64d-c100-xie2017"]["value"] == "17.77"
    assert t["resnext29-16x64d-c10-xie2017"]["value"] == "3.58"
    dn = t["densenet-bc100-k12-c10plus-huang2017"]
    assert (dn["value"], dn["augmented"], dn["depth"], dn["growth_k"], dn["bc"]) == ("4.51", "yes", "100", "12", "yes")
    assert t["densenet-bc100-k12-c10-huang2017"]["augmented"] == "no"
    mnist = t["densenet-mnist-taki0112"]
    assert (mnist["value"], mnist["metric"], mnist["preset"], mnist["dataset"]) == ("99.2", "test_acc_pct",
                                                                                    "original", "mnist")
    # Hu et al.: Table 4 is CIFAR-10, Table 5 is CIFAR-100
    assert t["se-resnet110-c10-hu2017"]["value"] == "5.21" and "Table 4" in t["se-resnet110-c10-hu2017"]["where"]
    assert t["se-resnet110-c100-hu2017"]["value"] == "23.85" and "Table 5" in t["se-resnet110-c100-hu2017"]["where"]
    # The SE paper's ResNet-110 baseline is He et al. 2016's pre-activation network (C10 6.37, as there)
    assert (t["resnet110-c100-hu2017"]["unit"], PUBLISHED["resnet110-preact-c10-he2016"][0]) == ("preact", "6.37")
    # a row the kit can build names its unit: an empty one would match either network (references.row_arch)
    assert all(r["unit"] in ("original", "preact") for r in t.values()
               if r["model"] == "ResNet" and r["block"] == "basic" and r["se"] != "yes"), t
    assert t["resnet1001-preact-c10-he2016"]["as_printed"] == u"4.92 (4.89\u00b10.14)"
    for n in (20, 56, 110):
        assert "read off a figure" in t["resnet%d-c10-chaoji" % n]["notes"]


# ----------------------------------------------------------------------------- report

def test_report_rows_differences_and_verdicts():
    code, out, err = kit_compare(*[fixture(n) for n in GOOD])
    assert code == 0, err
    lines = table_lines(out)

    r20 = lines["resnet20-paper-cifar10"]
    assert "resnet20-c10-he2015" in r20 and " 91.00 " in r20 and " 91.25 " in r20 and " -0.25 " in r20
    assert "164/164" in r20
    assert "within the paper's spread (default tolerance +/-0.50 points: no spread printed)" in r20

    r110 = lines["resnet110-paper-cifar10"]
    assert "resnet110-c10-he2015" in r110 and " 93.39 " in r110 and " -0.08 " in r110
    assert r110.endswith("within the paper's spread (+/-0.16 points)")

    unfinished = lines["resnet56-paper-cifar10"]
    assert "resnet56-c10-he2015" in unfinished and "40/164" in unfinished
    assert "not comparable: unfinished: 40 of 164 epochs" in unfinished
    assert " n/a " in unfinished

    orig = lines["resnet20-original-cifar10"]
    assert "resnet20-c10-chaoji" in orig and " 91.10 " in orig and " -0.05 " in orig
    assert "within the source's spread" in orig and "reference read off a figure (approximate)" in orig

    dn = lines["densenet-bc-paper-cifar10-jpeg"]
    assert "densenet-bc100-k12-c10plus-huang2017" in dn and " 95.49 " in dn and " -1.47 " in dn
    assert "below the reference by 1.47 points" in dn
    assert "caveat: data is CIFAR-10 (JPEG): expect a few points lower" in dn

    assert "Default tolerance where the source prints no spread: +/-0.50 points" in out
    assert compare.DEFAULT_TOLERANCE_POINTS == 0.5
    assert "resnet110-paper-cifar10: resnet110-preact-c10-he2016" in out     # the other ResNet-110 row


def test_original_preset_is_not_judged_against_a_paper_row():
    code, out, err = kit_compare(fixture("resnext-original-cifar10"))
    assert code == 0
    line = table_lines(out)["resnext-original-cifar10"]
    assert "resnext29-8x64d-c10-xie2017" in line
    assert "not comparable: preset differs" in line and "train with --preset paper" in line
    for word in ("within", "below", "above"):
        assert word not in line
    assert " n/a " in line


def test_table_columns_are_aligned():
    code, out, err = kit_compare(*[fixture(n) for n in GOOD])
    assert code == 0, err
    lines = out.splitlines()[:1 + len(GOOD)]
    header = lines[0]
    for col in ("reference", "verdict"):
        start = header.index(col)
        for line in lines[1:]:
            assert line[start - 2:start] == "  " and line[start] != " ", (col, line)
    # right-aligned numbers end in the same column as their header
    end = header.index("diff") + len("diff")
    for line in lines[1:]:
        assert line[end - 1] != " " and line[end] == " ", line


def test_forced_reference_with_another_architecture_is_refused():
    code, out, err = kit_compare(fixture("resnet20-paper-cifar10"), "--reference", "resnet110-c10-he2015")
    assert code == 0
    line = table_lines(out)["resnet20-paper-cifar10"]
    assert "not comparable: architecture differs: run num_layers=20, reference num_layers=110" in line
    code, out, err = kit_compare(fixture("densenet-bc-paper-cifar10-jpeg"), "--reference", "resnet20-c10-he2015")
    assert "not comparable: model differs: run Densenet, reference ResNet" in table_lines(out)["densenet-bc-paper-cifar10-jpeg"]


def test_unknown_reference_id_is_an_error():
    code, out, err = kit_compare(fixture("resnet20-paper-cifar10"), "--reference", "no-such-row")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "unknown reference id" in err


def test_other_dataset_subset_and_plain_nets(tmp_path):
    c100 = copy_run(tmp_path, "resnet110-paper-cifar10", "r110-c100", dataset="cifar100", dataset_label="CIFAR-100")
    mnist = copy_run(tmp_path, "resnet20-paper-cifar10", "r20-mnist", dataset="mnist", dataset_label="MNIST")
    plain = copy_run(tmp_path, "resnet20-paper-cifar10", "r20-plain", hparams={"shortcut_connections": False})
    subset = copy_run(tmp_path, "resnet20-paper-cifar10", "r20-subset", hparams={"test_subset": 1000})
    unverified = copy_run(tmp_path, "resnet20-paper-cifar10", "r20-unverified",
                          dataset_label="CIFAR-10 (unverified copy)", data_verified=False)
    code, out, err = kit_compare(c100, mnist, plain, subset, unverified)
    assert code == 0, err
    lines = table_lines(out)
    assert "resnet110-c100-hu2017" in lines["r110-c100"] and " 73.12 " in lines["r110-c100"]
    assert "not comparable: dataset differs: run mnist, reference cifar10" in lines["r20-mnist"]
    # another dataset and another preset: no near row, and no advice to train with --preset paper
    resnext = copy_run(tmp_path, "resnext-original-cifar10", "rx-mnist", dataset="mnist", dataset_label="MNIST")
    line = table_lines(kit_compare(resnext)[1])["rx-mnist"]
    assert "not comparable: no reference row for " in line and " on mnist (preset original)" in line, line
    assert "--preset paper" not in line
    assert "not comparable: no reference row for ResNet-20 plain on cifar10" in lines["r20-plain"]
    assert "plain nets only as training curves" in lines["r20-plain"]
    assert "not comparable: evaluated on only 1000 test images (--test_subset)" in lines["r20-subset"]
    assert "-0.25" in lines["r20-unverified"]
    assert "caveat: data is CIFAR-10 (unverified copy), not the checksum-verified official CIFAR-10 archive" \
        in lines["r20-unverified"]


def write_metrics(run_dir, test_accs):
    """Replace a run's metrics.jsonl with one record per epoch, test accuracies as given."""
    with open(os.path.join(run_dir, "metrics.jsonl"), "w") as f:
        for epoch, acc in enumerate(test_accs, start=1):
            f.write(json.dumps(dict(epoch=epoch, step=100 * epoch, test_acc=acc, test_loss=0.05)) + "\n")


def test_a_source_reporting_its_best_accuracy_is_compared_with_the_best_epoch(tmp_path):
    """Densenet-Tensorflow's README reports the highest MNIST test accuracy seen in training."""
    run = copy_run(tmp_path, "densenet-bc-paper-cifar10-jpeg", "dn-mnist", preset="original", dataset="mnist",
                   dataset_label="MNIST", data_verified=True, epochs_planned=3,
                   hparams={"bc": False, "depth": None, "growth_k": 12, "augment": False})
    write_metrics(run, [0.9900, 0.9925, 0.9910])
    code, out, err = kit_compare(run)
    assert code == 0, err
    line = table_lines(out)["dn-mnist"]
    assert "densenet-mnist-taki0112" in line and " 99.10 " in line and " 99.25 " in line
    assert " 99.20 " in line and " +0.05 " in line  # best 99.25 - 99.2, not final 99.10 - 99.2
    assert "within the source's spread" in line and "compared with the run's best epoch" in line
    assert "augmentation" not in line  # MNIST is never augmented: no caveat about it


def mnist_run(tmp_path, name, best, final, **hparams):
    """An original-preset MNIST DenseNet run of three epochs, as the kit writes one."""
    hp = {"bc": True, "depth": 0, "layers": "4,4,32", "growth_k": 12, "augment": False, "seed": 0}
    hp.update(hparams)
    overrides = {"dropout_rate": hp["dropout_rate"]} if hp.get("dropout_rate") else {}  # as the kit records it
    run = copy_run(tmp_path, "densenet-bc-paper-cifar10-jpeg", name, preset="original", dataset="mnist",
                   dataset_label="MNIST", data_verified=True, epochs_planned=3, hparams=hp, overrides=overrides)
    write_metrics(run, [0.9, best, final])
    return run


def repeat_lines(out):
    return out.split("Repeats of one experiment", 1)[1].splitlines()[1:]


def test_repeats_of_one_experiment_are_summarised_with_mean_and_spread(tmp_path):
    # three seeds of one experiment; where the data are and how many threads do not make another one
    runs = [mnist_run(tmp_path, "s0", 0.9870, 0.9868, seed=0),
            mnist_run(tmp_path, "s1", 0.9890, 0.9880, seed=1, threads=1, data_source="/elsewhere"),
            mnist_run(tmp_path, "s2", 0.9910, 0.9910, seed=2, run_dir="runs/s2")]
    other = mnist_run(tmp_path, "drop", 0.9900, 0.9899, seed=3, dropout_rate=0.2)  # another recipe
    code, out, err = kit_compare(*(runs + [other]))
    assert code == 0, err
    lines = repeat_lines(out)
    assert len(lines) == 1, lines  # "drop" repeats nothing
    line = lines[0]
    assert line.startswith("  s0, s1, s2 (seeds 0, 1, 2): 3 finished runs")
    # final 98.68, 98.80, 99.10: mean 98.86, sample std sqrt((.18^2 + .06^2 + .24^2) / 2) = 0.2163
    assert "final 98.86 +/- 0.22 (98.68 to 99.10)" in line
    assert "best 98.90 +/- 0.20 (98.70 to 99.10)" in line
    # the source reports its best epoch, so the mean best is judged: 98.90 - 99.20
    assert "the mean best 98.90 against densenet-mnist-taki0112's 99.20: -0.30, within the tolerance of " \
           "+/-0.50 points" in line


def test_repeats_ignore_exactly_the_settings_the_trainer_calls_bookkeeping():
    """compare.py reads no TensorFlow; it takes the set from settings.py (TensorFlow-free), never a copy of its
    own: two runs that differ in one setting repeat one experiment exactly where that setting is bookkeeping."""
    names = {s.name for s in sum(MODEL_SETTINGS.values(), SETTINGS)}
    run = dict(model="Densenet", preset="original", dataset="mnist", dataset_label="MNIST",
               hparams=dict.fromkeys(names, 1))
    same = {n for n in names if compare.experiment_key(dict(run, hparams=dict(run["hparams"], **{n: 2})))
            == compare.experiment_key(run)}
    assert same == with_policy("bookkeeping") and {"seed", "run_dir", "threads"} <= same


def test_a_run_that_records_no_batches_repeats_one_with_epoch_batches(tmp_path):
    """--batches came after these runs were written: a run without it trained with epoch batches."""
    assert all(COMMON_DEFAULTS[k] == v for k, v in ADDED_SETTINGS.items())
    old = mnist_run(tmp_path, "old", 0.9870, 0.9860, seed=0)
    new = mnist_run(tmp_path, "new", 0.9890, 0.9880, seed=1, batches="epoch")
    stream = mnist_run(tmp_path, "stream", 0.9900, 0.9900, seed=2, batches="stream")
    assert "batches" not in json.load(open(os.path.join(old, "config.json")))["hparams"]
    code, out, err = kit_compare(old, new, stream)
    assert code == 0, err
    lines = repeat_lines(out)
    assert len(lines) == 1 and lines[0].startswith("  old, new (seeds 0, 1): 2 finished runs"), lines


def test_repeats_get_no_verdict_unless_every_run_is_comparable(tmp_path):
    runs = [mnist_run(tmp_path, "a", 0.97, 0.96, seed=0, dropout_rate=0.2),
            mnist_run(tmp_path, "b", 0.97, 0.98, seed=1, dropout_rate=0.2)]
    code, out, err = kit_compare(*runs)
    assert code == 0, err
    line = repeat_lines(out)[0]
    assert "final 97.00 +/- 1.41 (96.00 to 98.00)" in line
    assert line.endswith("no verdict: not every run is comparable with one reference (see the table)")
    # an unfinished run is left out of the statistics
    late = mnist_run(tmp_path, "c", 0.95, 0.95, seed=2, dropout_rate=0.2)
    with open(os.path.join(late, "metrics.jsonl")) as f:
        first = f.readline()
    with open(os.path.join(late, "metrics.jsonl"), "w") as f:
        f.write(first)
    code, out, err = kit_compare(runs[0], late)
    assert repeat_lines(out) == ["  a, c (seeds 0, 2): 1 of 2 runs finished: no statistics until two have"]
    code, out, err = kit_compare(*(runs + [late]))
    assert "a, b, c (seeds 0, 1, 2): 2 finished runs; final 97.00 +/- 1.41" in out
    # runs that are comparable get no verdict either while one of their repeats is not (here: unfinished)
    ok = [mnist_run(tmp_path, "d", 0.99, 0.99, seed=0), mnist_run(tmp_path, "e", 0.99, 0.99, seed=1)]
    code, out, err = kit_compare(*ok)
    assert "the mean best 99.00 against densenet-mnist-taki0112's 99.20" in repeat_lines(out)[0]
    early = mnist_run(tmp_path, "f", 0.99, 0.99, seed=2)
    with open(os.path.join(early, "metrics.jsonl"), "w") as f:
        f.write(first)
    code, out, err = kit_compare(*(ok + [early]))
    assert repeat_lines(out)[0].endswith("2 finished runs; final 99.00 +/- 0.00 (99.00 to 99.00); best 99.00 +/- "
                                         "0.00 (99.00 to 99.00); no verdict: not every run is comparable with one "
                                         "reference (see the table)")
    # a single run prints no such section
    code, out, err = kit_compare(runs[0])
    assert "Repeats of one experiment" not in out


def test_a_run_without_epochs_planned_is_not_judged(tmp_path):
    run = copy_run(tmp_path, "resnet20-paper-cifar10", "no-plan", drop=["epochs_planned"])
    code, out, err = kit_compare(run)
    assert code == 0, err
    line = table_lines(out)["no-plan"]
    assert "164/?" in line and "not comparable: config.json records no epochs_planned" in line


def test_a_paper_run_with_a_changed_recipe_is_not_judged_against_the_paper(tmp_path):
    ok = copy_run(tmp_path, "resnet20-paper-cifar10", "as-paper")
    short = copy_run(tmp_path, "resnet20-paper-cifar10", "short", overrides={"epochs": 16, "lr_decay_steps": "3128,4692"})
    # the depth was chosen on the command line too, but that only picks ResNet-20's row
    deep = copy_run(tmp_path, "resnet20-paper-cifar10", "deep", overrides={"num_layers": 20})
    code, out, err = kit_compare(ok, short, deep)
    assert code == 0, err
    lines = table_lines(out)
    assert "not comparable" not in lines["as-paper"] and "not comparable" not in lines["deep"]
    assert "not comparable: the paper preset was changed by --epochs 16, --lr_decay_steps 3128,4692" in lines["short"]


def test_a_run_of_several_horovod_processes_is_not_judged_against_one_process_recipe(tmp_path):
    """horovodrun -np 4 with no flag trains the preset's per-process batch on each of 4 processes: a global
    batch 4 times the paper's, at 4 times its learning rate. config.json records "workers"."""
    alone = copy_run(tmp_path, "resnet20-paper-cifar10", "alone")
    four = copy_run(tmp_path, "resnet20-paper-cifar10", "four", workers=4)
    code, out, err = kit_compare(alone, four)
    assert code == 0, err
    lines = table_lines(out)
    assert "not comparable" not in lines["alone"]
    assert "not comparable: trained by 4 processes: each step took 4 x 128 images" in lines["four"]


def test_the_flags_of_a_column_without_augmentation_choose_that_column(tmp_path):
    """DenseNet's C10 and C100 columns (Huang et al. 2017, Table 2; section 4.2: no augmentation, dropout 0.2
    after every conv but the first) are trained with docs/reproducing.md's --augment=false --dropout_rate 0.2,
    which the kit records as overrides of the paper preset: they pick the column, as --num_layers picks a row.
    Half of that condition, or the dropout with augmentation, is still a changed recipe."""
    def dn(name, augment, dropout):
        overrides = {}  # as the kit records them: the flags given whose value the paper preset does not have
        if not augment:
            overrides["augment"] = False
        if dropout:
            overrides["dropout_rate"] = dropout
        return copy_run(tmp_path, "densenet-bc-paper-cifar10-jpeg", name, dataset_label="CIFAR-10", data_verified=True,
                        overrides=overrides, hparams={"augment": augment, "dropout_rate": dropout})
    runs = [dn("noaug", False, 0.2), dn("noaug-nodrop", False, 0.0), dn("aug-drop", True, 0.2), dn("aug", True, 0.0)]
    code, out, err = kit_compare(*runs)
    assert code == 0, err
    lines = table_lines(out)
    assert "densenet-bc100-k12-c10-huang2017" in lines["noaug"] and " 94.08 " in lines["noaug"]  # 100 - 5.92
    assert " -0.06 " in lines["noaug"] and "within the paper's spread" in lines["noaug"]
    assert "augmentation" not in lines["noaug"]
    assert "not comparable: the paper preset was changed by --augment False" in lines["noaug-nodrop"]
    assert "not comparable: the paper preset was changed by --dropout_rate 0.2" in lines["aug-drop"]
    assert "densenet-bc100-k12-c10plus-huang2017" in lines["aug"] and "not comparable" not in lines["aug"]


def test_a_run_that_records_no_overrides_gets_a_caveat(tmp_path):
    run = copy_run(tmp_path, "resnet20-paper-cifar10", "old", drop=["overrides"])
    code, out, err = kit_compare(run)
    assert code == 0, err
    assert "does not record which flags changed its preset" in out


def test_half_written_last_metrics_line_is_ignored(tmp_path):
    d = copy_run(tmp_path, "resnet56-paper-cifar10", "live")
    with open(os.path.join(d, "metrics.jsonl"), "a") as f:
        f.write('{"epoch": 41, "step": 16031, "train_lo')
    code, out, err = kit_compare(d)
    assert code == 0, err
    assert "40/164" in table_lines(out)["live"]


# ----------------------------------------------------------------------------- errors

def test_folder_without_metrics_exits_2_with_one_line():
    code, out, err = kit_compare(fixture("resnet20-paper-cifar10"), fixture("broken-no-metrics"))
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "broken-no-metrics" in err and "metrics.jsonl not found" in err and "--run_dir" in err


def test_folder_without_config_exits_2(tmp_path):
    empty = os.path.join(str(tmp_path), "empty")
    os.mkdir(empty)
    code, out, err = kit_compare(empty)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "config.json not found" in err
    code, out, err = kit_compare(os.path.join(str(tmp_path), "missing"))
    assert code == 2 and "no such folder" in err


def test_damaged_metrics_line_exits_2(tmp_path):
    d = copy_run(tmp_path, "resnet56-paper-cifar10", "damaged")
    path = os.path.join(d, "metrics.jsonl")
    with open(path) as f:
        lines = f.read().splitlines()
    lines[3] = "{not json"
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    code, out, err = kit_compare(d)
    assert code == 2 and "metrics.jsonl line 4 is not valid JSON" in err


@pytest.mark.parametrize("record, says", [
    ('{"epoch": "one", "test_acc": 0.5}', 'line %d has epoch "one", not a number'),
    ('{"epoch": null, "test_acc": 0.5}', "line %d has epoch null, not a number"),
    ('{"epoch": Infinity, "test_acc": 0.5}', "line %d has epoch Infinity, not a number"),
    ('{"epoch": 41, "test_acc": "high"}', 'line %d has test_acc "high", not a number'),
    ('{"epoch": 41, "test_acc": true}', "line %d has test_acc true, not a number"),
    ('{"epoch": 41, "test_loss": 0.5}', "line %d has no test_acc"),
    ('{"epoch": 41, "test_acc": 0.5, "test_loss": [0.5]}', "line %d has test_loss [0.5], not a number"),
])
@pytest.mark.parametrize("where", [4, 21])  # a line of the file, and a new last line (it has 20)
def test_a_metrics_record_whose_numbers_are_no_numbers_is_damaged(tmp_path, record, says, where):
    # valid JSON, so not a line being written: it raised TypeError (None < int) or OverflowError, or was
    # read as an evaluated epoch of no accuracy (41/164 epochs, the accuracy of epoch 40)
    d = copy_run(tmp_path, "resnet56-paper-cifar10", "numbers")
    path = os.path.join(d, "metrics.jsonl")
    with open(path) as f:
        lines = f.read().splitlines()
    lines[where - 1:where] = [record]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    code, out, err = kit_compare(d)
    assert (code, out) == (2, "")
    assert err == "compare.py: error: %s: metrics.jsonl %s: the file is damaged\n" % (d, says % where)


def test_a_config_number_too_large_for_a_float_is_no_crash(tmp_path):
    # json reads Infinity and 1e999 as inf: int() of it raised OverflowError
    run = copy_run(tmp_path, "resnet20-paper-cifar10", "huge", epochs_planned=float("inf"),
                   hparams={"train_subset": 10 ** 400})
    code, out, err = kit_compare(run)
    assert code == 0, err
    assert "not comparable: config.json records no epochs_planned" in table_lines(out)["huge"]


def test_unreadable_metrics_exits_2_with_one_line(tmp_path):
    d = copy_run(tmp_path, "resnet56-paper-cifar10", "binary")
    with open(os.path.join(d, "metrics.jsonl"), "wb") as f:
        f.write(b"\xff\xfe\x00\x81 not text")
    code, out, err = kit_compare(d)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "metrics.jsonl is not UTF-8 text" in err


def test_command_line_entry_point():
    script = os.path.join(ROOT, "compare.py")
    p = subprocess.Popen([sys.executable, script, fixture("resnet20-paper-cifar10")], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, cwd=ROOT)
    out, err = p.communicate()
    assert p.returncode == 0, err
    assert "resnet20-c10-he2015" in out
    p = subprocess.Popen([sys.executable, script, fixture("broken-no-metrics")], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, cwd=ROOT)
    out, err = p.communicate()
    assert p.returncode == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("compare.py: error: "), err


@pytest.mark.parametrize("typed", ["/usr/local/bin/kit-compare", "compare.py"])
def test_errors_and_usage_name_the_command_the_user_typed(typed, monkeypatch, capsys):
    """The installed console script is kit-compare, `python compare.py` is compare.py: each error names
    the one that was run."""
    name = os.path.basename(typed)
    monkeypatch.setattr(sys, "argv", [typed, fixture("resnet20-paper-cifar10"), "--reference", "no-such-row"])
    assert compare.main() == 2
    err = capsys.readouterr().err
    assert err.startswith("%s: error: unknown reference id 'no-such-row'" % name), err
    err = usage_error(compare, typed, monkeypatch, capsys)
    assert err.startswith("usage: %s " % name), err
    assert err.splitlines()[-1] == "%s: error: unrecognized arguments: --no-such-flag" % name


# ----------------------------------------------------------------------------- plot

BLUE, ORANGE = (31, 119, 180), (255, 127, 14)  # matplotlib's first two colours, C0 and C1: runs 1 and 2


def assessed(*names):
    """(runs, results) of fixture runs, as main() makes them for the table and the plot."""
    runs = [compare.load_run(fixture(n)) for n in names]
    refs = compare.load_references()
    results = [compare.assess(run, *compare.match_reference(run, refs)[:2]) for run in runs]
    return runs, results


def test_plot_figure_has_a_curve_per_run_and_a_dashed_reference_line_each():
    runs, results = assessed("resnet20-paper-cifar10", "resnet110-paper-cifar10")
    fig = compare.curves_figure(runs, results)
    acc_ax, loss_ax = fig.axes
    solid = [l for l in acc_ax.lines if l.get_linestyle() == "-"]
    dashed = [l for l in acc_ax.lines if l.get_linestyle() == "--"]
    assert len(solid) == len(dashed) == len(loss_ax.lines) == 2
    for run, line, loss in zip(runs, solid, loss_ax.lines):
        epochs = [r["epoch"] for r in run["records"]]
        assert list(line.get_xdata()) == list(loss.get_xdata()) == epochs
        assert list(line.get_ydata()) == pytest.approx([100 * r["test_acc"] for r in run["records"]])
        assert list(loss.get_ydata()) == pytest.approx([r["test_loss"] for r in run["records"]])
    assert [list(l.get_ydata()) for l in dashed] == [[91.25, 91.25], [93.39, 93.39]]  # He et al. 2015
    assert [l.get_color() for l in solid] == [l.get_color() for l in dashed] == ["C0", "C1"]
    legend = [t.get_text() for t in acc_ax.get_legend().get_texts()]
    assert legend == ["resnet20-paper-cifar10", "91.25 % resnet20-c10-he2015",
                      "resnet110-paper-cifar10", "93.39 % resnet110-c10-he2015"]
    assert acc_ax.get_ylabel() == "test accuracy (%)" and loss_ax.get_xlabel() == "epoch"


def texts_outside(fig):
    """The texts of a drawn figure (titles, labels, tick labels, legend entries) that do not lie
    wholly inside it: cut off in the PNG."""
    from matplotlib.text import Text
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    outside = []
    for text in fig.findobj(Text):
        if text.get_visible() and text.get_text():
            box = text.get_window_extent(renderer)
            if not (0 <= box.x0 and box.x1 <= fig.bbox.x1 and 0 <= box.y0 and box.y1 <= fig.bbox.y1):
                outside.append(text.get_text())
    return outside


def test_plot_legend_and_labels_stay_inside_the_image():
    """Long run names and reference ids wrap instead of running off the right edge."""
    fig = compare.curves_figure(*assessed(*GOOD))
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "95.49 % densenet-\nbc100-k12-c10plus-huang2017" in legend and len(legend) == 2 * len(GOOD)
    assert texts_outside(fig) == []


def test_plot_is_a_png_of_the_expected_size_with_both_runs_in_both_panels(tmp_path):
    from PIL import Image

    png = os.path.join(str(tmp_path), "sub", "curves.png")
    code, out, err = kit_compare(fixture("resnet20-paper-cifar10"), fixture("resnet110-paper-cifar10"),
                                 "--plot", png)
    assert code == 0, err
    assert "Plot written to %s" % png in out
    img = Image.open(png)
    assert img.format == "PNG"
    assert img.size == (1000, 700) == tuple(int(i * report.DPI) for i in compare.PLOT_INCHES)
    px = img.convert("RGB").load()
    panels_right = int(compare.PANELS_RIGHT * 1000)

    def count(top, bottom, colour):
        return sum(1 for x in range(80, panels_right) for y in range(top, bottom) if px[x, y] == colour)

    for colour in (BLUE, ORANGE):  # the accuracy panel is the upper 3/5, the loss panel the lower 2/5
        assert count(60, 380, colour) > 300 and count(420, 630, colour) > 300, colour
    assert px[995, 695] == (255, 255, 255)  # below the legend: background


def test_plot_without_matplotlib_is_a_one_line_error_before_any_output(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    png = str(tmp_path / "curves.png")
    code, out, err = kit_compare(fixture("resnet20-paper-cifar10"), "--plot", png)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert err.startswith("compare.py: error: --plot needs matplotlib") and "pip install matplotlib" in err
    assert not os.path.exists(png)


@pytest.mark.parametrize("name", ["curves.txt", "curves.pdf", "curves", "curves.png.bak"])
def test_plot_to_a_path_not_ending_in_png_is_refused_before_any_output(tmp_path, name):
    """savefig is told PNG: under any other name the file would hold PNG bytes all the same."""
    path = str(tmp_path / name)
    code, out, err = kit_compare(fixture("resnet20-paper-cifar10"), "--plot", path)
    assert (code, out) == (2, "")
    assert err == ("compare.py: error: --plot writes a PNG image: give a path ending in .png, e.g. --plot "
                   "runs/compare.png (got %s)\n" % path)
    assert os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize("path", ["", " "])
def test_plot_to_an_empty_path_is_refused_before_any_output(tmp_path, path):
    """--plot "" drew nothing and said nothing: the table came out as if --plot had not been given."""
    code, out, err = kit_compare(fixture("resnet20-paper-cifar10"), "--plot", path)
    assert (code, out) == (2, "")
    assert err == ("compare.py: error: --plot needs a file to write: give a path ending in .png, e.g. --plot "
                   "runs/compare.png (got an empty path)\n")


def test_plot_takes_a_png_path_in_capitals_too(tmp_path):
    path = str(tmp_path / "CURVES.PNG")
    code, out, err = kit_compare(fixture("resnet20-paper-cifar10"), "--plot", path)
    assert code == 0 and "Plot written to %s" % path in out, err
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- report.py (--eval)

def test_confusion_matrix_and_per_class_table():
    m = report.confusion_matrix([0, 0, 0, 1, 1, 2], [0, 0, 1, 1, 1, 0], 4)
    assert m.tolist() == [[2, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    table = [line.split() for line in report.per_class_table(m, ["a", "b", "c", "d"]).splitlines()]
    assert table == [["class", "images", "accuracy"], ["a", "3", "0.6667"], ["b", "2", "1.0000"],
                     ["c", "1", "0.0000"], ["d", "0", "-"], ["all", "6", "0.6667"]]


def test_class_names():
    assert report.class_names("cifar10", 10)[:3] == ["airplane", "automobile", "bird"]
    assert report.class_names("mnist", 10) == [str(i) for i in range(10)]
    assert report.class_names("cifar100", 100)[99] == "99"


def cell_pixel(fig, i, j):
    """The PNG pixel (x, y from the top) of cell (true i, predicted j), a third of a cell off its centre
    (where the count is printed)."""
    x, y = fig.axes[0].transData.transform((j + 0.3, i + 0.3))
    return int(x), int(fig.bbox.height - y)


def test_confusion_png_shades_each_cell_by_its_share_of_the_row(tmp_path):
    from PIL import Image

    m = report.confusion_matrix([0, 0, 1, 1, 1], [0, 1, 1, 1, 1], 10)
    names = report.class_names("cifar10", 10)
    fig = report.confusion_figure(m, names, title="t")
    path = report.save_png(fig, str(tmp_path / "sub" / "cm.png"))
    img = Image.open(path).convert("RGB")
    assert img.size == (800, 700) == (fig.bbox.width, fig.bbox.height)
    heat = fig.axes[0].images[0]

    def colour(i, j):
        return img.getpixel(cell_pixel(fig, i, j))

    def shade(share):  # the colour map's colour for a share of the row, as 8-bit RGB
        return tuple(int(c) for c in heat.to_rgba(share, bytes=True)[:3])

    assert colour(1, 1) == shade(1.0)                       # all of class 1 predicted 1
    assert colour(0, 0) == colour(0, 1) == shade(0.5)       # class 0: half right, half as 1
    assert colour(0, 2) == colour(5, 5) == shade(0.0)       # nothing, and a class with no image
    assert sum(shade(1.0)) < 300 < 600 < sum(shade(0.0))    # dark where right, light where empty
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    counts = dict((t.get_position(), t.get_text()) for t in ax.texts)
    assert len(counts) == 100 and counts[(1, 1)] == "3" and counts[(1, 0)] == "1" and counts[(0, 9)] == "0"


def test_confusion_figure_labels_stay_inside_the_image_and_100_classes_get_colour_only():
    fig = report.confusion_figure(np.eye(10, dtype=np.int64) * 1000, report.class_names("cifar10", 10),
                                  title="ResNeXt original: test accuracy 100.00% at step 117300")
    assert texts_outside(fig) == []
    fig = report.confusion_figure(np.eye(100, dtype=np.int64), report.class_names("cifar100", 100))
    assert len(fig.axes[0].texts) == 0 and list(fig.axes[0].get_xticks()) == list(range(0, 100, 10))
    assert texts_outside(fig) == []


@pytest.mark.parametrize("text, says", [
    ("id,value\nfoo,5\n", "lacks the column(s) model, preset, dataset, metric"),
    ("hello\n", "lacks the column(s) id, model, preset, dataset, metric, value"),
    (open(REFERENCES).readline(), "has no rows"),
])
def test_references_without_the_kits_columns_or_rows_are_refused_in_one_line(tmp_path, text, says):
    # Such a table matched no run, or read an error as an accuracy, without a word (or raised KeyError).
    path = tmp_path / "refs.csv"
    path.write_text(text)
    code, out, err = kit_compare(fixture("resnet20-paper-cifar10"), "--references", str(path))
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and says in err and "pass a references.csv" in err
    code, out, err = kit_compare(fixture("resnet20-paper-cifar10"), "--references", str(tmp_path))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "is a folder" in err


def test_a_references_path_not_found_is_answered_about_that_path(tmp_path, monkeypatch):
    # "reinstall the kit" it said of the file the user had named with --references
    missing = str(tmp_path / "refs.csv")
    code, out, err = kit_compare(fixture("resnet20-paper-cifar10"), "--references", missing)
    assert (code, out) == (2, "")
    assert err == ("compare.py: error: %s not found: pass --references the path of a CSV file in the format of the "
                   "kit's references.csv, or leave --references out for the kit's own\n" % missing)
    # --references "" read the kit's own table, as if it had not been given
    code, out, err = kit_compare(fixture("resnet20-paper-cifar10"), "--references", "")
    assert (code, out) == (2, "")
    assert err.startswith("compare.py: error: --references needs a file to read") and "(got an empty path)" in err
    # the kit's own table missing is a broken install
    monkeypatch.setattr("references.default_references_path", lambda: missing)
    code, out, err = kit_compare(fixture("resnet20-paper-cifar10"))
    assert (code, out) == (2, "")
    assert err == ("compare.py: error: %s not found: the kit's reference table is missing; reinstall the kit, or "
                   "pass --references the path of a references CSV\n" % missing)


def test_a_run_named_twice_is_refused_in_one_line(tmp_path):
    # counted twice, it made a repeats summary of "2 finished runs" with a standard deviation of 0.00
    run = fixture("resnet20-paper-cifar10")
    link = str(tmp_path / "same")
    os.symlink(run, link)
    for again in (run, run + os.sep, link):
        code, out, err = kit_compare(run, fixture("resnet56-paper-cifar10"), again)
        assert code == 2 and out == ""
        assert err == "compare.py: error: %s and %s are the same run folder: name each run once\n" % (run, again)


def test_runs_whose_folders_share_a_name_are_told_apart_by_their_paths(tmp_path):
    # both rows were "r1", and the repeats summary "r1, r1 (seeds 0, 1)"
    odd = tmp_path / "odd"
    a = copy_run(odd / "a", "resnet20-paper-cifar10", "r1")
    b = copy_run(odd / "b", "resnet20-paper-cifar10", "r1", hparams={"seed": 1})
    deeper = copy_run(odd / "x" / "b", "resnet20-paper-cifar10", "r1", hparams={"seed": 2})
    alone = copy_run(odd, "resnet20-paper-cifar10", hparams={"seed": 3})
    code, out, err = kit_compare(a, b, deeper, alone)
    assert code == 0, err
    names = ["a/r1", "odd/b/r1", "x/b/r1", "resnet20-paper-cifar10"]  # the shortest end of each path that is its own
    assert [line.split(" ", 1)[0] for line in out.splitlines()[1:5]] == [n.replace("/", os.sep) for n in names]
    assert repeat_lines(out)[0].startswith("  %s (seeds 0, 1, 2, 3): 4 finished runs" % ", ".join(
        n.replace("/", os.sep) for n in names))


def test_two_folders_holding_copies_of_one_run_count_it_once_with_a_note(tmp_path):
    # counted twice, a copy made a repeats summary "r1, r1 (seeds 0, 0)" with a standard deviation of 0.00
    a = copy_run(tmp_path / "a", "resnet20-paper-cifar10", "r1")
    b = os.path.join(str(tmp_path), "b", "r1")
    shutil.copytree(a, b)
    code, out, err = kit_compare(a, fixture("resnet56-paper-cifar10"), b)
    assert code == 0 and err == ("note: %s holds a copy of %s (the same config.json and metrics.jsonl): counted "
                                 "once\n" % (b, a))
    assert out == kit_compare(a, fixture("resnet56-paper-cifar10"))[1]  # the table of the runs without the copy
    # another seed, or one more epoch, is another run
    copy_run(tmp_path / "c", "resnet20-paper-cifar10", "r1", hparams={"seed": 1})
    with open(os.path.join(b, "metrics.jsonl"), "a") as f:
        f.write(json.dumps(dict(epoch=165, step=64515, test_acc=0.91, test_loss=0.45)) + "\n")
    code, out, err = kit_compare(a, b, os.path.join(str(tmp_path), "c", "r1"))
    assert code == 0, err


def test_a_folder_of_run_folders_stands_for_every_run_in_it(tmp_path):
    # "config.json not found: this is not a run folder" it said of runs/, which a bare compare.py reads
    holder, other = tmp_path / "runs", tmp_path / "other"
    for name in ("resnet56-paper-cifar10", "resnet20-paper-cifar10"):
        copy_run(holder, name)
    copy_run(other, "resnext-original-cifar10")
    (holder / "notes").mkdir()  # no run: not taken
    named = [str(holder) + os.sep, str(other), fixture("resnet110-paper-cifar10")]
    code, out, err = kit_compare(*named)
    assert code == 0 and err == "", err
    assert [n for n in table_lines(out) if n.endswith("-cifar10")] == [
        "resnet20-paper-cifar10", "resnet56-paper-cifar10", "resnext-original-cifar10", "resnet110-paper-cifar10"]
    # a folder holding no run is still no run folder, and a run named alone and through its folder is named twice
    code, out, err = kit_compare(str(holder / "notes"))
    assert code == 2 and "config.json not found: this is not a run folder" in err
    code, out, err = kit_compare(str(holder), os.path.join(str(holder), "resnet20-paper-cifar10"))
    assert code == 2 and "are the same run folder" in err


def test_a_run_stopped_inside_its_last_epoch_is_unfinished_unless_its_steps_ended_there(tmp_path):
    # "epochs 1/1" and a verdict it said of a run KIT_MAX_STEPS stopped at step 2 of 3: the loop logs that epoch
    # as "partial", and only a run whose --steps end inside an epoch (chao-ji's 64000) is finished there
    run = copy_run(tmp_path, "resnet20-paper-cifar10", "stopped")
    path = os.path.join(run, "metrics.jsonl")
    lines = open(path).read().splitlines()
    last = dict(json.loads(lines[-1]), step=64000, partial=True)
    with open(path, "w") as f:
        f.write("\n".join(lines[:-1] + [json.dumps(last)]) + "\n")
    code, out, err = kit_compare(run)
    assert code == 0 and "unfinished: 163 of 164 epochs" in out and " 163/164 " in out, out
    finished = copy_run(tmp_path, "resnet20-paper-cifar10", "steps", hparams={"steps": 64000})
    shutil.copy(path, os.path.join(finished, "metrics.jsonl"))
    code, out, err = kit_compare(finished)
    assert code == 0 and "unfinished" not in out and " 164/164 " in out, out
