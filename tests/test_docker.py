"""Checks of docker/ that need no Docker engine: the lock files, the Dockerfiles, docker/run.sh.

What needs a tool (bash, shellcheck, hadolint) is skipped, saying so, when the tool is absent.
Building and running the images needs Docker and a GPU: docker/README.md says how.
"""
import os
import re
import shutil
import stat
import subprocess

import pytest

from conftest import ROOT

RUN_SH = os.path.join(ROOT, "docker", "run.sh")
# Every shell script of the kit (docker/, CI's, ./kit, the Horovod build), and the file three of them
# source (not run): the list .ci/check-docker lints.
SCRIPTS = [RUN_SH] + [os.path.join(ROOT, *p) for p in (("docker", "standin", "build.sh"), (".ci", "check-docker"),
                                                        (".ci", "docker-e2e"), (".ci", "run"), ("kit",),
                                                        ("requirements", "horovod.sh"))]
SOURCED = [os.path.join(ROOT, "requirements", "find_python.sh")]

# Packages of requirements/tf1.txt that Python 3.6's matplotlib 3.3.4 does not require, so neither
# requirements/tf1-py36.txt nor the official image's lock has them.
PY36_NOT_NEEDED = {"fonttools", "packaging"}

# What each image is meant to be. The lock of an image adds the packages of requirements/tf1.txt,
# less TensorFlow, less what the base image ships as dependencies of its TensorFlow (left as
# shipped), plus what the added packages need on that Python, less what they do not need there.
IMAGES = {
    "official": {
        "dockerfile": "docker/Dockerfile",
        "lock": "docker/requirements-py36.lock",
        "base": "tensorflow/tensorflow:1.15.5-gpu-py3",
        # tensorflow-gpu 1.15.5 requires numpy<1.19.0,>=1.16.0 and h5py<=2.10.0: the image holds
        # numpy 1.18.5 and h5py 2.10.0, which the Dockerfile asserts.
        "base_ships": {"numpy", "h5py"},
        # tqdm 4.64.1 requires importlib-resources on Python < 3.7, which requires zipp.
        "extra": {"importlib-resources", "zipp"},
        # matplotlib 3.3.4, the last for Python 3.6, needs neither (3.5 on Python 3.7 does).
        "not_needed": PY36_NOT_NEEDED,
        # The pins for Python 3.6, shared with KIT_ENV=tf1-py36.
        "versions_from": "requirements/tf1-py36.txt",
    },
    "ngc": {
        "dockerfile": "docker/Dockerfile.ngc",
        "lock": "docker/requirements-py38.lock",
        "base": "nvcr.io/nvidia/tensorflow:23.03-tf1-py3",
        # Requirements of NVIDIA's TensorFlow 1.15.5 build, left as NVIDIA ships them.
        "base_ships": {"numpy", "h5py", "protobuf", "six"},
        "extra": set(),
        "not_needed": set(),
        "versions_from": "requirements/tf1.txt",
    },
}
TENSORFLOW_NAMES = re.compile(r"^(tensorflow|tf-nightly|tf-estimator|intel-tensorflow|nvidia-tensorflow)")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;\\]+)")


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def read(rel):
    with open(os.path.join(ROOT, rel)) as f:
        return f.read()


def logical_lines(text):
    """Lines with backslash continuations joined, comments and blank lines dropped."""
    out, cur = [], ""
    for line in text.splitlines():
        if not cur and line.strip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        cur += line
        if cur.strip():
            out.append(cur.strip())
        cur = ""
    if cur.strip():
        out.append(cur.strip())
    return out


def lock_entries(rel):
    """[(name, version, [sha256, ...], line)] of a hash-pinned lock file."""
    entries = []
    for line in logical_lines(read(rel)):
        m = PIN.match(line)
        entries.append((norm(m.group(1)) if m else None, m.group(2) if m else None,
                        re.findall(r"--hash=sha256:([0-9a-f]+)", line), line))
    return entries


def pins(rel):
    """{name: version} of the `name==version` lines of a requirements file."""
    out = {}
    for line in logical_lines(read(rel)):
        m = PIN.match(line)
        if m:
            out[norm(m.group(1))] = m.group(2)
    return out


def instructions(rel):
    """[(INSTRUCTION, arguments)] of a Dockerfile."""
    out = []
    for line in logical_lines(read(rel)):
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def pip_install_args(run_args):
    """The argument lists of every `pip install` in a RUN instruction."""
    found = []
    for m in re.finditer(r"pip3?\s+install\s+(.*?)(?=&&|\|\||;|\||$)", run_args):
        found.append(m.group(1).split())
    return found


