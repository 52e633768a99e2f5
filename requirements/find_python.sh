# shellcheck shell=bash
# requirements/find_python.sh: the one search for a Python X.Y that ./kit (the Python of each
# environment), docker/standin/build.sh (the Python copied into a stand-in base image) and
# .ci/check-docker (the Pythons the lock files are installed with) share, so that all three find
# the same one. Sourced, not run.

# find_python X.Y: print the path of a Python X.Y, found the ways a machine usually offers one: on
# PATH (pythonX.Y, python3, python), then pyenv's newest X.Y.*, then uv's; return 1 when none is.
find_python() {
  local want="$1" cand v root
  for cand in "python$want" python3 python; do
    if command -v "$cand" >/dev/null 2>&1; then
      v="$("$cand" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true)"
      [ "$v" = "$want" ] && { command -v "$cand"; return 0; }
    fi
  done
  if command -v pyenv >/dev/null 2>&1; then
    root="$(pyenv root)"
    # Without a match the glob stays as written, and the -x test below rejects it.
    while IFS= read -r cand; do
      [ -x "$cand/bin/python$want" ] && { echo "$cand/bin/python$want"; return 0; }
    done < <(printf '%s\n' "$root"/versions/"$want".* | sort -V -r)
  fi
  if command -v uv >/dev/null 2>&1; then
    cand="$(uv python find "$want" 2>/dev/null || true)"
    [ -n "$cand" ] && { echo "$cand"; return 0; }
  fi
  return 1
}
