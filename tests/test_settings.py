"""settings.py: one declaration per setting gives its flag, default, check and resume policy."""
import os
import re

import pytest

import checkpoints
from conftest import ROOT
import settings
import ResNeXt


@pytest.fixture
def added():
    """Two settings declared at run time, as a new flag would be: one that changes training, one
    that only says where things go."""
    new = [settings.Setting("toy_rate", settings.OPT, "a toy rate", float, 0.5, preset=True,
                            check="(0, 1]", role="training"),
           settings.Setting("toy_folder", settings.RUN, "a toy folder", default="toys", role="where")]
    settings.SETTINGS.extend(new)
    saved = dict(settings.COMMON_DEFAULTS)
    settings.COMMON_DEFAULTS["toy_rate"] = 0.5
    yield new
    del settings.SETTINGS[-len(new):]
    settings.COMMON_DEFAULTS.clear()
    settings.COMMON_DEFAULTS.update(saved)


def parse(argv):
    parser = settings.build_parser("ResNeXt", ResNeXt.PRESETS, "ResNeXt")
    return parser, settings.resolve(parser.parse_args(argv), ResNeXt.PRESETS)


def test_a_declared_setting_is_a_flag_with_its_default_and_help(added):
    parser, hp = parse([])
    text = parser.format_help()
    assert "--toy_rate TOY_RATE" in text and "a toy rate" in text and "--toy_folder TOY_FOLDER" in text
    assert hp["toy_rate"] == 0.5 and hp["toy_folder"] == "toys"
    assert parse(["--toy_rate", "0.25"])[1]["toy_rate"] == 0.25


def test_a_declared_check_is_a_one_line_error(added):
    settings.check_common(parse(["--toy_rate", "0.25"])[1])
    with pytest.raises(settings.KitError) as e:
        settings.check_common(parse(["--toy_rate", "2"])[1])
    assert str(e.value) == "--toy_rate must be in (0, 1], got 2.0"


def test_the_role_decides_what_a_resume_may_change(added):
    _, hp = parse([])
    meta = {"config": {"hparams": dict(hp)}}
    # a setting of role where (toy_folder) or length (epochs) may differ
    checkpoints.check_resume(meta, dict(hp, toy_folder="elsewhere", epochs=400), "ck", "ResNeXt")
    with pytest.raises(settings.KitError) as e:
        checkpoints.check_resume(meta, dict(hp, toy_rate=0.25), "ck", "ResNeXt")
    assert "it was trained with --toy_rate 0.5, this command has --toy_rate 0.25" in str(e.value)
    resumable, bookkeeping, training_only = map(settings.with_policy, ("resumable", "bookkeeping", "training_only"))
    assert "toy_folder" in bookkeeping and "toy_rate" not in bookkeeping
    assert "toy_rate" in training_only and "toy_rate" not in resumable


def test_the_policy_sets_follow_the_roles_of_existing_flags():
    resumable, bookkeeping, training_only = map(settings.with_policy, ("resumable", "bookkeeping", "training_only"))
    assert {"epochs", "steps", "run_dir", "data_dir", "path"} <= resumable
    assert {"lr", "seed", "batch_size", "dataset", "normalization"}.isdisjoint(resumable)
    assert bookkeeping == (resumable - {"epochs", "steps"}) | {"seed", "formulation", "dataset"}
    assert {"lr", "seed", "dropout_rate", "hvd_warmup_epochs"} <= training_only
    assert "normalization" not in training_only and "test_own_stats" not in training_only
    assert settings.with_policy("no such policy") == frozenset()
    assert settings.COMMON_DEFAULTS["batch_size"] == 128 and "run_dir" not in settings.COMMON_DEFAULTS


def test_crash_safety_lists_every_setting_a_resume_may_change():
    """docs/crash-safety.md names the flags a resumed run may give differently: exactly the resumable
    settings, less the ones that pick what the command does (--eval, --summary, --ckpt_path, --fresh)."""
    text = open(os.path.join(ROOT, "docs", "crash-safety.md")).read()
    sentence = text.split("What says where things are or how long to go on may change:", 1)[1].split(".\n", 1)[0]
    listed = set(re.findall(r"`--(\w+)`", sentence))
    assert listed == settings.with_policy("resumable") - {"eval", "summary", "ckpt_path", "fresh"}


