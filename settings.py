"""Every setting of the model scripts, declared once; no TensorFlow here.

A `Setting` says a flag's type, default, help, check and role. From the shared list `SETTINGS`
and each script's own list in `MODEL_SETTINGS` come the command-line parser (`build_parser`),
the defaults a preset starts from (`COMMON_DEFAULTS`), the checks (`check_common`) and the
resume and comparison policies (`with_policy`), which compare.py reads without importing
TensorFlow. Adding a flag is adding one `Setting`.

The role of a setting says what changing it does to a run:
  where     where things are, how the run is shown: free on resume, not part of the experiment
  keep      how training keeps its checkpoints (--fresh, --keep_checkpoints): as where, and --eval ignores it
  length    how long to go on (--epochs, --steps): free on resume, and --eval ignores it
  draw      which random draw (--seed): fixed on resume; runs differing only in it repeat one experiment
  label     the same experiment named or written otherwise (--dataset is its own column in compare,
            ResNeXt's --formulation builds the same function): fixed on resume
  training  how the network learns, not the function a checkpoint computes (--eval ignores it)
  measure   what the evaluation measures (--test_subset): fixed on resume, and --eval takes the command's
  network   what the network computes (the default): fixed on resume, and --eval follows the checkpoint
            (--train_subset too: the inputs are normalised with those images' statistics)
"""
from __future__ import division, print_function

import argparse
import collections
import math
import os

EXIT_USAGE, EXIT_DISK, EXIT_NAN, EXIT_INTERRUPTED = 2, 3, 4, 130

# role: the resume and comparison policies it belongs to (see with_policy)
ROLES = {"where": {"resumable", "bookkeeping"}, "keep": {"resumable", "bookkeeping", "training_only"},
         "length": {"resumable", "training_only"}, "draw": {"bookkeeping", "training_only"}, "label": {"bookkeeping"},
         "training": {"training_only"}, "measure": {"evaluation"}, "network": set()}


class KitError(Exception):
    """An error the user can fix: printed as one line, exit code `code`."""

    def __init__(self, message, code=EXIT_USAGE):
        super(KitError, self).__init__(message)
        self.code = code


def str2bool(v):
    if isinstance(v, bool):
        return v
    if v.lower() in ("1", "true", "yes", "y", "on"):
        return True
    if v.lower() in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError("expected true or false, got %r" % v)


def int_list(s):
    """"150,225" -> [150, 225], "" -> []; else a ValueError whose message reads after the flag's name."""
    items = str(s).replace(" ", "").split(",") if s not in (None, "") else []
    try:  # "150," or ",": a value dropped, not an empty list; 80.7: refused, never truncated to 80
        whole = "" not in items and all(math.isfinite(float(t)) and float(t) == int(float(t)) for t in items)
    except ValueError:  # a word
        whole = False
    if not whole:
        raise ValueError(("has an empty item: %r" if "" in items else "has an item that is not a whole number: %r") % s)
    return [int(float(t)) for t in items]


class Setting(collections.namedtuple("Setting", "name group help kind default preset choices check role aliases "
                                                "added_later extra needs")):
    """One flag. `kind`: a Python type, "bool" (--x, --x=false) or "switch" (store_true).
    `preset`: a preset may set it, so its default lives in COMMON_DEFAULTS and the parser's is
    None (the flag given or not). `check`: an interval the value must lie in, e.g. "(0, 10]", or
    (predicate, what it must be), for the one-line error "--name must be <what>, got <value>".
    `role`: see above. `added_later`: runs written before the setting existed trained with its
    default (`as_recorded`: compare.py and the resume checks read a missing value so). `extra`:
    more keywords for argparse's add_argument. `needs`: (setting, value), or (setting,
    (predicate, what it must be)), without which the flag does nothing, so that giving it
    otherwise is refused (resolve). A plain record (namedtuple: Python 3.6 has no dataclasses);
    build_parser, resolve and with_policy read it."""
    __slots__ = ()


Setting.__new__.__defaults__ = (None, str, None, False, None, None, "network", (), False, None, None)