def run(cmd, env=None, cwd=ROOT):
    full_env = dict(os.environ)
    for key in ("KIT_IMAGE", "KIT_GPUS", "KIT_DATA_DIR", "KIT_RUNS_DIR", "KIT_DOCKER",
                "KIT_DOCKER_ARGS", "KIT_DRY_RUN", "KIT_MAX_STEPS", "KIT_DATA_SOURCE"):
        full_env.pop(key, None)
    full_env.update(env or {})
    p = subprocess.Popen(cmd, cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, universal_newlines=True)
    out, err = p.communicate(timeout=120)
    return p.returncode, out, err


def need(tool):
    path = shutil.which(tool)
    if path is None:
        pytest.skip("%s is not installed here" % tool)
    return path


# ----------------------------------------------------------------------------- lock files

@pytest.mark.parametrize("image", sorted(IMAGES))
def test_every_lock_line_is_pinned_and_hashed(image):
    entries = lock_entries(IMAGES[image]["lock"])
    assert entries, "empty lock"
    for name, version, hashes, line in entries:
        assert name and version, "not pinned with ==: %s" % line
        assert not re.search(r"[*<>!~]", version), "not an exact pin: %s" % line
        assert hashes, "no --hash=sha256: on %s" % line
        for h in hashes:
            assert len(h) == 64, "not a sha256: %s" % h
    names = [e[0] for e in entries]
    assert len(names) == len(set(names)), "a package is listed twice"


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_lock_adds_exactly_what_the_base_image_lacks(image):
    spec = IMAGES[image]
    reference = set(pins("requirements/tf1.txt"))
    assert "tensorflow" in reference
    wanted = {n for n in reference if not TENSORFLOW_NAMES.match(n)} - spec["base_ships"] - spec["not_needed"] \
        | spec["extra"]
    locked = {e[0] for e in lock_entries(spec["lock"])}
    assert locked == wanted


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_lock_versions_match_the_kit_environment(image):
    spec = IMAGES[image]
    source = pins(spec["versions_from"])
    for name, version, _, _ in lock_entries(spec["lock"]):
        if name in source:
            assert version == source[name], "%s: lock %s, %s %s" % (name, version, spec["versions_from"], source[name])


def test_official_image_asserts_the_shipped_versions_of_the_kit_environment():
    """numpy and h5py come with the base image; the Dockerfile checks them against tf1-py36.txt."""
    text = read("docker/Dockerfile")
    py36 = pins("requirements/tf1-py36.txt")
    for name in sorted(IMAGES["official"]["base_ships"]) + ["tensorflow-gpu"]:
        assert "'%s==%s'" % (name, py36[name]) in text, name


def test_tf1_py36_environment_is_fully_pinned():
    text = read("requirements/tf1-py36.txt")
    lines = logical_lines(text)
    assert lines
    for line in lines:
        assert PIN.match(line), "not pinned with ==: %s" % line
    py36 = pins("requirements/tf1-py36.txt")
    assert py36["tensorflow-gpu"] == "1.15.5"
    assert set(py36) == set(pins("requirements/tf1.txt")) - {"tensorflow"} - PY36_NOT_NEEDED | {"tensorflow-gpu"}


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_no_lock_holds_tensorflow(image):
    for name, _, _, line in lock_entries(IMAGES[image]["lock"]):
        assert not TENSORFLOW_NAMES.match(name or ""), line


# ----------------------------------------------------------------------------- Dockerfiles

@pytest.mark.parametrize("image", sorted(IMAGES))
def test_from_is_the_pinned_base(image):
    spec = IMAGES[image]
    froms = [args for word, args in instructions(spec["dockerfile"]) if word == "FROM"]
    assert len(froms) == 1
    # The tag, optionally pinned further by digest (docker/README.md says how).
    assert re.match(r"^%s(@sha256:[0-9a-f]{64})?$" % re.escape(spec["base"]), froms[0]), froms[0]


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_dockerfile_installs_only_its_lock_and_never_tensorflow(image):
    spec = IMAGES[image]
    ins = instructions(spec["dockerfile"])
    copies = [args for word, args in ins if word == "COPY"]
    assert "%s /tmp/requirements.lock" % spec["lock"] in copies
    installs = [a for word, args in ins if word == "RUN" for a in pip_install_args(args)]
    assert len(installs) == 1, installs
    args = installs[0]
    for flag in ("--require-hashes", "--no-deps", "--no-cache-dir"):
        assert flag in args, flag
    assert args[args.index("-r") + 1] == "/tmp/requirements.lock"
    for word, line in ins:
        for install in pip_install_args(line) if word == "RUN" else []:
            for token in install:
                assert not TENSORFLOW_NAMES.match(norm(token.strip("'\""))), line


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_dockerfile_copies_the_kit_and_makes_writable_mount_points(image):
    text = read(IMAGES[image]["dockerfile"])
    assert re.search(r"^WORKDIR /opt/kit$", text, re.M)
    assert re.search(r"^COPY \*\.py references\.csv /opt/kit/$", text, re.M)
    assert "chmod 1777 /home/kit /opt/kit/data /opt/kit/runs" in text
    assert "HOME=/home/kit" in text


