"""The one place where the kit meets the installed TensorFlow.

Every other module does `from compat import tf, batch_norm, arg_scope` and then reads
like plain TF 1.x graph code, on TF 1.15 and on TF 2.x alike:

* `tf` is the TF1 API with TF1 semantics (graph mode, sessions, placeholders,
  reference variables). On TF 2.x that is `tf.compat.v1` with v2 behaviour disabled.
* `batch_norm` and `arg_scope` are `tf.contrib.layers`' on TF 1.15. TF 2 has no
  contrib; `tf_slim` ships the same code (same arguments, same variable names, so
  checkpoints are interchangeable). On TF >= 2.14 tf_slim needs two names that
  moved inside TensorFlow; they are aliased back before it is imported.
* `tf.layers` comes from Keras 2 on TF 2.x. TF 2.15 bundles Keras 2; TF 2.16 and later
  bundle Keras 3, which has no `tf.layers`, and need the `tf_keras` package (Keras 2)
  switched on by TF_USE_LEGACY_KERAS=1 before TensorFlow is imported: that is done here.

Nothing else differs: the model scripts and ops.py are the same text on both runtimes.
"""
import importlib.util
import os
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep C++ start-up chatter out of the logs

# TF >= 2.15 reads TF_USE_LEGACY_KERAS at import: set, it takes Keras from tf_keras. Where
# tf_keras is installed that is what TF >= 2.16 needs, so it is switched on unless the user
# chose otherwise; where it is absent the variable can only break things (TF 2.15 fails
# looking for tf_keras although its bundled Keras is Keras 2 already), so it is dropped.
if importlib.util.find_spec("tf_keras") is not None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
else:
    os.environ.pop("TF_USE_LEGACY_KERAS", None)

try:
    import tensorflow as _tf  # noqa: E402
except KeyboardInterrupt:  # Ctrl-C in the second or so TensorFlow takes to load: one line, as after it
    sys.stderr.write("error: stopped while TensorFlow was loading, before anything was read or written: run the "
                     "same command again\n")
    sys.exit(130)  # settings.EXIT_INTERRUPTED, as a Ctrl-C later gives

VERSION = _tf.__version__
TF2 = VERSION.startswith("2.")

try:  # both runtimes warn about every deprecated symbol they meet; the kit uses them on purpose.
    from tensorflow.python.util import deprecation as _deprecation
    _deprecation._PRINT_DEPRECATION_WARNINGS = False
except ImportError:
    pass
_tf.compat.v1.logging.set_verbosity(_tf.compat.v1.logging.ERROR)
# Keras 2 says the same through Python warnings, once per layer function, on TF 2.x.
warnings.filterwarnings("ignore", message=r"`tf\.layers\.\w+` is deprecated", category=UserWarning)


def _version_tuple(v):
    return tuple(int(p) for p in v.split("-")[0].split("rc")[0].split(".")[:2])


if TF2:
    tf = _tf.compat.v1
    tf.disable_v2_behavior()
    if _version_tuple(VERSION) >= (2, 16) and os.environ.get("TF_USE_LEGACY_KERAS") not in ("1", "true", "True"):
        raise ImportError("TensorFlow %s brings Keras 3, which has no tf.compat.v1.layers: install Keras 2 with "
                          "'pip install --no-deps tf-keras==%s.*' (and leave TF_USE_LEGACY_KERAS unset or 1), or use "
                          "TensorFlow 2.15 (requirements/tf2.txt)" % (VERSION, ".".join(VERSION.split(".")[:2])))
    from tensorflow.python.framework import ops as _ops
    from tensorflow.python.ops import control_flow_ops as _cfo
    try:  # TF >= 2.14 moved these; tf_slim 1.1.0 still looks for them at the old place.
        from tensorflow.python.framework import tensor as _tensor
        from tensorflow.python.ops import cond as _cond
        if not hasattr(_ops, "Tensor"):
            _ops.Tensor = _tensor.Tensor
        if not hasattr(_cfo, "cond"):
            _cfo.cond = _cond.cond
    except ImportError:  # TF < 2.14: both names are still where tf_slim looks
        pass
    try:
        import tf_slim as _slim
    except ImportError:
        raise ImportError("TensorFlow %s has no tf.contrib; the kit takes batch_norm from tf_slim instead: "
                          "'pip install tf_slim==1.1.0' (or use requirements/tf2.txt)" % VERSION)
    batch_norm = _slim.batch_norm
    arg_scope = _slim.arg_scope
else:
    tf = _tf
    from tensorflow.contrib.layers import batch_norm  # noqa: F401
    from tensorflow.contrib.framework import arg_scope  # noqa: F401


def kit_command(command):
    """`command` as ./kit runs it in the environment of this interpreter (`KIT_ENV=tf2 ./kit ...` in
    .venv-tf2, `./kit ...` in the default .venv-tf1), or None where this Python is not one of ./kit's
    .venv-<KIT_ENV> environments. For the advice the kit prints: ./kit installs tools such as
    TensorBoard in those environments, not on PATH."""
    venv = os.path.basename(sys.prefix)
    if not venv.startswith(".venv-"):
        return None
    env = venv[len(".venv-"):]
    return ("" if env == "tf1" else "KIT_ENV=%s " % env) + "./kit " + command
