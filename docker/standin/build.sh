#!/usr/bin/env bash
# docker/standin/build.sh: build, without any image registry, a stand-in for the base image of
# docker/Dockerfile (or docker/Dockerfile.ngc) and tag it with the real image's exact name, so
# that the kit's Dockerfile builds unchanged on a machine that reaches only Debian's archive and
# a Python package index. For CI and for such machines; where the real image can be pulled,
# pull it instead (this script then leaves it alone).
#
#   docker/standin/build.sh [official|ngc]        (default official; run as root)
#
# official: tensorflow/tensorflow:1.15.5-gpu-py3. The real image is built by TensorFlow's
#   tensorflow/tools/dockerfiles/dockerfiles/gpu.Dockerfile: nvidia/cuda 10.0 on Ubuntu 18.04,
#   Ubuntu's python3 (3.6.9, /usr/bin/python3) and python3-pip, `pip3 install --upgrade pip
#   setuptools` (so pip at /usr/local/bin), `ln -s $(which python3) /usr/local/bin/python`,
#   then `pip3 install tensorflow-gpu==1.15.5`. numpy and h5py are what that install resolves
#   to: the wheel's metadata (tensorflow_gpu-1.15.5.dist-info/METADATA, read from the wheel on
#   PyPI) requires numpy<1.19.0,>=1.16.0, whose newest release is 1.18.5, and h5py<=2.10.0, so
#   2.10.0. The stand-in installs exactly those three pins, after the pip and setuptools that
#   were current when the wheel was published (2021-01-06): pip 20.3.3, setuptools 51.1.1.
# ngc: nvcr.io/nvidia/tensorflow:23.03-tf1-py3 (Ubuntu 20.04, Python 3.8, NVIDIA's TensorFlow
#   1.15.5 build). No TensorFlow 1.x for Python 3.8 is on PyPI (NVIDIA publishes theirs on its own
#   index only), so this stand-in has Python 3.8 and the four packages docker/Dockerfile.ngc
#   leaves to the base image (numpy, h5py, protobuf, six), but no TensorFlow: building
#   docker/Dockerfile.ngc on it installs the lock and passes the requirement check, then stops
#   at `import tensorflow`. The versions follow the requirements of NVIDIA's
#   tensorflow/tools/pip_package/setup.py as read in NVIDIA/tensorflow (numpy <1.19, h5py
#   <=2.10.0, protobuf >=3.6.1, six >=1.10); they were not checked against the 23.03 image.
#
# What differs from the real base (printed at the end of every run too):
#   * the distribution: Debian (this machine's release, by debootstrap) instead of Ubuntu;
#   * the Python: this machine's Python 3.6 (3.8 for ngc), found as ./kit finds one (PATH,
#     pyenv, uv), copied to /usr/local/bin/python3.X with its standard library in
#     /usr/local/lib/python3.X and packages in /usr/local/lib/python3.X/site-packages
#     (Ubuntu: /usr/bin/python3.X and /usr/local/lib/python3.X/dist-packages); /usr/bin/python3
#     and /usr/local/bin/python point at it as in the real image;
#   * no CUDA, cuDNN or NVIDIA libraries: TensorFlow runs on the CPU only;
#   * TensorFlow's other dependencies are the versions pip picks today, not on the real build day;
#   * it carries this machine's pip settings and CA bundle (docker/standin/pip_settings.py says
#     which, and leaves out settings that name local folders), so pip in it, and in the kit's
#     image built on it, reaches the package index this machine reaches.
#
# Steps: a Debian root file system by debootstrap (minbase, plus the packages of the libraries
# that the Pythons of both stand-ins link to, found with ldd and dpkg -S, so that one root file
# system serves both), imported as kit-standin-rootfs:<release>-<hash>; then
# docker/standin/Dockerfile on it. Both are reused while their inputs are unchanged: the
# stand-in carries a label kit.standin.key, a hash of this script, the Dockerfile, the Python
# and the carried settings, and a run whose key matches the existing image's does nothing.
#
# Settings: KIT_DOCKER (client, default docker), KIT_STANDIN_MIRROR (Debian mirror, default
# http://deb.debian.org/debian), KIT_STANDIN_SUITE (default this machine's release, else bookworm).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
variant="${1:-official}"
docker_cmd="${KIT_DOCKER:-docker}"
mirror="${KIT_STANDIN_MIRROR:-http://deb.debian.org/debian}"

die() { echo "docker/standin/build.sh: $*" >&2; exit 2; }
say() { echo "docker/standin/build.sh: $*"; }