@pytest.mark.parametrize("image", sorted(IMAGES))
def test_dockerignore_sends_only_what_the_dockerfile_copies(image):
    spec = IMAGES[image]
    patterns = [l.strip() for l in read(spec["dockerfile"] + ".dockerignore").splitlines()
                if l.strip() and not l.strip().startswith("#")]
    assert patterns[0] == "*", "everything (.venv-*, data, runs, .git) must be left out first"
    assert set(patterns[1:]) == {"!*.py", "!references.csv", "!" + spec["lock"]}


def test_hadolint_passes_at_error_level():
    hadolint = need("hadolint")
    code, out, err = run([hadolint, "--no-color", "--failure-threshold", "error",
                          "docker/Dockerfile", "docker/Dockerfile.ngc", "docker/standin/Dockerfile"])
    assert code == 0, out + err


# ----------------------------------------------------------------------------- docker/run.sh

def test_run_sh_parses():
    bash = need("bash")
    for script in SCRIPTS + SOURCED:
        code, out, err = run([bash, "-n", script])
        assert code == 0, err
        assert os.stat(script).st_mode & stat.S_IXUSR or script in SOURCED, "%s is not executable" % script


def test_every_shell_script_is_linted():
    """A new script is linted by .ci/check-docker and parsed here, or this fails: the tracked files
    that start with a shell's #! line, and the sourced file, are exactly both lists."""
    tracked = subprocess.check_output(["git", "ls-files"], cwd=ROOT, universal_newlines=True).split()
    shell = set()
    for name in tracked:
        path = os.path.join(ROOT, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                if re.match(br"#!\S*(/|env )(ba)?sh\b", f.readline()):
                    shell.add(name)
    ours = set(os.path.relpath(p, ROOT) for p in SCRIPTS)
    assert shell == ours
    listed = re.search(r"^scripts=\((.*?)\)", open(os.path.join(ROOT, ".ci", "check-docker")).read(), re.S | re.M)
    assert set(listed.group(1).split()) == ours | set(os.path.relpath(p, ROOT) for p in SOURCED)


def test_shellcheck_passes():
    shellcheck = need("shellcheck")
    # -x: follow the `. requirements/find_python.sh` lines (their directives count from ROOT).
    code, out, err = run([shellcheck, "-x"] + SCRIPTS + SOURCED)
    assert code == 0, out + err


def dry_run(env=None, args=("python", "ResNeXt.py", "--summary"), script=RUN_SH, cwd=ROOT):
    need("bash")
    full = {"KIT_DRY_RUN": "1"}
    full.update(env or {})
    code, out, err = run(["bash", script] + list(args), env=full, cwd=cwd)
    assert code == 0, err
    lines = out.splitlines()
    build = [l for l in lines if " build " in l and not l.startswith("#")]
    runs = [l for l in lines if " run " in l and not l.startswith("#")]
    assert len(build) == 1 and len(runs) == 1, out
    return build[0], runs[0]


def test_run_sh_runs_as_the_calling_user_on_all_gpus_with_mounts():
    build, run_line = dry_run()
    words = run_line.split()
    assert words[:2] == ["docker", "run"]
    assert "--user %d:%d" % (os.getuid(), os.getgid()) in run_line
    assert "--gpus all" in run_line
    assert "-v %s/data:/opt/kit/data" % ROOT in run_line
    assert "-v %s/runs:/opt/kit/runs" % ROOT in run_line
    assert "-e HOME=/home/kit" in run_line
    assert run_line.endswith(" python ResNeXt.py --summary")
    image = re.search(r"tf1-residual-kit:official-[0-9a-f]{12}", run_line).group(0)
    assert "-f CONTEXT/docker/Dockerfile -t %s CONTEXT" % image in build


def test_run_sh_cpu_ngc_and_folders_from_the_environment(tmp_path):
    data, runs = str(tmp_path / "d"), str(tmp_path / "r")
    build, run_line = dry_run({"KIT_GPUS": "none", "KIT_IMAGE": "ngc", "KIT_DATA_DIR": data,
                               "KIT_RUNS_DIR": runs, "KIT_DOCKER_ARGS": "--shm-size=1g"}, args=())
    assert "--gpus" not in run_line
    assert "-f CONTEXT/docker/Dockerfile.ngc" in build
    assert re.search(r" tf1-residual-kit:ngc-[0-9a-f]{12} bash$", run_line), run_line
    assert "-v %s:/opt/kit/data" % data in run_line and "-v %s:/opt/kit/runs" % runs in run_line
    assert "--shm-size=1g" in run_line


def test_run_sh_relative_folders_count_from_the_current_folder(tmp_path):
    _, run_line = dry_run({"KIT_DATA_DIR": "d", "KIT_RUNS_DIR": "sub/r"}, cwd=str(tmp_path))
    assert "-v %s/d:/opt/kit/data" % tmp_path in run_line and "-v %s/sub/r:/opt/kit/runs" % tmp_path in run_line


def test_run_sh_folders_starting_with_a_tilde_are_in_the_home_folder(tmp_path):
    """A quoted "~/data" (an env file, a CI setting) reaches run.sh unexpanded."""
    _, run_line = dry_run({"KIT_DATA_DIR": "~/d", "KIT_RUNS_DIR": "~", "HOME": str(tmp_path / "home")},
                          cwd=str(tmp_path))
    assert "-v %s/home/d:/opt/kit/data" % tmp_path in run_line, run_line
    assert "-v %s/home:/opt/kit/runs" % tmp_path in run_line, run_line


def test_run_sh_passes_kit_max_steps_only_when_set():
    _, run_line = dry_run({"KIT_MAX_STEPS": "3"})
    assert " -e KIT_MAX_STEPS=3 " in run_line, run_line
    _, run_line = dry_run()
    assert "KIT_MAX_STEPS" not in run_line and "KIT_DATA_SOURCE" not in run_line, run_line


def test_run_sh_passes_a_data_source_url_as_it_is():
    _, run_line = dry_run({"KIT_DATA_SOURCE": "https://mirror.example/cifar/"})
    assert " -e KIT_DATA_SOURCE=https://mirror.example/cifar/ " in run_line, run_line
    assert "/opt/kit/source" not in run_line


def test_run_sh_mounts_a_host_data_source_read_only_under_its_name(tmp_path):
    # The kit recognises an extracted CIFAR folder by its name, so the mount keeps it.
    (tmp_path / "cifar-10-batches-py").mkdir()
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"")
    for given, name in (("cifar-10-batches-py/", "cifar-10-batches-py"),
                        ("./cifar-10-python.tar.gz", "cifar-10-python.tar.gz")):
        _, run_line = dry_run({"KIT_DATA_SOURCE": given}, cwd=str(tmp_path))
        inside = "/opt/kit/source/" + name
        assert " -v %s/%s:%s:ro " % (tmp_path, name, inside) in run_line, run_line
        assert " -e KIT_DATA_SOURCE=%s " % inside in run_line, run_line