def test_compare_reads_the_settings_without_tensorflow():
    import subprocess
    import sys
    code = ("import sys, compare, settings; assert 'tensorflow' not in sys.modules; "
            "print(sorted(settings.with_policy('bookkeeping'))[:2])")
    out = subprocess.check_output([sys.executable, "-c", code], cwd=settings.__file__.rsplit("/", 1)[0])
    assert out.decode().strip() == "['binary', 'ckpt_every_steps']"


def test_a_model_setting_is_declared_once_for_its_scripts():
    """MODEL_SETTINGS gives each script its own flags (help, type, check, role) and no other script's."""
    resnext = settings.build_parser("ResNeXt", ResNeXt.PRESETS, "ResNeXt").format_help()
    densenet = settings.build_parser("Densenet", {"original": {}}, "Densenet").format_help()
    se = settings.build_parser("SE_ResNeXt", {"original": {}}, "SE_ResNeXt").format_help()
    assert "--cardinality CARDINALITY" in resnext and "number of paths in split_layer (C)" in resnext
    assert "--cardinality" in se and "--reduction_ratio" in se and "--reduction_ratio" not in resnext
    assert "--cardinality" not in densenet and "--growth_k GROWTH_K" in densenet
    _, hp = parse(["--cardinality", "0"])
    assert hp["cardinality"] == 0
    with pytest.raises(settings.KitError) as e:
        settings.check_common(hp, "ResNeXt")
    assert str(e.value) == "--cardinality must be between 1 and 64, got 0"
    assert "formulation" in settings.with_policy("bookkeeping")
    assert "cardinality" not in settings.with_policy("resumable") | settings.with_policy("bookkeeping")


def test_the_model_settings_choices_are_the_scripts_tables():
    """Two choices are listed in settings.py (TensorFlow-free) and keyed in the scripts: they must agree."""
    import Densenet
    import ResNet
    by_name = {(model, s.name): s.choices for model, ss in settings.MODEL_SETTINGS.items() for s in ss}
    assert sorted(by_name[("Densenet", "stem")]) == sorted(Densenet.STEMS)
    assert sorted(by_name[("ResNet", "unit")]) == sorted(ResNet.UNITS)


@pytest.mark.parametrize("script", ["ResNeXt", "SE_ResNeXt", "Densenet", "ResNet"])
def test_ckpt_path_without_eval_is_refused_by_every_script(script, tmp_path):
    """--ckpt_path is --eval's: a training run would ignore it and start or resume elsewhere."""
    import importlib
    from conftest import run_main
    code, out, err = run_main(importlib.import_module(script), ["--ckpt_path", "runs/x/checkpoints/step-00000005",
                                                                 "--run_dir", str(tmp_path / "run")])
    assert code == 2 and err == ("error: --ckpt_path names a checkpoint to evaluate: add --eval (training writes its "
                                 "checkpoints to --run_dir, and resumes from the newest there)\n")
    assert not (tmp_path / "run").exists()  # refused before the run folder is made


def test_a_count_in_epochs_given_alone_replaces_the_presets_count_in_steps():
    """ResNet's original preset decays at steps 32000, 48000 and runs 64000 steps: an explicit
    --lr_decay_epochs or --epochs is the user's schedule, not a flag the preset's steps outvote."""
    import ResNet
    from conftest import settings as script_settings
    preset = script_settings(ResNet, [])
    assert (preset["lr_decay_steps"], preset["steps"]) == ("32000,48000", 64000)
    hp = script_settings(ResNet, ["--lr_decay_epochs", "100,150", "--epochs", "200"])
    assert (hp["lr_decay_epochs"], hp["lr_decay_steps"], hp["epochs"], hp["steps"]) == ("100,150", "", 200, 0)
    both = script_settings(ResNet, ["--lr_decay_epochs", "100,150", "--lr_decay_steps", "30000"])
    assert (both["lr_decay_steps"], both["steps"]) == ("30000", 64000)  # the steps flag wins where both are given