case "$variant" in
  official)
    tag="tensorflow/tensorflow:1.15.5-gpu-py3"
    want=3.6
    pip_pins="pip==20.3.3 setuptools==51.1.1"
    packages="tensorflow-gpu==1.15.5 numpy==1.18.5 h5py==2.10.0"
    check="import tensorflow as tf, numpy, h5py; print('stand-in has tensorflow', tf.__version__, 'numpy', numpy.__version__, 'h5py', h5py.__version__)"
    real="Ubuntu 18.04, Python 3.6.9 at /usr/bin/python3, CUDA 10.0 and cuDNN 7" ;;
  ngc)
    tag="nvcr.io/nvidia/tensorflow:23.03-tf1-py3"
    want=3.8
    pip_pins=""  # the pip this Python bundles (ensurepip)
    packages="numpy==1.18.5 h5py==2.10.0 protobuf==3.20.3 six==1.16.0"
    check="import numpy, h5py, six, google.protobuf as pb; print('stand-in has numpy', numpy.__version__, 'h5py', h5py.__version__, 'protobuf', pb.__version__, 'and no tensorflow')"
    real="Ubuntu 20.04, Python 3.8 at /usr/bin/python3, NVIDIA's TensorFlow 1.15.5, CUDA 12.1" ;;
  *) die "unknown image '$variant': use official or ngc" ;;
esac

# find_python X.Y: the same search for a Python X.Y as ./kit's: on PATH, through pyenv, through uv.
# shellcheck source=requirements/find_python.sh
. "$here/../../requirements/find_python.sh" || die "requirements/find_python.sh is missing from this checkout."

# image_label TAG LABEL: the label's value; "" when the image has no such label; exit 1 when no
# image has the tag; exit 2 (with Docker's message) when Docker cannot be asked.
image_label() {
  local out
  if out="$("$docker_cmd" image inspect --format "{{ index .Config.Labels \"$2\" }}" "$1" 2>&1)"; then
    case "$out" in "<no value>") echo "" ;; *) echo "$out" ;; esac
    return 0
  fi
  case "$out" in *"No such image"*|*"No such object"*) return 1 ;; esac
  echo "$out" >&2
  return 2
}

differences() {
  cat <<EOF
docker/standin/build.sh: $tag here is a stand-in, not the real image ($real). It differs in:
  distribution: Debian $suite (debootstrap $mirror) instead of Ubuntu
  Python: $py_version from $py, at /usr/local/bin/python$want (/usr/bin/python3 and /usr/local/bin/python link to it), packages in /usr/local/lib/python$want/site-packages
  CUDA: none (no CUDA, cuDNN or NVIDIA libraries): TensorFlow runs on the CPU only
  packages: $packages as pinned; their other dependencies as pip resolves them today
  pip: this machine's settings and CA bundle (see above), at /etc/pip.conf
EOF
}

[ "$(id -u)" -eq 0 ] || die "run as root: debootstrap and the Debian root file system need it."
command -v "$docker_cmd" >/dev/null 2>&1 || die "'$docker_cmd' not found: install Docker (e.g. apt-get install docker.io)."
py="$(find_python "$want")" || die "no Python $want found (tried python$want on PATH, pyenv, uv). Install one, e.g. 'pyenv install $want', then run this again."
# Facts of that Python, as itself reports them: version, prefix, standard library, libpython.
IFS=$'\t' read -r py_version py_base py_stdlib py_libdir py_ldlibrary py_include < <("$py" -c '
import sys, sysconfig
v = sysconfig.get_config_var
print("\t".join([sys.version.split()[0], sys.base_prefix, sysconfig.get_path("stdlib"),
                 v("LIBDIR") or "", v("LDLIBRARY") or "", sysconfig.get_path("include")]))')
py_exe="$py_base/bin/python$want"
[ -x "$py_exe" ] || die "$py reports its prefix as $py_base, but $py_exe is missing: use a Python installed with its prefix (pyenv, or a distribution's)."
suite="${KIT_STANDIN_SUITE:-$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release 2>/dev/null)}"
suite="${suite:-bookworm}"

work="$(mktemp -d "${TMPDIR:-/tmp}/kit-standin.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/context/python" "$work/context/settings"

# 1. This machine's pip settings and CA bundle (small; part of the key).
"$py" "$here/pip_settings.py" "$work/context/settings" | sed 's/^/docker\/standin\/build.sh: /'

# 2. The key of the stand-in: if the image under $tag carries it, there is nothing to do.
key="$( {
  cat "$here/build.sh" "$here/Dockerfile" "$here/pip_settings.py"
  printf '%s\n' "$variant" "$suite" "$mirror" "$py_exe" "$py_version"
  sha256sum "$py_exe"
  [ -n "$py_ldlibrary" ] && [ -f "$py_libdir/$py_ldlibrary" ] && sha256sum "$py_libdir/$py_ldlibrary"
  (cd "$work/context/settings" && find . -type f | LC_ALL=C sort | xargs sha256sum)
} | sha256sum | cut -c1-16)"
status=0
current="$(image_label "$tag" kit.standin.key)" || status=$?
if [ "$status" -eq 2 ]; then
  die "cannot ask Docker about $tag (its message is above): start the Docker daemon, or run as a user who may use it."