def test_run_sh_refuses_a_missing_host_data_source(tmp_path):
    need("bash")
    code, out, err = run(["bash", RUN_SH, "true"], env={"KIT_DATA_SOURCE": str(tmp_path / "none.tar.gz"),
                                                       "KIT_DRY_RUN": "1"})
    assert code == 2 and err.startswith("docker/run.sh: KIT_DATA_SOURCE %s/none.tar.gz does not exist" % tmp_path)
    assert len(err.strip().splitlines()) == 1


def test_run_sh_refuses_an_unknown_image():
    need("bash")
    code, out, err = run(["bash", RUN_SH, "true"], env={"KIT_IMAGE": "cuda9", "KIT_DRY_RUN": "1"})
    assert code == 2 and err.startswith("docker/run.sh: unknown KIT_IMAGE 'cuda9': use official or ngc")
    assert len(err.strip().splitlines()) == 1


def test_run_sh_without_a_docker_client_says_what_to_install(tmp_path):
    need("bash")
    code, out, err = run(["bash", RUN_SH, "true"], env={"KIT_DOCKER": str(tmp_path / "no-docker")})
    assert code == 2 and "no-docker' not found: install Docker" in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("word", ["--help", "-h"])
def test_run_sh_help_prints_its_usage_without_docker(tmp_path, word):
    """In the container `--help` would be a command that does not exist, after building the image."""
    need("bash")
    env, log = fake_docker(tmp_path)
    code, out, err = run(["bash", RUN_SH, word], env=env)
    assert code == 0 and err == "", err
    assert out.startswith("docker/run.sh: run a command of the kit inside its Docker image")
    assert "KIT_IMAGE" in out and "KIT_DOCKER_ARGS" in out and "set -euo" not in out
    assert calls_of(log) == []
    # After a command, --help is that command's.
    _, run_line = dry_run(args=("python", "ResNeXt.py", "--help"))
    assert run_line.endswith(" python ResNeXt.py --help")