@pytest.mark.parametrize("script, argv, error", [
    ("Densenet", ["--momentum", "0.5"], "--momentum is used only with --optimizer momentum, and this run has "
                                        "--optimizer adam: drop it, or add --optimizer momentum"),
    ("Densenet", ["--nesterov", "false"], "--nesterov is used only with --optimizer momentum"),
    ("ResNeXt", ["--adam_epsilon", "0.001"], "--adam_epsilon is used only with --optimizer adam, and this run has "
                                             "--optimizer momentum: drop it, or add --optimizer adam"),
    ("ResNeXt", ["--optimizer", "adam", "--adam_epsilon", "0.001"], None),
    ("Densenet", ["--optimizer", "momentum", "--momentum", "0.5"], None),
    ("ResNeXt", ["--warmup_lr", "0.05"], "--warmup_lr is used only with --warmup_steps N (above 0), and this run "
                                         "has --warmup_steps 0: drop it, or add --warmup_steps N (above 0)"),
    ("ResNeXt", ["--warmup_lr", "0.05", "--warmup_steps", "100"], None),
    ("ResNet", ["--warmup_lr", "0.05"], None),  # the original preset warms up (500 steps)
    ("Densenet", ["--dataset", "mnist", "--compression", "0.3"], "--compression is used only with --transition_k "
                                                                 "False, and this run has --transition_k True"),
    ("Densenet", ["--dataset", "mnist", "--transition_k=false", "--compression", "0.3"], None),
    ("ResNet", ["--shortcut_connections=false", "--shortcut_downsample", "subsample"],
     "--shortcut_downsample is used only with --shortcut_connections True"),
    ("ResNet", ["--preset", "paper", "--preact_bn_decay", "0.5"], "--preact_bn_decay is used only with --unit "
                                                                  "preact, and this run has --unit original"),
    ("ResNet", ["--preset", "paper", "--preact_bn_scale=false"], "--preact_bn_scale is used only with --unit preact"),
    ("ResNet", ["--preset", "paper", "--unit", "preact", "--preact_bn_decay", "0.5"], None),
    ("Densenet", ["--dataset", "mnist", "--test_own_stats"], "--test_own_stats is used only with --normalization "
                                                             "channel or pixel_mean, and this run has "
                                                             "--normalization unit"),
    ("ResNet", ["--lr_decay_steps", "", "--lr_decay_factor", "0.5"], "--lr_decay_factor is used only with "
                                                                     "--lr_decay_epochs or --lr_decay_steps"),
    ("ResNet", ["--dataset", "cifar100", "--binary"], "--binary reads CIFAR-10's binary files, and cifar100 is read "
                                                      "from its pickles here: drop --binary"),
    ("ResNet", ["--dataset", "cifar100"], None),  # the preset's binary: CIFAR-10 only, nothing to refuse
    ("ResNet", ["--path", "x", "--binary=false"], "--path names the binary CIFAR-10 folder, and --binary=false"),
    ("ResNet", ["--summary", "--eval"], "--summary (or --graph) and --eval are two commands: give one of them"),
    ("ResNet", ["--graph", "g", "--eval"], "--summary (or --graph) and --eval are two commands"),
    ("ResNet", ["--summary", "--ckpt_path", "x"], "--ckpt_path names a checkpoint to evaluate: add --eval"),
])
def test_a_flag_that_would_do_nothing_is_refused_not_ignored(script, argv, error):
    refused_or_accepted(script, argv, error)


def refused_or_accepted(script, argv, error):
    """`script`'s settings for `argv` are refused with a message starting `error`, or (None) accepted."""
    import importlib
    from conftest import settings as script_settings
    module = importlib.import_module(script)
    if error is None:
        script_settings(module, argv)
        return
    with pytest.raises(settings.KitError) as e:
        script_settings(module, argv)
    assert str(e.value).startswith(error), str(e.value)


DECAYS = ("must be whole numbers from 1 to 1000000000 (the rate changes between steps, so after whole epochs), "
          "comma-separated, each once, in any order, e.g. 150,225, or '' for none")