class _GraphAction(argparse.Action):
    """--graph [DIR] is --summary plus the graph written out (print_summary does both)."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.summary = True


RUN, DATA, OPT = "run", "data", "optimisation"
HELP_FORMAT = type("HelpFormat", (argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter),
                   {})  # --help: each flag's default, and the docstring's lines kept (its example commands)
A_PATH = (lambda v: v.strip() != "", "a path, not empty")  # "" would fall back to the default silently
HARNESS = "reproduce the originals' harness bugs (all fixed by default)"
HOROVOD = "data-parallel training with horovodrun (docs/horovod.md)"
DECAYS = (lambda v: len(set(int_list(v))) == len(int_list(v)) and all(1 <= b <= 10 ** 9 for b in int_list(v)),
          "whole numbers from 1 to 1000000000 (the rate changes between steps, so after whole epochs), "
          "comma-separated, each once, in any order, e.g. 150,225, or '' for none")

SETTINGS = [
    Setting("preset", RUN, "original (the default): the original repository's code and recipe; paper: the paper's"),
    Setting("run_dir", RUN, "folder for logs and checkpoints (default runs/<model>-<preset>-<dataset>)", role="where",
            check=A_PATH),
    Setting("summary", RUN, "print each stage's output shape and the parameter total, and where the network's "
                            "architecture card is, then exit", kind="switch", role="where"),
    Setting("graph", RUN, "--summary, and write the graph for TensorBoard and graph.pbtxt (netron) to DIR "
                          "(default: RUN_DIR/graph)", extra=dict(nargs="?", const="", metavar="DIR", action=_GraphAction)),
    Setting("eval", RUN, "evaluate the latest checkpoint (or --ckpt_path) on the test set and exit", kind="switch",
            role="where"),
    Setting("ckpt_path", RUN, "checkpoint folder (runs/.../checkpoints/step-N) for --eval", role="where",
            check=A_PATH),
    Setting("fresh", RUN, "refuse to resume: fail if the run folder already has checkpoints", kind="switch",
            role="keep"),
    Setting("keep_checkpoints", RUN, "how many checkpoints to keep", int, 3, check=(lambda v: v >= 1, "at least 1"),
            role="keep"),
    Setting("ckpt_every_steps", RUN, "also checkpoint every N steps inside an epoch (0: per epoch only)", int, 0,
            check=(lambda v: v >= 0, "0 (per epoch only) or a number of steps"), role="keep"),
    Setting("threads", RUN, "TF intra/inter-op threads (0: TF decides)", int, 0, check="[0, 4096]", role="where"),
    Setting("progress", RUN, "progress bar", default="auto", choices=["auto", "on", "off"], role="where"),

    Setting("dataset", DATA, None, default="cifar10", preset=True, choices=["cifar10", "cifar100", "mnist"],
            role="label"),
    Setting("data_dir", DATA, "where archives are downloaded and extracted (env KIT_DATA_DIR)",
            default=lambda: os.environ.get("KIT_DATA_DIR", "data"), role="where", check=A_PATH),
    Setting("data_source", DATA, "a local archive, an extracted folder or a mirror URL (env KIT_DATA_SOURCE)",
            role="where", check=(A_PATH[0], "an archive, folder or URL, not empty")),
    Setting("trust_data", DATA, "vouch for a data folder or archive whose checksum does not match the official one",
            kind="switch", role="where"),
    Setting("dataset_label", DATA, "what the data really is, for the logs and compare (e.g. 'CIFAR-10 (JPEG)')",
            role="where", check=(A_PATH[0], "a name for the data, not blank, e.g. 'CIFAR-10 (JPEG)'")),
    Setting("train_subset", DATA, "use only the first N training images (0: all)", int, 0,
            check=(lambda v: v >= 0, "0 (all) or a number of images")),
    Setting("test_subset", DATA, "use only the first N test images (0: all)", int, 0,
            check=(lambda v: v >= 0, "0 (all) or a number of images"), role="measure"),
    Setting("augment", DATA, "random crop and flip during training", "bool", True, preset=True, role="training"),
    Setting("batches", DATA, "epoch: each epoch one permutation, its last batch short (taki0112); stream: the "
                             "epochs' permutations end to end and every batch full (chao-ji's "
                             "repeat-shuffle-batch); an epoch is ceil(images / batch_size) steps either way",
            default="epoch", preset=True, choices=["epoch", "stream"], role="training", added_later=True),
    Setting("normalization", DATA, "channel: per-channel (x-mean)/std; pixel_mean: subtract the per-pixel training "
                                   "mean; unit: x/255, pixels in [0, 1]",
            default="channel", preset=True, choices=["channel", "pixel_mean", "unit"]),

    Setting("epochs", OPT, None, int, 300, preset=True, check=(lambda v: v <= 100000, "at most 100000"),
            role="length"),
    Setting("steps", OPT, "stop after this many steps (wins over --epochs; --epochs alone replaces a preset's "
                         "steps)", int, 0, preset=True,
            check="[0, 1000000000]", role="length"),
    Setting("batch_size", OPT, None, int, 128, preset=True, check="[1, 65536]", role="training"),
    Setting("optimizer", OPT, None, default="momentum", preset=True, choices=["momentum", "adam"], role="training"),
    Setting("momentum", OPT, None, float, 0.9, preset=True, check="[0, 1)", role="training",
            needs=("optimizer", "momentum")),
    Setting("nesterov", OPT, "Nesterov momentum", "bool", True, preset=True, role="training",
            needs=("optimizer", "momentum")),
    Setting("adam_epsilon", OPT, None, float, 1e-8, preset=True, check="(0, 1]", role="training",
            needs=("optimizer", "adam")),
    Setting("lr", OPT, "initial learning rate", float, 0.1, preset=True, aliases=["init_lr"],
            check="(0, 10]", role="training"),
    Setting("lr_decay_epochs", OPT, "whole completed epochs, comma-separated, after which lr *= lr_decay_factor",
            default="", preset=True, role="training", check=DECAYS),
    Setting("lr_decay_steps", OPT, "the same in steps: step s trains at the lower rate once s >= the boundary "
                                   "(wins over --lr_decay_epochs; --lr_decay_epochs alone replaces a preset's "
                                   "steps)", default="", preset=True, role="training", check=DECAYS),
    Setting("lr_decay_factor", OPT, None, float, 0.1, preset=True, check="(0, 1]", role="training"),
    Setting("warmup_steps", OPT, "train at --warmup_lr for this many steps first", int, 0, preset=True,
            check="[0, 1000000000]", role="training"),
    Setting("warmup_lr", OPT, None, float, 0.01, preset=True, check="(0, 10]", role="training",
            needs=("warmup_steps", (lambda v: v > 0, "N (above 0)"))),
    Setting("weight_decay", OPT, "loss += weight_decay * sum(l2_loss(v))", float, 5e-4, preset=True,
            check="[0, 1)", role="training"),
    Setting("decay_on", OPT, "all trainable variables (taki0112) or conv/dense kernels only (chao-ji)",
            default="all", preset=True, choices=["all", "kernels"], role="training"),
    Setting("init", OPT, "kernel initialisation", default="glorot", preset=True, choices=["glorot", "he"],
            role="training"),
    Setting("bn_decay", OPT, "batch-norm moving-average decay", float, 0.9, preset=True,
            check="(0, 1)", role="training"),
    Setting("seed", OPT, None, int, 0, preset=True, check="[0, 4294967295]", role="draw"),  # NumPy's seed range

    Setting("test_own_stats", HARNESS, "normalise the test set with its own mean/std instead of the training set's",
            "bool", False, preset=True, needs=("normalization", (lambda v: v != "unit", "channel or pixel_mean"))),
    Setting("second_train_pass", HARNESS, "run a second training-mode forward pass per step to log train accuracy "
                                          "(updates the batch-norm statistics twice per step)",
            "bool", False, preset=True, role="training"),
    Setting("shuffle_once", HARNESS, "shuffle the training set once at load time instead of every epoch",
            "bool", False, preset=True, role="training"),

    Setting("horovod", HOROVOD, "use Horovod (implied when horovodrun or mpirun starts several processes)", "bool",
            role="training"),
    Setting("hvd_scale_lr", HOROVOD, "multiply the learning rate by the number of processes; --hvd_scale_lr=false "
                                     "keeps it (on by default)", "bool", role="training"),
    Setting("hvd_warmup_epochs", HOROVOD, "ramp the scaled learning rate up linearly over this many epochs "
                                          "(default 5; 0: none)", float, role="training"),
]
# Each model script's own settings, in its --help group. Their values come from the script's
# PRESETS (the parser's default is None); the architecture's checks are the script's `validate`.
# Declared here rather than in the scripts so that compare.py knows their roles without TensorFlow.
RESNEXT = [
    Setting("cardinality", None, "number of paths in split_layer (C)", int, check="[1, 64]"),
    Setting("depth", None, "channels of each path in the first stage (d)", int, check="[1, 1024]"),
    Setting("blocks", None, "residual blocks per stage (3 for ResNeXt-29)", int, check="[1, 100]"),
    Setting("stem_dim", None, "channels of first_layer's 3x3 conv", int, check="[1, 4096]"),
    Setting("out_dims", None, "block output channels of the three stages, comma-separated"),
    Setting("widen", None, "double the path width at every stage, as the paper does", "bool"),
    Setting("stride_on", None, "which conv of a path downsamples", choices=["1x1", "3x3"]),
    Setting("shortcut", None, "widening shortcut: average pool + zero-pad (original) or 1x1 conv + BN (paper)",
            choices=["pad", "projection"]),
    Setting("fc_bias", None, "bias in the final fully connected layer", "bool"),
    Setting("formulation", None, "how split_layer is built: one path at a time (literal, the original's code) or "
                                 "with the paths' 1x1 convs and BNs merged (fused: same function, faster to build "
                                 "and run)", choices=["fused", "literal"], role="label"),
]
MODEL_SETTINGS = {
    "ResNeXt": RESNEXT,
    "SE_ResNeXt": RESNEXT + [
        Setting("reduction_ratio", None, "r: the SE block's first fully connected layer has out_dim / r units", int),
        Setting("pre_merge_output", None, "a stage outputs its last block's SE output before the add and ReLU, as "
                                          "SENet-Tensorflow's code did before 2018-01-19 (afa2529)", "bool"),
    ],
    "Densenet": [
        Setting("growth_k", None, "growth rate k: channels each layer adds", int, check="[1, 1024]"),
        Setting("depth", None, "L of the paper's three equal blocks: (L-4)/3 layers each, (L-4)/6 with --bc "
                               "(0: 40, or 100 with --bc); L at most 500, with --layers too", int),
        Setting("layers", None, "layers of each dense block, comma-separated, e.g. 6,12,48,32 (instead of --depth)"),
        Setting("bc", None, "bottleneck layers (DenseNet-B), and with the paper's defaults compression 0.5 and a "
                            "first conv to 2k (DenseNet-BC)", "bool"),
        Setting("compression", None, "theta: a transition keeps floor(theta * channels) (0: 0.5 with --bc, else 1)",
                float, needs=("transition_k", False)),
        Setting("transition_k", None, "transitions convolve to growth_k channels, whatever their input (the "
                                      "originals before 2019-03-04) instead of --compression's share", "bool"),
        Setting("dropout_rate", None, "dropout after every conv but the first", float, check="[0, 1)",
                role="training"),
        Setting("stem", None, "the first conv (and pool)", choices=["3x3", "7x7s2", "7x7s2_maxpool"]),  # Densenet.STEMS
        Setting("stem_channels", None, "channels of the first conv (0: 2k with bottleneck layers, else 16)", int),
        Setting("conv_bias", None, "convolutions with a bias (Densenet_MNIST.py's)", "bool"),
    ],
    "ResNet": [
        Setting("num_layers", None, "weighted layers, 6n+2: 20, 32, 44, 56, 110, 1202 (n units per stage)", int),
        Setting("unit", None, "original: He et al. 2015's unit (Figure 2), conv-BN-ReLU-conv-BN, add, ReLU; preact: "
                              "He et al. 2016's full pre-activation unit (Figure 4(e)), BN-ReLU-conv-BN-ReLU-conv, "
                              "add; default: the preset's (--preset original: preact, --preset paper: original)",
                choices=["original", "preact"]),  # ResNet.UNITS
        # The original's README spells the flag with an s, its code without: accept both.
        Setting("shortcut_connections", None, "add the shortcut in every unit; false gives the plain net of He et "
                                              "al. 2015, section 4.2", "bool", aliases=["shortcut_connection"]),
        Setting("shortcut_downsample", None, "how a widening unit's shortcut halves the map: 2x2 average pool "
                                             "(original) or identity with stride 2 (the paper's option A)",
                choices=["avg_pool", "subsample"], needs=("shortcut_connections", True)),
        Setting("preact_bn_scale", None, "--unit preact: learn a gamma in the stand-alone BN-ReLUs (pre-activations "
                                         "and head); the original's slim defaults have none", "bool",
                needs=("unit", "preact")),
        Setting("preact_bn_decay", None, "--unit preact: moving-average decay of the stand-alone BN-ReLUs (0: the "
                                         "same as --bn_decay)", float, needs=("unit", "preact")),
        Setting("batch_norm_decay", None, "the original's name for --bn_decay: decay of the BNs that follow a conv",
                float, extra=dict(dest="bn_decay")),
        Setting("head", None, "classifier: the original's 1x1 conv with bias, or a dense layer with bias (the same "
                              "function)", choices=["conv", "dense"]),
        Setting("binary", None, "read the binary CIFAR-10 files (cifar-10-batches-bin) instead of the pickles "
                                "(the same images in the same order)", "bool", role="where"),
        Setting("path", None, "the original's flag: the cifar-10-batches-bin folder (or the binary archive); the "
                              "same as --data_source with --binary", role="where"),
        Setting("warmup_min_layers", None, "apply the preset's --warmup_steps only to nets at least this deep "
                                           "(paper: 110; 0: always)", int, role="training", check="[0, 2402]"),
    ],
}

COMMON_DEFAULTS = {s.name: s.default for s in SETTINGS if s.preset}
ADDED_SETTINGS = {s.name: s.default for s in SETTINGS if s.added_later}


def with_policy(policy):
    """The names of the settings whose role belongs to `policy`, over SETTINGS and MODEL_SETTINGS
    (read at each call, so a Setting added at run time counts):
      resumable      may differ when a run is resumed: where things are, and how long to go on
      bookkeeping    changes neither the network nor how it learns (where things are, how the run
                     is logged, which random draw, how ResNeXt's block is written): compare.py's
                     repeats of one experiment may differ in it
      training_only  shapes training only (how, or how long), not the function a checkpoint computes:
                     --eval ignores it"""
    return frozenset(s.name for s in sum(MODEL_SETTINGS.values(), SETTINGS) if policy in ROLES[s.role])


def as_recorded(saved):
    """The settings a run trained with, from those it recorded (config.json's "hparams"): a setting
    the kit gained after the run was written (Setting.added_later) is there with its default,
    the value that run trained with."""
    return dict(ADDED_SETTINGS, **saved)


def build_parser(model_name, presets, description):
    """The parser of a model script: every Setting, group by group in declaration order, with the
    model's own (MODEL_SETTINGS) before Horovod's; --preset chooses among `presets`. A "bool" is
    --x, --x=true or --x=false (the originals' README style)."""
    p = argparse.ArgumentParser(prog=model_name + ".py", description=description,
                                formatter_class=HELP_FORMAT)
    at = [s.group for s in SETTINGS].index(HOROVOD)
    groups = {}
    for s in SETTINGS[:at] + MODEL_SETTINGS.get(model_name, []) + SETTINGS[at:]:
        title = s.group or model_name
        if title not in groups:
            groups[title] = p.add_argument_group(title)
        kw = dict(dest=s.name, default=None if s.preset else (s.default() if callable(s.default) else s.default),
                  help=s.help)
        if s.kind == "switch":
            kw.update(action="store_true", default=False)
        elif s.kind == "bool":
            kw.update(type=str2bool, nargs="?", const=True, default=None)
        elif s.kind is not str:
            kw["type"] = s.kind
        choices = sorted(presets) if s.name == "preset" else s.choices
        if choices:
            kw["choices"] = choices
        kw.update(s.extra or {})
        groups[title].add_argument(*["--" + n for n in (s.name,) + tuple(s.aliases)], **kw)
    return p


class Hparams(dict):
    """A run's settings (a plain dict to config.json) and what `resolve` knew of them: `given`, the
    flags given on the command line; `overrides`, {name: value} of those among them that change the
    preset's experiment (config.json's "overrides": a run with any is not the preset's, compare.py says)."""
    given, overrides = frozenset(), {}


def resolve(args, presets, parser=None):
    """Preset values over COMMON_DEFAULTS, explicit flags over both; a flag that would do nothing
    in this run (Setting.needs) is refused. Returns an Hparams. `parser` (build_parser's) tells a
    flag given with its default from one not given."""
    hp = Hparams(COMMON_DEFAULTS)
    preset = dict(presets[args.preset or "original"])
    by_dataset = preset.pop("by_dataset", {})  # a preset's values for one dataset, e.g. the original MNIST script's
    hp.update(preset, preset=args.preset or "original")
    hp.update(by_dataset.get(args.dataset or hp["dataset"], {}))
    alone = dict(hp, dataset=args.dataset or hp["dataset"])  # what the preset gives without the other flags
    # Every flag has a key, None where neither the command line nor a preset gave it, so that
    # no code path can depend on a flag that only some commands pass.
    for k, v in vars(args).items():
        if v is not None or k not in hp:
            hp[k] = v
    hp.given = frozenset(k for k, v in vars(args).items()
                         if v is not None and (parser is None or v != parser.get_default(k)))
    # A count in epochs given alone replaces the preset's count in steps, rather than being outvoted by it.
    for epochs, steps in (("epochs", "steps"), ("lr_decay_epochs", "lr_decay_steps")):
        if epochs in hp.given and steps not in hp.given:
            hp[steps] = COMMON_DEFAULTS[steps]
    overrides = {}
    for s in sum(MODEL_SETTINGS.values(), SETTINGS):
        if s.name not in hp.given:
            continue
        if s.needs:
            other, want = s.needs
            ok, what = (want[0](hp[other]), want[1]) if isinstance(want, tuple) else (hp[other] == want, want)
            if not ok:
                raise KitError("--%s is used only with --%s %s, and this run has --%s %s: drop it, or add --%s %s"
                               % (s.name, other, what, other, hp[other], other, what))
        # where things are, how the run is logged, the random draw: the same experiment (see ROLES)
        if "bookkeeping" not in ROLES[s.role] and (s.name not in alone or hp[s.name] != alone[s.name]):
            overrides[s.name] = hp[s.name]
    hp.overrides = overrides
    return hp


def check_common(hp, model_name=None):
    """Each Setting's own check (the model's too), then the checks that involve two settings."""
    for s in SETTINGS + MODEL_SETTINGS.get(model_name, []):
        v = hp.get(s.name)
        if s.check is None or v is None:
            continue
        if isinstance(s.check, str):  # an interval: "[" and "]" include their end, "(" and ")" do not
            low, high = s.check[1:-1].split(", ")
            ok = isinstance(v, (int, float)) and math.isfinite(v)
            ok = ok and (v > float(low) if s.check[0] == "(" else v >= float(low))
            ok = ok and (v < float(high) if s.check[-1] == ")" else v <= float(high))
            what = "between %s and %s" % (low, high) if s.check[0] + s.check[-1] == "[]" else "in " + s.check
        else:
            try:
                ok, what = s.check[0](v), s.check[1]
            except ValueError as e:  # the check says what is wrong, e.g. int_list's "has an empty item: ','"
                raise KitError("--%s %s; it must be %s" % (s.name, e, s.check[1]))
        if not ok:
            raise KitError("--%s must be %s, got %s" % (s.name, what, v))
    if not (hp["epochs"] >= 1 or hp["steps"] >= 1):
        raise KitError("--epochs must be at least 1, got %s" % hp["epochs"])
    if hp["summary"] and hp["eval"]:
        raise KitError("--summary (or --graph) and --eval are two commands: give one of them")
    if hp.get("ckpt_path") and not hp["eval"]:
        raise KitError("--ckpt_path names a checkpoint to evaluate: add --eval (training writes its checkpoints to "
                       "--run_dir, and resumes from the newest there)")
    if "lr_decay_factor" in getattr(hp, "given", ()) and not (hp["lr_decay_epochs"] or hp["lr_decay_steps"]):
        raise KitError("--lr_decay_factor is used only with --lr_decay_epochs or --lr_decay_steps, and this run has "
                       "neither: drop it, or add --lr_decay_epochs N,M")


def hparams(model_name, presets, validate=None, argv=None):
    """The checked settings a model script would run with for `argv` (for tests and tools)."""
    parser = build_parser(model_name, presets, model_name)
    hp = resolve(parser.parse_args(argv), presets, parser)
    check_common(hp, model_name)
    if validate is not None:
        validate(hp)
    return hp
