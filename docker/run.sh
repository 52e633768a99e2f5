#!/usr/bin/env bash
# docker/run.sh: run a command of the kit inside its Docker image, building the image first when
# this checkout has none yet.
#
#   docker/run.sh python ResNeXt.py [flags]     train on the GPUs (any model script works the same)
#   docker/run.sh                               a shell inside the container
#   docker/run.sh --help                        this text
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
#                    (both relative to the current folder, ~ allowed)
#   KIT_DOCKER       the client to call (default docker)
#   KIT_DOCKER_ARGS  more words for `docker run`, split on blanks, e.g. "--shm-size=1g"
#   KIT_DRY_RUN=1    print the docker commands instead of running them
#
# The kit's own run-time settings are passed into the container when set here:
#   KIT_MAX_STEPS    as it is (a training command ends after that step: for smoke tests)
#   KIT_DATA_SOURCE  a URL as it is (a file:// URL names a path inside the container); a path
#                    of this machine (relative to the current folder, ~ allowed) is mounted
#                    read-only at /opt/kit/source/<its name>, and KIT_DATA_SOURCE names that
# Not passed: KIT_ENV (./kit's, the image has one environment), and the test hooks
# KIT_TEST_KILL_AT and KIT_DUMP_VARIABLES (tests/ sets them for runs outside Docker); any other
# variable goes in through KIT_DOCKER_ARGS, e.g. "-e NAME=value".
#
# The image tag is tf1-residual-kit:<KIT_IMAGE>-<hash>, the hash covering the Dockerfile, its
# lock file and the files the image copies from this checkout (*.py, references.csv), with their
# executable bits, so any change to them builds a new image; Docker's layer cache keeps that
# quick when only the kit's code changed, as the Python layer comes first. The build context is
# a copy of just those files with fixed modes (0644, 0755 where executable), whatever the
# caller's umask, so the image is readable by every --user. `KIT_DRY_RUN=1 docker/run.sh`
# prints the tag on its first line (docker/README.md: building by hand under that tag).
# The container runs as the calling user (--user UID:GID) with HOME=/home/kit, so what it writes
# into the two mounted folders belongs to that user and outlives the container.
# With the default KIT_GPUS and a Docker without the NVIDIA runtime (no GPU, or no NVIDIA
# Container Toolkit), the command runs on the CPU after a one-line notice.
set -euo pipefail

# --help (or -h) as the first word: the comment above, without building or starting anything
# (in the container it would be a command that does not exist). A model script's --help goes
# after its name, as outside Docker: docker/run.sh python ResNeXt.py --help.
case "${1:-}" in
  -h|--help) sed -n '2,/^set -euo pipefail$/{/^set /d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
esac

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
variant="${KIT_IMAGE:-official}"
gpus="${KIT_GPUS:-all}"
gpus_explicit="${KIT_GPUS+set}"
docker_cmd="${KIT_DOCKER:-docker}"
dry_run="${KIT_DRY_RUN:-}"

die() { echo "docker/run.sh: $*" >&2; exit 2; }