elif [ "$status" -eq 0 ] && [ "$current" = "$key" ]; then
  say "$tag is up to date (stand-in key $key)"
  differences
  exit 0
elif [ "$status" -eq 0 ] && [ -z "$(image_label "$tag" kit.standin || true)" ]; then
  say "$tag is present and is not a stand-in (the real image?): left as it is"
  exit 0
fi

# 3. The Python: binary, libpython, headers and standard library, without its site-packages
# (ensurepip installs pip afresh) and without what the kit never imports.
say "copying Python $py_version from $py_base"
dest="$work/context/python"
mkdir -p "$dest/bin" "$dest/lib" "$dest/include"
cp -L "$py_exe" "$dest/bin/python$want"
tar -C "$(dirname "$py_stdlib")" -cf - \
  --exclude="python$want/site-packages" --exclude="python$want/test" --exclude="python$want/tkinter" \
  --exclude="python$want/idlelib" --exclude="python$want/turtledemo" --exclude='_tkinter*' \
  --exclude='config-*/*.a' "python$want" | tar -C "$dest/lib" -xf -
mkdir -p "$dest/lib/python$want/site-packages"
case "$py_ldlibrary" in
  *.so*) cp -a "$py_libdir"/"${py_ldlibrary%%.so*}".so* "$dest/lib/" ;;
esac
[ -d "$py_include" ] && cp -a "$py_include" "$dest/include/"
chmod -R u=rwX,go=rX "$work/context"

# 4. The Debian packages that hold the libraries this Python links to, and those of the other
# stand-in's Python when this machine has it, so that one root file system serves both.
command -v dpkg >/dev/null 2>&1 || die "dpkg not found: the stand-in is built on Debian, where dpkg -S maps $py's libraries to packages."
debs="ca-certificates"
for version in 3.6 3.8; do
  if [ "$version" = "$want" ]; then
    files=("$dest")
  else
    other="$(find_python "$version")" || continue
    files=("$("$other" -c 'import sys, sysconfig; print(sysconfig.get_path("platstdlib") + "/lib-dynload")')"
           "$("$other" -c 'import sys; print(sys.base_prefix)')/bin/python$version")
  fi
  libs="$(find "${files[@]}" -type f \( -name '*.so' -o -name '*.so.*' -o -name 'python3.*' \) ! -name '_tkinter*' -print0 \
          | xargs -0 ldd 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u)"
  while IFS= read -r lib; do
    case "$lib" in ""|*/libpython3*) continue ;; esac  # libpython comes with the Python
    owner="$(dpkg -S "$lib" 2>/dev/null || dpkg -S "/usr$lib" 2>/dev/null || dpkg -S "${lib#/usr}" 2>/dev/null \
             || dpkg -S "$(readlink -f "$lib")" 2>/dev/null)" \
      || die "no Debian package holds $lib (needed by Python $version): use a Python built against Debian's libraries (pyenv builds so)."
    debs="$debs,$(echo "$owner" | head -n1 | cut -d: -f1 | cut -d, -f1)"
  done <<< "$libs"
done
debs="$(tr ',' '\n' <<< "$debs" | sort -u | paste -sd, -)"
rootfs="kit-standin-rootfs:$suite-$(printf '%s\n' "$suite" "$mirror" "$debs" minbase-1 | sha256sum | cut -c1-12)"

# 5. The root file system, unless an earlier run imported the same one.
status=0
image_label "$rootfs" kit.standin >/dev/null || status=$?
if [ "$status" -eq 1 ]; then
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap not found: apt-get install debootstrap."
  say "debootstrap $suite (minbase, plus $debs) from $mirror"
  start=$SECONDS
  debootstrap --variant=minbase --include="$debs" "$suite" "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
    || { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap of $suite from $mirror failed (log above)."; }
  rm -rf "$work/rootfs"/var/cache/apt/archives/*.deb "$work/rootfs"/var/lib/apt/lists/*
  tar -C "$work/rootfs" -c . | "$docker_cmd" import --change 'LABEL kit.standin=rootfs' --change 'CMD ["bash"]' - "$rootfs" >/dev/null
  say "imported $rootfs ($((SECONDS - start)) s)"
elif [ "$status" -ne 0 ]; then
  die "cannot ask Docker about $rootfs (its message is above)."
else
  say "reusing $rootfs"
fi

# 6. The stand-in itself.
say "building $tag on $rootfs"
"$docker_cmd" build -f "$here/Dockerfile" -t "$tag" \
  --build-arg ROOTFS="$rootfs" --build-arg PYTHON_VERSION="$want" --build-arg PIP_PINS="$pip_pins" \
  --build-arg PACKAGES="$packages" --build-arg CHECK="$check" \
  --build-arg DESCRIPTION="stand-in for $tag, built by docker/standin/build.sh: not the real image" \
  --label kit.standin="$variant" --label kit.standin.key="$key" \
  "$work/context" || die "building the stand-in $tag failed (see the output above)."
differences
