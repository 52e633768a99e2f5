#!/usr/bin/env bash
# Optional: build Horovod 0.28.1 (TensorFlow + Gloo, no MPI) into the active kit environment,
# for data-parallel training with horovodrun (docs/horovod.md).
#
#   ./kit bash requirements/horovod.sh                  # into .venv-tf1 (TF 1.15.5, Python 3.7)
#   KIT_ENV=tf1-py36 ./kit bash requirements/horovod.sh # into .venv-tf1-py36
#   PYTHON=/path/to/venv/bin/python bash requirements/horovod.sh   # any venv that has TensorFlow
#
# Horovod ships no wheels: pip compiles its C++ core against the TensorFlow already installed,
# which takes 2 to 4 minutes of CPU time and needs gcc, g++, cmake >= 3.13 and the Python
# headers. 0.28.1 is the last release, and the only recent one that still builds against
# TF 1.15 (0.27.0 and older fail to compile there); it also builds against TF 2.15, not
# against TF >= 2.16.
# Gloo is Horovod's own transport (TCP between the processes), so no MPI is needed;
# `horovodrun --gloo` starts the processes, on one machine or over ssh on several.
# ./kit rebuilds its environment from scratch whenever a requirement file changes: run this
# script again after that.
set -euo pipefail

VERSION=0.28.1
py="${PYTHON:-python}"
die() { echo "horovod.sh: $*" >&2; exit 2; }

missing=""
for tool in gcc g++ cmake; do
  command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
[ -z "$missing" ] || die "missing build tools:$missing; install them first (Debian/Ubuntu: apt-get install -y build-essential cmake) and run this again."
cmake_v="$(cmake --version 2>/dev/null | sed -n 's/^cmake version \([0-9]*\.[0-9]*\).*/\1/p')" || cmake_v=""
[ -n "$cmake_v" ] || die "'cmake --version' does not run: reinstall cmake (>= 3.13) and run this again."
[ "$(printf '3.13\n%s\n' "$cmake_v" | sort -V | head -1)" = 3.13 ] \
  || die "cmake $cmake_v is too old: Horovod $VERSION needs cmake >= 3.13 (pip install cmake, or your package manager)."

command -v "$py" >/dev/null 2>&1 || die "no '$py' on PATH: run this through ./kit (./kit bash requirements/horovod.sh) or set PYTHON=/path/to/venv/bin/python."
tf_v="$("$py" -c 'import tensorflow as tf; print(tf.__version__)' 2>/dev/null)" \
  || die "$py cannot import tensorflow: run this through ./kit, or set PYTHON to a Python that has the kit's requirements installed."
case "$tf_v" in
  1.15.*|2.[0-9].*|2.1[0-5].*) ;;
  *) die "TensorFlow $tf_v is installed, but Horovod $VERSION builds only against TF 1.15 to 2.15: use KIT_ENV=tf1, tf1-py36 or tf2." ;;
esac

"$py" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
  || die "the C headers of $("$py" -c 'import sys; print("Python %d.%d" % sys.version_info[:2])') are missing: install them (Debian/Ubuntu: apt-get install -y python3-dev, or python3.X-dev for that version) and run this again."

if "$py" -c "import horovod, horovod.tensorflow as h; assert horovod.__version__ == '$VERSION' and h.gloo_built()" >/dev/null 2>&1; then
  echo "horovod.sh: Horovod $VERSION with TensorFlow and Gloo is already installed for $py"
  exit 0
fi

echo "horovod.sh: building Horovod $VERSION against TensorFlow $tf_v for $("$py" -c 'import sys; print(sys.executable)') (a few minutes of compiling)" >&2
# --no-build-isolation: the build must see the installed TensorFlow (its headers and library);
# setuptools >= 68 drops Python 3.7 and changes what horovod's setup.py relies on.
"$py" -m pip install -q "setuptools<68" wheel
HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 \
HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1 \
  "$py" -m pip install -q --no-build-isolation --no-cache-dir "horovod==$VERSION" \
  || die "building Horovod $VERSION failed (see the compiler's messages above)."

"$py" -c "import horovod.tensorflow as h; assert h.gloo_built(), 'Gloo missing'; print('horovod.sh: Horovod', __import__('horovod').__version__, 'built with TensorFlow and Gloo')" \
  || die "Horovod $VERSION installed but does not import with TensorFlow and Gloo (see above)."