# A model script named as the command: in the image /opt/kit is not on PATH and the scripts are
# not executable, so the container would only say "exec ResNeXt.py failed".
case "${1:-}" in
  *.py)
    if [[ "${1#./}" != */* ]] && { [[ "$1" != ./* ]] || [ ! -x "$repo/${1#./}" ]; }; then
      die "$1 is not a command in the image: run the script with python, as in docker/run.sh python ${1#./}"
    fi ;;
esac

case "$variant" in
  official) dockerfile="docker/Dockerfile";     lock="docker/requirements-py36.lock" ;;
  ngc)      dockerfile="docker/Dockerfile.ngc"; lock="docker/requirements-py38.lock" ;;
  *) die "unknown KIT_IMAGE '$variant': use official or ngc" ;;
esac

# Host folders: relative values count from the current folder, the defaults from the checkout; a
# leading ~ is the home folder, as in KIT_DATA_SOURCE (a quoted "~/data" reaches here unexpanded,
# and would otherwise make a folder named ~ in the current one).
abspath() {
  local path="$1"
  case "$path" in \~|\~/*) path="$HOME${path#\~}" ;; esac
  case "$path" in /*) printf '%s\n' "$path" ;; *) printf '%s\n' "$PWD/$path" ;; esac
}
data_dir="$(abspath "${KIT_DATA_DIR:-$repo/data}")"
runs_dir="$(abspath "${KIT_RUNS_DIR:-$repo/runs}")"
# named VARIABLE PATH: PATH as a message names it, "VARIABLE PATH" where the user set VARIABLE,
# else "PATH (the default of VARIABLE)".
named() {
  if [ -n "${!1:-}" ]; then printf '%s %s' "$1" "$2"; else printf '%s (the default of %s)' "$2" "$1"; fi
}
# check_folder VARIABLE PATH: stop unless PATH, the value of VARIABLE or its default, is a folder
# or missing (it is created before the container starts).
check_folder() {
  [ ! -e "$2" ] || [ -d "$2" ] || die "$(named "$1" "$2") is not a folder: set $1 to a folder (a missing one is created)."
  no_colon "$1" "$2"
}
# no_colon VARIABLE PATH: stop when PATH holds a ':', which ends the host part of
# `docker run -v HOST:INSIDE`, so that Docker refuses the mount ("invalid mode").
no_colon() {
  case "$2" in
    *:*) die "$(named "$1" "$2") holds a ':', which docker run -v cannot mount: set $1 to a path without one (a symlink to it will do)." ;;
  esac
}
# make_folder VARIABLE PATH: create PATH as the calling user (left to Docker it would belong to
# root), or stop saying why it cannot be.
make_folder() {
  local err
  err="$(mkdir -p -- "$2" 2>&1)" || die "cannot create $(named "$1" "$2") (${err##*: }): set $1 to a folder you can write."
}
check_folder KIT_DATA_DIR "$data_dir"
check_folder KIT_RUNS_DIR "$runs_dir"

if [ ! -f "$repo/$dockerfile" ] || [ ! -f "$repo/$lock" ]; then
  die "$dockerfile or $lock is missing from this checkout."
fi

# The files the image is built from, in a fixed order: the Dockerfile, its lock file, and what
# the Dockerfile copies from the checkout.
files=()
while IFS= read -r f; do files+=("$f"); done < <(
  cd "$repo" && LC_ALL=C && shopt -s nullglob && printf '%s\n' "$dockerfile" "$lock" *.py references.csv)

# mode_of FILE: the mode FILE gets in the build context, 755 if any execute bit is set, else 644.
mode_of() {
  local perms
  perms="$(ls -ld -- "$1")" || return 1
  case "${perms%% *}" in *x*) echo 755 ;; *) echo 644 ;; esac
}

# Each file's name, context mode and bytes. The first line names how the context is staged, so
# images staged before the modes were fixed (with the caller's umask, maybe unreadable to other
# users) never match a tag computed here.
digest="$(cd "$repo" && { printf 'context modes 644/755\n'; for f in "${files[@]}"; do
            printf '%s %s\n' "$f" "$(mode_of "$f")" && cat -- "$f" || exit 1
          done; } | sha256sum | cut -c1-12)" \
  || die "could not read ${files[*]} (references.csv must exist)."
image="tf1-residual-kit:${variant}-${digest}"

# The run command, without its --gpus words (gpu_args, settled below).
gpu_args=()
case "$gpus" in
  none|"") ;;
  *) gpu_args=(--gpus "$gpus") ;;
esac
run_options=(--user "$(id -u):$(id -g)"
             -e HOME=/home/kit
             -e KIT_DATA_DIR=/opt/kit/data
             -v "$data_dir:/opt/kit/data"
             -v "$runs_dir:/opt/kit/runs"
             -w /opt/kit)
if [ -n "${KIT_MAX_STEPS:-}" ]; then
  run_options+=(-e "KIT_MAX_STEPS=$KIT_MAX_STEPS")
fi
# A data source on this machine would not exist inside: mount it, under its own name, as the
# kit tells an extracted CIFAR folder from its parent by that name.
data_source="${KIT_DATA_SOURCE:-}"
case "$data_source" in
  "") ;;
  *://*) run_options+=(-e "KIT_DATA_SOURCE=$data_source") ;;
  *)
    case "$data_source" in \~|\~/*) data_source="$HOME${data_source#\~}" ;; esac
    [ -e "$data_source" ] || die "KIT_DATA_SOURCE $data_source does not exist: name an archive or a folder of this machine, or a URL."
    # Its absolute path without ./ or a trailing /, so that basename is its real name.
    if [ -d "$data_source" ]; then data_source="$(cd "$data_source" && pwd)"
    else data_source="$(cd "$(dirname "$data_source")" && pwd)/$(basename "$data_source")"; fi
    no_colon KIT_DATA_SOURCE "$data_source"
    inside="/opt/kit/source/$(basename "$data_source")"
    run_options+=(-v "$data_source:$inside:ro" -e "KIT_DATA_SOURCE=$inside") ;;
esac
if [ -n "${KIT_DOCKER_ARGS:-}" ]; then
  read -r -a extra <<< "$KIT_DOCKER_ARGS"
  run_options+=("${extra[@]}")
fi
command_args=("$@")
[ $# -gt 0 ] || command_args=(bash)

run_command() {
  local run=("$docker_cmd" run --rm --init -i)
  [ -t 0 ] && [ -t 1 ] && run+=(-t)
  # (${a[@]+"${a[@]}"}: an empty array under set -u, in bash before 4.4 too)
  run+=(${gpu_args[@]+"${gpu_args[@]}"} "${run_options[@]}" "$image" "${command_args[@]}")
  "$@" "${run[@]}"
}

if [ -n "$dry_run" ]; then
  printf '# image: %s\n' "$image"
  printf '# build, when %s is missing, from a folder CONTEXT holding (modes 644, or 755 if executable):' "$image"
  printf ' %s' "${files[@]}"; printf '\n'
  printf '%q' "$docker_cmd"; printf ' %q' build -f "CONTEXT/$dockerfile" -t "$image" CONTEXT; printf '\n'
  printf '# run (without --gpus when KIT_GPUS is unset and Docker has no NVIDIA runtime):\n'
  run_command printf '%q ' | sed 's/ $//'; printf '\n'
  exit 0
fi

command -v "$docker_cmd" >/dev/null 2>&1 || die "'$docker_cmd' not found: install Docker (and the NVIDIA Container Toolkit for --gpus)."

# The mounted folders, made now, so that one that cannot be stops the script before any build.
make_folder KIT_DATA_DIR "$data_dir"
make_folder KIT_RUNS_DIR "$runs_dir"

# docker_failed WHAT MESSAGE: stop with one line saying what to do about Docker's MESSAGE.
docker_failed() {
  local first="${2%%$'\n'*}"
  case "$2" in
    *"ermission denied"*)
      die "$1: Docker refused this user ($first): add $(id -un) to the docker group (usermod -aG docker $(id -un), then log in again), or run as root." ;;
    *"annot connect to the Docker daemon"*|*"s the docker daemon running"*)
      die "$1: no Docker daemon answers ($first): start it (e.g. systemctl start docker), or set DOCKER_HOST." ;;
    *) die "$1: $first" ;;
  esac
}

# Is the image there? Only Docker's "No such image" means no; any other failure is reported.
status=0
inspect_err="$("$docker_cmd" image inspect "$image" 2>&1 >/dev/null)" || status=$?
if [ "$status" -ne 0 ]; then
  case "$inspect_err" in
    *[Nn]"o such image"*|*[Nn]"o such object"*) ;;
    *) docker_failed "cannot ask Docker for $image" "$inspect_err" ;;
  esac
  echo "docker/run.sh: building $image from $dockerfile" >&2
  # The build context is a temporary folder with only the files hashed above, so nothing else of
  # the checkout (.venv-*, data/, runs/, .git) is sent to the builder, whichever builder it is;
  # their modes are set here, so the image is the same under any umask.
  context="$(mktemp -d "${TMPDIR:-/tmp}/kit-docker.XXXXXX")"
  stage() {
    local f
    cd "$repo" && cp --parents -- "${files[@]}" "$context/" || return 1
    find "$context" -type d -exec chmod 755 {} + || return 1
    for f in "${files[@]}"; do chmod "$(mode_of "$f")" "$context/$f" || return 1; done
  }
  (stage) || { rm -rf "$context"; die "could not stage the build context."; }
  # Ctrl-C reaches docker build too, which stops and exits as if it had failed: the trap tells the two apart.
  status=0 interrupted=""
  trap 'interrupted=1' INT
  "$docker_cmd" build -f "$context/$dockerfile" -t "$image" "$context" >&2 || status=$?
  trap - INT
  rm -rf "$context"
  if [ -n "$interrupted" ]; then
    echo "docker/run.sh: building $image interrupted: run the same command to build it again." >&2
    exit 130
  fi
  [ "$status" -eq 0 ] || die "building $image failed (see the output above)."
fi

# The default --gpus all needs the NVIDIA runtime; without it Docker says only "could not select
# device driver". Try it once with a command that does nothing, and fall back to the CPU.
if [ -z "$gpus_explicit" ] && [ ${#gpu_args[@]} -gt 0 ]; then
  status=0
  probe_err="$("$docker_cmd" run --rm "${gpu_args[@]}" --entrypoint true "$image" 2>&1 >/dev/null)" || status=$?
  case "$status:$probe_err" in
    0:*) ;;
    *"could not select device driver"*)
      echo "docker/run.sh: no NVIDIA GPU runtime in this Docker (--gpus $gpus: could not select device driver): running on the CPU; set KIT_GPUS=none to skip this check, or install the NVIDIA Container Toolkit for the GPUs." >&2
      gpu_args=() ;;
    *) die "docker run --gpus $gpus failed (${probe_err%%$'\n'*}): fix the NVIDIA runtime, or set KIT_GPUS=none to run on the CPU." ;;
  esac
fi

run_command exec