@pytest.mark.parametrize("script, argv, error", [
    ("ResNet", ["--seed", "-1"], "--seed must be between 0 and 4294967295, got -1"),
    ("ResNet", ["--seed", "99999999999"], "--seed must be between 0 and 4294967295, got 99999999999"),
    ("ResNet", ["--threads", "-1"], "--threads must be between 0 and 4096, got -1"),
    ("ResNet", ["--warmup_steps", "99999999999999999999"], "--warmup_steps must be between 0 and 1000000000"),
    ("ResNet", ["--steps", "99999999999999999999"], "--steps must be between 0 and 1000000000"),
    ("ResNet", ["--train_subset", "-1"], "--train_subset must be 0 (all) or a number of images, got -1"),
    ("ResNet", ["--test_subset", "-5"], "--test_subset must be 0 (all) or a number of images, got -5"),
    ("ResNet", ["--ckpt_every_steps", "-1"], "--ckpt_every_steps must be 0 (per epoch only) or a number of steps"),
    ("Densenet", ["--adam_epsilon", "-1"], "--adam_epsilon must be in (0, 1], got -1.0"),
    ("ResNet", ["--run_dir", ""], "--run_dir must be a path, not empty"),
    ("ResNet", ["--data_source", " "], "--data_source must be an archive, folder or URL, not empty"),
    ("ResNet", ["--lr_decay_epochs", "inf"], "--lr_decay_epochs has an item that is not a whole number: 'inf'; "
                                             "it " + DECAYS),
    ("ResNet", ["--lr_decay_steps", "1e400"], "--lr_decay_steps has an item that is not a whole number: '1e400'"),
    ("ResNet", ["--lr_decay_steps", "0,0"], "--lr_decay_steps " + DECAYS + ", got 0,0"),
    ("ResNet", ["--lr_decay_steps", "-5"], "--lr_decay_steps " + DECAYS + ", got -5"),
    ("ResNet", ["--lr_decay_steps", "300,200,300"], "--lr_decay_steps " + DECAYS + ", got 300,200,300"),
    ("ResNet", ["--lr_decay_steps", "1000000001"], "--lr_decay_steps " + DECAYS + ", got 1000000001"),
    ("ResNet", ["--lr_decay_steps", "300,200"], None),  # any order: the schedule applies each boundary once
    ("ResNet", ["--lr_decay_epochs", "1e2,150.0"], None),  # whole numbers, however written
    # the preset's decay is not dropped for an empty list, nor an epoch moved: 80.7 is not truncated to 80
    ("ResNet", ["--lr_decay_steps", ","], "--lr_decay_steps has an empty item: ','; it " + DECAYS),
    ("ResNet", ["--lr_decay_steps", " "], "--lr_decay_steps has an empty item: ' '; it " + DECAYS),
    ("ResNeXt", ["--lr_decay_epochs", "150,,225"], "--lr_decay_epochs has an empty item: '150,,225'"),
    ("ResNeXt", ["--lr_decay_epochs", "80.7,120"], "--lr_decay_epochs has an item that is not a whole number: "
                                                   "'80.7,120'; it " + DECAYS),
    ("ResNeXt", ["--lr_decay_epochs", "0.5"], "--lr_decay_epochs has an item that is not a whole number: '0.5'"),
    ("ResNeXt", ["--lr_decay_epochs", "x"], "--lr_decay_epochs has an item that is not a whole number: 'x'"),
    ("ResNet", ["--lr_decay_steps", ""], None),  # the empty string: no decay in steps (the original preset's epochs)
    ("Densenet", ["--layers", "inf"], "--layers takes 1 to 10 positive layer counts"),
    ("ResNeXt", ["--out_dims", "1e400"], "--out_dims takes three positive channel counts"),
    ("Densenet", ["--layers", "6.5,12"], "--layers takes 1 to 10 positive layer counts"),  # not 6,12
    ("ResNeXt", ["--out_dims", "64,,128,256"], "--out_dims takes three positive channel counts"),  # not 64,128,256
    ("ResNeXt", ["--stem_dim", "0"], "--stem_dim must be between 1 and 4096, got 0"),
    # built for minutes and took gigabytes
    ("ResNeXt", ["--out_dims", "64,128,25600"], "--out_dims takes channel counts of at most 4096 (four times the "
                                               "paper's widest stage, 1024), got 64,128,25600"),
    ("ResNeXt", ["--out_dims", "64,128,4096", "--shortcut", "projection"], None),
])
def test_a_value_out_of_range_is_one_line_not_a_crash_later(script, argv, error):
    """Each of these once got past the checks and failed deep inside NumPy or TensorFlow (a batch
    thread's traceback and a hang, an aborted process, a graph that could not be built)."""
    refused_or_accepted(script, argv, error)


@pytest.mark.parametrize("name", ["ResNeXt", "SE_ResNeXt", "Densenet", "ResNet"])
def test_help_shows_the_scripts_example_commands_line_by_line(name):
    """--help keeps the docstring's lines: its example commands, one per line as in the source (argparse
    reflowed them into one paragraph, where none could be copied), and still each flag's default."""
    import importlib
    module = importlib.import_module(name)
    text = settings.build_parser(name, module.PRESETS, module.__doc__).format_help()
    examples = [line for line in module.__doc__.splitlines() if line.startswith("    python ")]
    assert len(examples) >= 3 and all(line in text.splitlines() for line in examples), text
    assert "(default: 3)" in text  # --keep_checkpoints