@pytest.mark.parametrize("word", ["ResNeXt.py", "./ResNeXt.py"])
def test_run_sh_says_to_run_a_script_with_python(tmp_path, word):
    """The image neither puts /opt/kit on PATH nor makes the scripts executable: tini would fail."""
    need("bash")
    env, log = fake_docker(tmp_path)
    code, out, err = run(["bash", RUN_SH, word, "--summary"], env=env)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("docker/run.sh: %s is not a command in the image" % word)
    assert "docker/run.sh python ResNeXt.py" in err
    assert calls_of(log) == []
    # A script given to python, or a path inside the container, goes through as it is.
    assert dry_run(args=("python", "ResNeXt.py"))[1].endswith(" python ResNeXt.py")
    assert dry_run(args=("/opt/kit/x.py",))[1].endswith(" /opt/kit/x.py")


def test_run_sh_refuses_folders_it_cannot_mount_before_asking_docker(tmp_path):
    """A file given as a folder, or a folder that cannot be made: one line, before any build."""
    need("bash")
    a_file = tmp_path / "notes.txt"
    a_file.write_text(u"")
    code, out, err = run(["bash", RUN_SH, "true"], env={"KIT_DATA_DIR": str(a_file), "KIT_DRY_RUN": "1"})
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("docker/run.sh: KIT_DATA_DIR %s is not a folder: set KIT_DATA_DIR to a folder" % a_file)

    env, log = fake_docker(tmp_path, KIT_DATA_DIR=str(tmp_path / "data"), KIT_RUNS_DIR=str(a_file / "runs"))
    code, out, err = run(["bash", RUN_SH, "true"], env=env)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("docker/run.sh: cannot create KIT_RUNS_DIR %s/runs (Not a directory)" % a_file), err
    assert calls_of(log) == []


def test_run_sh_refuses_a_host_path_with_a_colon(tmp_path):
    """Docker reads `-v a:b:/opt/kit/data` as a mount of a at b, with the mode /opt/kit/data."""
    need("bash")
    odd = tmp_path / "a:b"
    odd.mkdir()
    for name in ("KIT_DATA_DIR", "KIT_RUNS_DIR", "KIT_DATA_SOURCE"):
        code, out, err = run(["bash", RUN_SH, "true"], env={name: str(odd), "KIT_DRY_RUN": "1"})
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert err.startswith("docker/run.sh: %s %s holds a ':', which docker run -v cannot mount: set %s to a "
                              "path without one" % (name, odd, name)), err
    # The checkout's own path, through the defaults.
    repo = make_checkout(odd)
    code, out, err = run(["bash", str(repo / "docker" / "run.sh"), "true"], env={"KIT_DRY_RUN": "1"})
    assert code == 2 and err.startswith("docker/run.sh: %s/data (the default of KIT_DATA_DIR) holds a ':'" % repo)


def make_checkout(tmp_path):
    """A minimal checkout: docker/ as in this one, one module and references.csv."""
    repo = tmp_path / "repo"
    (repo / "docker").mkdir(parents=True)
    for name in ("run.sh", "Dockerfile", "Dockerfile.ngc", "requirements-py36.lock", "requirements-py38.lock"):
        shutil.copy2(os.path.join(ROOT, "docker", name), str(repo / "docker" / name))
    (repo / "model.py").write_text(u"print('model')\n")
    (repo / "references.csv").write_text(u"model,error\n")
    return repo


def image_of(repo):
    _, run_line = dry_run(script=str(repo / "docker" / "run.sh"), cwd=str(repo))
    return re.search(r"tf1-residual-kit:official-[0-9a-f]{12}", run_line).group(0)


def test_run_sh_tag_follows_the_dockerfile_lock_and_code(tmp_path):
    repo = make_checkout(tmp_path)
    first = image_of(repo)
    assert image_of(repo) == first
    with open(str(repo / "docker" / "requirements-py36.lock"), "a") as f:
        f.write("# changed\n")
    second = image_of(repo)
    assert second != first
    (repo / "model.py").write_text(u"print('model, changed')\n")
    third = image_of(repo)
    assert third not in (first, second)
    with open(str(repo / "docker" / "Dockerfile"), "a") as f:
        f.write("# changed\n")
    assert image_of(repo) not in (first, second, third)


