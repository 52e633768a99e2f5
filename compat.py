"""The one place where the kit meets the installed TensorFlow.

Every other module does `from compat import tf, batch_norm, arg_scope` and then reads
like plain TF 1.x graph code, on TF 1.15 and on TF 2.x alike:

* `tf` is the TF1 API with TF1 semantics (graph mode, sessions, placeholders).
  On TF 2.x that is `tf.compat.v1` with v2 behaviour disabled.
* `batch_norm` and `arg_scope` are `tf.contrib.layers`' on TF 1.15. TF 2 has no
  contrib; `tf_slim` ships the same code (same arguments, same variable names, so
  checkpoints are interchangeable). On TF >= 2.14 tf_slim needs two names that
  moved inside TensorFlow; they are aliased back before it is imported.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep C++ start-up chatter out of the logs

import tensorflow as _tf  # noqa: E402

TF2 = _tf.__version__.startswith("2.")

if TF2:
    tf = _tf.compat.v1
    tf.disable_v2_behavior()
    from tensorflow.python.framework import ops as _ops
    from tensorflow.python.ops import control_flow_ops as _cfo
    try:  # TF >= 2.14 moved these; tf_slim still looks for them at the old place.
        from tensorflow.python.framework import tensor as _tensor
        from tensorflow.python.ops import cond as _cond
        if not hasattr(_ops, "Tensor"):
            _ops.Tensor = _tensor.Tensor
        if not hasattr(_cfo, "cond"):
            _cfo.cond = _cond.cond
    except ImportError:
        pass
    import tf_slim as _slim
    batch_norm = _slim.batch_norm
    arg_scope = _slim.arg_scope
else:
    try:  # TF 1.15 warns about every deprecated symbol it meets; the kit uses them on purpose.
        from tensorflow.python.util import deprecation as _deprecation
        _deprecation._PRINT_DEPRECATION_WARNINGS = False
    except ImportError:
        pass
    tf = _tf
    tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
    from tensorflow.contrib.layers import batch_norm  # noqa: F401
    from tensorflow.contrib.framework import arg_scope  # noqa: F401

VERSION = _tf.__version__
