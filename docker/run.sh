#!/usr/bin/env bash
# docker/run.sh: run a command of the kit inside its Docker image, building the image first when
# this checkout has none yet.
#
#   docker/run.sh python ResNeXt.py [flags]     train on the GPUs (any model script works the same)
#   docker/run.sh                               a shell inside the container
#
# Settings, all through the environment:
#   KIT_IMAGE        official (default): docker/Dockerfile, TF 1.15.5 + CUDA 10.0, GPUs up to Turing
#                    ngc: docker/Dockerfile.ngc, NVIDIA's TF 1.15.5 + CUDA 12.1, for Ampere
#   KIT_GPUS         the value of `docker run --gpus` (default all, e.g. device=0);
#                    none runs on the CPU, without --gpus
#   KIT_DATA_DIR     host folder of the datasets (default data/ in this checkout), seen inside as
#                    /opt/kit/data, where the kit looks by default
#   KIT_RUNS_DIR     host folder of logs and checkpoints (default runs/ in this checkout), seen
#                    inside as /opt/kit/runs, where the kit writes by default
#   KIT_DOCKER       the client to call (default docker)
#   KIT_DOCKER_ARGS  more words for `docker run`, split on blanks, e.g. "--shm-size=1g"
#   KIT_DRY_RUN=1    print the docker commands instead of running them
#
# The image tag is tf1-residual-kit:<KIT_IMAGE>-<hash>, the hash covering the Dockerfile, its
# lock file and the files the image copies from this checkout (*.py, references.csv), so any
# change to them builds a new image; Docker's layer cache keeps that quick when only the kit's
# code changed, as the Python layer comes first.
# The container runs as the calling user (--user UID:GID) with HOME=/home/kit, so what it writes
# into the two mounted folders belongs to that user and outlives the container.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
variant="${KIT_IMAGE:-official}"
gpus="${KIT_GPUS:-all}"
docker_cmd="${KIT_DOCKER:-docker}"
dry_run="${KIT_DRY_RUN:-}"

die() { echo "docker/run.sh: $*" >&2; exit 2; }

case "$variant" in
  official) dockerfile="docker/Dockerfile";     lock="docker/requirements-py36.lock" ;;
  ngc)      dockerfile="docker/Dockerfile.ngc"; lock="docker/requirements-py38.lock" ;;
  *) die "unknown KIT_IMAGE '$variant': use official or ngc" ;;
esac

# Host folders: relative values count from the current folder, the defaults from the checkout.
abspath() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }
data_dir="$(abspath "${KIT_DATA_DIR:-$repo/data}")"
runs_dir="$(abspath "${KIT_RUNS_DIR:-$repo/runs}")"

if [ ! -f "$repo/$dockerfile" ] || [ ! -f "$repo/$lock" ]; then
  die "$dockerfile or $lock is missing from this checkout."
fi

# The files the image is built from, in a fixed order: the Dockerfile, its lock file, and what
# the Dockerfile copies from the checkout.
files=()
while IFS= read -r f; do files+=("$f"); done < <(
  cd "$repo" && LC_ALL=C && shopt -s nullglob && printf '%s\n' "$dockerfile" "$lock" *.py references.csv)
digest="$(cd "$repo" && for f in "${files[@]}"; do printf '%s\n' "$f"; cat -- "$f" || exit 1; done | sha256sum | cut -c1-12)" \
  || die "could not read ${files[*]} (references.csv must exist)."
image="tf1-residual-kit:${variant}-${digest}"

run=("$docker_cmd" run --rm --init -i)
[ -t 0 ] && [ -t 1 ] && run+=(-t)
case "$gpus" in
  none|"") ;;
  *) run+=(--gpus "$gpus") ;;
esac
run+=(--user "$(id -u):$(id -g)"
      -e HOME=/home/kit
      -e KIT_DATA_DIR=/opt/kit/data
      -v "$data_dir:/opt/kit/data"
      -v "$runs_dir:/opt/kit/runs"
      -w /opt/kit)
if [ -n "${KIT_DOCKER_ARGS:-}" ]; then
  read -r -a extra <<< "$KIT_DOCKER_ARGS"
  run+=("${extra[@]}")
fi
run+=("$image")
if [ $# -gt 0 ]; then run+=("$@"); else run+=(bash); fi

if [ -n "$dry_run" ]; then
  printf '# build, when %s is missing, from a folder CONTEXT holding:' "$image"
  printf ' %s' "${files[@]}"; printf '\n'
  printf '%q' "$docker_cmd"; printf ' %q' build -f "CONTEXT/$dockerfile" -t "$image" CONTEXT; printf '\n'
  printf '# run:\n'
  printf '%q' "${run[0]}"; printf ' %q' "${run[@]:1}"; printf '\n'
  exit 0
fi

command -v "$docker_cmd" >/dev/null 2>&1 || die "'$docker_cmd' not found: install Docker (and the NVIDIA Container Toolkit for --gpus)."
if ! "$docker_cmd" image inspect "$image" >/dev/null 2>&1; then
  echo "docker/run.sh: building $image from $dockerfile" >&2
  # The build context is a temporary folder with only the files hashed above, so nothing else of
  # the checkout (.venv-*, data/, runs/, .git) is sent to the builder, whichever builder it is.
  context="$(mktemp -d "${TMPDIR:-/tmp}/kit-docker.XXXXXX")"
  (cd "$repo" && cp --parents -- "${files[@]}" "$context/") || { rm -rf "$context"; die "could not stage the build context."; }
  status=0
  "$docker_cmd" build -f "$context/$dockerfile" -t "$image" "$context" >&2 || status=$?
  rm -rf "$context"
  [ "$status" -eq 0 ] || die "building $image failed (see the output above)."
fi

# Create the mounted folders as the calling user; left to Docker they would belong to root.
mkdir -p "$data_dir" "$runs_dir"
exec "${run[@]}"