# A stand-in docker client: logs its arguments; `image inspect` answers as Docker does for a
# missing image, or prints FAKE_INSPECT_ERR; `build` lists the context with each file's mode;
# FAKE_BUILD_INTERRUPTED: Ctrl-C during the build, which reaches run.sh and stops the build;
# `run --gpus ... --entrypoint true` (run.sh's probe) fails with FAKE_GPU_ERR when set.
FAKE_DOCKER = u"""#!/usr/bin/env bash
echo "$*" >> "$FAKE_LOG"
case "$1" in
  image) if [ -n "$FAKE_INSPECT_ERR" ]; then echo "$FAKE_INSPECT_ERR" >&2; exit 1; fi
         [ -n "$FAKE_HAS_IMAGE" ] || { echo "Error: No such image: $3" >&2; exit 1; } ;;
  build) ctx="${!#}"; (cd "$ctx" && find . -type f | LC_ALL=C sort | sed 's/^/context: /'
                       find . | LC_ALL=C sort | xargs stat -c 'mode: %a %n') >> "$FAKE_LOG"
         if [ -n "$FAKE_BUILD_INTERRUPTED" ]; then kill -INT "$PPID"; exit 1; fi
         [ -z "$FAKE_BUILD_FAILS" ] ;;
  run) case "$* " in
         *" --gpus "*"--entrypoint true "*) [ -z "$FAKE_GPU_ERR" ] || { echo "$FAKE_GPU_ERR" >&2; exit 125; } ;;
       esac
       exit 0 ;;
  *) exit 9 ;;
esac
"""


def fake_docker(tmp_path, **settings):
    """(env, log path) for running docker/run.sh against FAKE_DOCKER with FAKE_* `settings`."""
    fake = tmp_path / "docker"
    fake.write_text(FAKE_DOCKER)
    fake.chmod(0o755)
    log = tmp_path / "log"
    log.write_text(u"")
    scratch = tmp_path / "tmp"  # TMPDIR: where the build context is staged
    scratch.mkdir(exist_ok=True)
    env = {"KIT_DOCKER": str(fake), "FAKE_LOG": str(log), "TMPDIR": str(scratch), "FAKE_HAS_IMAGE": "",
           "FAKE_INSPECT_ERR": "", "FAKE_GPU_ERR": "", "FAKE_BUILD_FAILS": "", "FAKE_BUILD_INTERRUPTED": ""}
    env.update(settings)
    return env, log


def calls_of(log):
    """The docker commands run.sh ran, without the build's context listing."""
    return [c for c in log.read_text().splitlines() if not c.startswith(("context: ", "mode: "))]


def test_run_sh_builds_a_missing_image_from_a_minimal_context_then_runs(tmp_path):
    need("bash")
    repo = make_checkout(tmp_path)
    env, log = fake_docker(tmp_path)
    scratch = env["TMPDIR"]
    code, out, err = run(["bash", str(repo / "docker" / "run.sh"), "python", "model.py"], env=env, cwd=str(repo))
    assert code == 0, err
    calls = log.read_text().splitlines()
    assert calls[0].startswith("image inspect tf1-residual-kit:official-")
    assert calls[1].startswith("build -f %s/kit-docker." % scratch)
    context = sorted(l[len("context: "):] for l in calls if l.startswith("context: "))
    assert context == sorted(["./docker/Dockerfile", "./docker/requirements-py36.lock",
                              "./model.py", "./references.csv"])
    assert calls[-1].startswith("run ") and calls[-1].endswith(" python model.py")
    assert "--user %d:%d" % (os.getuid(), os.getgid()) in calls[-1]
    # The mounted folders exist on the host before the container starts; the context is gone.
    assert (repo / "data").is_dir() and (repo / "runs").is_dir()
    assert os.listdir(scratch) == []

    # A failed build: an error, nothing run, the context removed all the same.
    log.write_text(u"")
    env["FAKE_BUILD_FAILS"] = "1"
    code, out, err = run(["bash", str(repo / "docker" / "run.sh"), "true"], env=env, cwd=str(repo))
    assert code == 2 and "building tf1-residual-kit:official-" in err and "failed (see the output above)" in err
    assert [c.split()[0] for c in calls_of(log)] == ["image", "build"]
    assert os.listdir(scratch) == []
    env["FAKE_BUILD_FAILS"] = ""

    # Ctrl-C during the build: said as such (exit 130), nothing run, the context removed.
    log.write_text(u"")
    env["FAKE_BUILD_INTERRUPTED"] = "1"
    code, out, err = run(["bash", str(repo / "docker" / "run.sh"), "true"], env=env, cwd=str(repo))
    assert code == 130 and err.strip().splitlines()[-1].endswith(
        " interrupted: run the same command to build it again."), err
    assert [c.split()[0] for c in calls_of(log)] == ["image", "build"]
    assert os.listdir(scratch) == []
    env["FAKE_BUILD_INTERRUPTED"] = ""

    # With the image present, nothing is built: the GPU probe, then the command.
    log.write_text(u"")
    env["FAKE_HAS_IMAGE"] = "1"
    code, out, err = run(["bash", str(repo / "docker" / "run.sh"), "true"], env=env, cwd=str(repo))
    assert code == 0, err
    assert [c.split()[0] for c in calls_of(log)] == ["image", "run", "run"]


