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
# script again after that. The wheel it compiles is kept in HOROVOD_WHEEL_CACHE (default
# ~/.cache/kit/horovod), under a key of the Python, the TensorFlow version and a hash of
# TensorFlow's framework library, so that the next build against the same TensorFlow (a
# recreated environment, a fresh clone) installs it in seconds. HOROVOD_WHEEL_CACHE= (empty)
# compiles without keeping the wheel, as in a Dockerfile; delete the folder to drop the wheels.
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

build_env=(HOROVOD_WITH_TENSORFLOW=1 HOROVOD_WITH_GLOO=1 HOROVOD_WITHOUT_MPI=1 HOROVOD_WITHOUT_PYTORCH=1 HOROVOD_WITHOUT_MXNET=1)
# A wheel compiled against one TensorFlow links to that TensorFlow's framework library: the key
# names the library's content, not only the version (tensorflow, tensorflow-gpu and
# intel-tensorflow 1.15 are three builds).
cache="${HOROVOD_WHEEL_CACHE-${XDG_CACHE_HOME:-$HOME/.cache}/kit/horovod}"
wheel=""
if [ -n "$cache" ]; then
  key="$("$py" - <<'PY'
import glob, hashlib, os, sys
import tensorflow as tf
lib = sorted(glob.glob(os.path.join(tf.sysconfig.get_lib(), "libtensorflow_framework.so*")))
digest = hashlib.sha256()
for path in lib[:1]:
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
print("py%d.%d-tf%s-%s" % (sys.version_info[0], sys.version_info[1], tf.__version__, digest.hexdigest()[:12]))
PY
)" || die "$py could not hash TensorFlow's framework library: set HOROVOD_WHEEL_CACHE= (empty) to build without the cache."
  dir="$cache/$VERSION-$key"
  wheel="$(find "$dir" -maxdepth 1 -name "horovod-$VERSION-*.whl" 2>/dev/null | head -1 || true)"
fi

"$py" -m pip install -q "setuptools<68" wheel
if [ -n "$wheel" ]; then
  echo "horovod.sh: installing Horovod $VERSION from $wheel, compiled earlier against this TensorFlow $tf_v" >&2
  "$py" -m pip install -q "$wheel" || die "installing $wheel failed: delete $dir and run this again to compile it anew."
else
  echo "horovod.sh: building Horovod $VERSION against TensorFlow $tf_v for $("$py" -c 'import sys; print(sys.executable)') (a few minutes of compiling)" >&2
  # --no-build-isolation: the build must see the installed TensorFlow (its headers and library);
  # setuptools >= 68 drops Python 3.7 and changes what horovod's setup.py relies on.
  if [ -n "$cache" ]; then
    mkdir -p "$dir" || die "cannot create $dir: set HOROVOD_WHEEL_CACHE to a writable folder, or empty to build without it."
    tmp="$(mktemp -d "$dir/.build.XXXXXX")"
    env "${build_env[@]}" "$py" -m pip wheel -q --no-deps --no-build-isolation --no-cache-dir -w "$tmp" "horovod==$VERSION" \
      || { rm -rf "$tmp"; die "building Horovod $VERSION failed (see the compiler's messages above)."; }
    built="$(find "$tmp" -maxdepth 1 -name "horovod-$VERSION-*.whl" | head -1)"
    mv "$built" "$dir/" && rm -rf "$tmp"  # moved in whole: a build cut short leaves no wheel behind
    "$py" -m pip install -q "$dir/$(basename "$built")" || die "installing the Horovod wheel just built failed (see above)."
  else
    env "${build_env[@]}" "$py" -m pip install -q --no-build-isolation --no-cache-dir "horovod==$VERSION" \
      || die "building Horovod $VERSION failed (see the compiler's messages above)."
  fi
fi

"$py" -c "import horovod.tensorflow as h; assert h.gloo_built(), 'Gloo missing'; print('horovod.sh: Horovod', __import__('horovod').__version__, 'built with TensorFlow and Gloo')" \
  || die "Horovod $VERSION installed but does not import with TensorFlow and Gloo (see above)${dir:+; if it came from $dir, delete that folder and run this again}."