def run_sh(repo, env, *args):
    return run(["bash", str(repo / "docker" / "run.sh")] + list(args), env=env, cwd=str(repo))


def test_run_sh_falls_back_to_the_cpu_without_an_nvidia_runtime(tmp_path):
    """Docker without the NVIDIA runtime answers --gpus with only "could not select device driver"."""
    need("bash")
    repo = make_checkout(tmp_path)
    no_driver = 'docker: Error response from daemon: could not select device driver "" with capabilities: [[gpu]].'
    env, log = fake_docker(tmp_path, FAKE_HAS_IMAGE="1", FAKE_GPU_ERR=no_driver)
    code, out, err = run_sh(repo, env, "python", "ResNeXt.py", "--summary")
    assert code == 0, err
    probe, final = calls_of(log)[1:]
    assert "--gpus all" in probe and "--entrypoint true" in probe
    assert "--gpus" not in final and final.endswith(" python ResNeXt.py --summary")
    notice = err.strip().splitlines()
    assert len(notice) == 1 and "no NVIDIA GPU runtime" in notice[0] and "running on the CPU" in notice[0]
    assert "KIT_GPUS=none" in notice[0]

    # With a working runtime the probe passes and the command gets --gpus all, silently.
    env, log = fake_docker(tmp_path, FAKE_HAS_IMAGE="1")
    code, out, err = run_sh(repo, env, "true")
    assert code == 0 and err == ""
    assert "--gpus all" in calls_of(log)[-1] and "--entrypoint" not in calls_of(log)[-1]


def test_run_sh_asks_no_probe_when_kit_gpus_is_set(tmp_path):
    need("bash")
    repo = make_checkout(tmp_path)
    for gpus, expected in (("all", "--gpus all"), ("device=1", "--gpus device=1"), ("none", None)):
        env, log = fake_docker(tmp_path, FAKE_HAS_IMAGE="1", KIT_GPUS=gpus, FAKE_GPU_ERR="could not select device driver")
        code, out, err = run_sh(repo, env, "true")
        assert code == 0, err
        calls = calls_of(log)
        assert [c.split()[0] for c in calls] == ["image", "run"], calls
        assert (expected in calls[-1]) if expected else ("--gpus" not in calls[-1])


def test_run_sh_stops_on_another_gpu_failure_saying_what_to_set(tmp_path):
    need("bash")
    repo = make_checkout(tmp_path)
    env, log = fake_docker(tmp_path, FAKE_HAS_IMAGE="1",
                           FAKE_GPU_ERR="nvidia-container-cli: initialization error: nvml error: driver not loaded")
    code, out, err = run_sh(repo, env, "true")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "driver not loaded" in err and "KIT_GPUS=none" in err
    assert len(calls_of(log)) == 2  # inspect and the probe; the command never ran


@pytest.mark.parametrize("message, advice", [
    ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?",
     "start it"),
    ("permission denied while trying to connect to the Docker daemon socket at unix:///var/run/docker.sock: "
     "Get \"http://%2Fvar%2Frun%2Fdocker.sock/v1.24/images/json\": dial unix /var/run/docker.sock: connect: "
     "permission denied", "docker group"),
    ("error during connect: this error may indicate that the docker daemon is not running", "error during connect"),
])
def test_run_sh_reports_docker_failures_instead_of_building(tmp_path, message, advice):
    """Only Docker's "No such image" means the image is missing; anything else is said as it is."""
    need("bash")
    repo = make_checkout(tmp_path)
    env, log = fake_docker(tmp_path, FAKE_INSPECT_ERR=message)
    code, out, err = run_sh(repo, env, "true")
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("docker/run.sh: cannot ask Docker for tf1-residual-kit:official-")
    assert advice in err and message.split(":")[0] in err
    assert "building" not in err
    assert [c.split()[0] for c in calls_of(log)] == ["image"]


def built_context(tmp_path, repo, umask):
    """{path: mode} of the build context run.sh stages under `umask`, and the image tag."""
    env, log = fake_docker(tmp_path)
    code, out, err = run(["bash", "-c", "umask %s && exec bash docker/run.sh true" % umask], env=env, cwd=str(repo))
    assert code == 0, err
    modes = dict(reversed(l[len("mode: "):].split(" ", 1)) for l in log.read_text().splitlines()
                 if l.startswith("mode: "))
    return modes, image_of(repo)


def test_run_sh_context_modes_do_not_follow_the_umask(tmp_path):
    """Under umask 077 the image used to get mode-600 modules (Permission denied for every --user)."""
    need("bash")
    repo = make_checkout(tmp_path)
    (repo / "model.py").chmod(0o600)  # a checkout made under umask 077
    (repo / "tool.py").write_text(u"print('tool')\n")
    (repo / "tool.py").chmod(0o700)
    modes, tag = built_context(tmp_path, repo, "077")
    assert modes["./model.py"] == "644" and modes["./references.csv"] == "644"
    assert modes["./docker/Dockerfile"] == "644" and modes["./tool.py"] == "755"
    assert modes["."] == "755" and modes["./docker"] == "755"
    again, tag_again = built_context(tmp_path, repo, "022")
    assert again == modes and tag_again == tag
    # The executable bit reaches the image, so it is part of the tag.
    (repo / "tool.py").chmod(0o600)
    assert image_of(repo) != tag


def test_run_sh_tag_differs_from_tags_of_contexts_staged_with_the_umask(tmp_path):
    """The tag's hash names the staging rule, so images staged before the fix are never reused."""
    need("bash")
    repo = make_checkout(tmp_path)
    old = subprocess.check_output(
        ["bash", "-c", 'for f in "$@"; do printf "%s\\n" "$f"; cat -- "$f"; done | sha256sum | cut -c1-12', "_",
         "docker/Dockerfile", "docker/requirements-py36.lock", "model.py", "references.csv"],
        cwd=str(repo), universal_newlines=True).strip()
    assert image_of(repo) != "tf1-residual-kit:official-" + old


def readme_build_by_hand():
    """The shell block of docker/README.md's "Build and run by hand" section."""
    text = read("docker/README.md")
    section = text.split("## Build and run by hand", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


def test_readme_builds_by_hand_under_the_tag_run_sh_uses(tmp_path):
    need("bash")
    block = readme_build_by_hand()
    tags = re.findall(r'-t "?(\S+?)"? ', block)
    assert tags and all(t.startswith("$") for t in tags), "a fixed tag that run.sh never looks for: %s" % tags
    # Run the block's tag lines (before its docker commands) and compare with run.sh's own tags.
    setup = "\n".join(l for l in block.splitlines() if re.match(r"^\w+=", l))
    code, out, err = run(["bash", "-c", setup + '\necho "$tag $tag_ngc"'])
    assert code == 0, err
    tag, tag_ngc = out.split()
    assert tag.startswith("tf1-residual-kit:official-") and tag_ngc.startswith("tf1-residual-kit:ngc-")
    assert tag in dry_run()[1].split()
    assert tag_ngc in dry_run({"KIT_IMAGE": "ngc"})[1].split()
    for dockerfile in ("docker/Dockerfile", "docker/Dockerfile.ngc"):
        assert not re.search(r"-t tf1-residual-kit:(official|ngc)\b", read(dockerfile)), dockerfile


def test_docs_build_on_the_kit_image_under_the_tag_run_sh_makes():
    """run.sh makes only tf1-residual-kit:<KIT_IMAGE>-<hash>: a FROM of a fixed kit tag fails to pull."""
    pages = ["README.md", "docker/README.md"] + ["docs/" + n for n in sorted(os.listdir(os.path.join(ROOT, "docs")))
                                                 if n.endswith(".md")]
    derived = []
    for page in pages:
        text = read(page)
        for base in re.findall(r"^\s*FROM\s+(\S+)", text, re.M):
            assert not base.startswith("tf1-residual-kit"), "%s: FROM %s, a tag docker/run.sh never makes" % (page, base)
            if base.startswith("$"):
                arg = base.strip("${}")
                assert re.search(r"^\s*ARG %s\s*$" % arg, text, re.M), page
                assert re.search(r'--build-arg %s="\$(\w+)"' % arg, text), page
                derived.append(page)
                # The tag comes from run.sh itself, as in docker/README.md's build by hand.
                assert "KIT_DRY_RUN=1 docker/run.sh | sed -n 's/^# image: //p'" in text, page
    assert "docs/horovod.md" in derived
