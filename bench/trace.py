"""What a learner walks through from `python ResNeXt.py` to the first training step.

    python bench/trace.py                      # ResNeXt.py, as the README's first command runs it
    python bench/trace.py Densenet.py --preset paper
    python bench/trace.py --write              # also put the table into BENCHMARKS.md

Runs the model script in this process, exactly as `python <script> <flags>` would, and follows
every call until the first training `sess.run` (the first one that feeds `training: True`), where
it stops the run. It prints, per file of the kit, the functions that ran on the way (class bodies,
lambdas and comprehensions are not counted: they are read as part of the function around them),
then the totals: files, functions, and distinct lines of the kit's code that ran. The run folder
is a temporary one; the data is wherever the script finds it (data/, or KIT_DATA_DIR).
"""
from __future__ import print_function

import argparse
import collections
import inspect
import os
import runpy
import shutil
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CO_FUNCTION = inspect.CO_OPTIMIZED | inspect.CO_NEWLOCALS  # a def, not a module or class body


class FirstStep(BaseException):
    """Raised into the first training sess.run; BaseException, so no handler of the kit takes it."""


def is_kit(filename):
    path = os.path.abspath(filename)
    inside = os.path.relpath(path, ROOT)
    return (not filename.startswith("<") and not inside.startswith("..") and os.sep not in inside
            and inside.endswith(".py"))


def trace(script, argv):
    """{(file, function, first line): calls} and {(file, line)} of the kit's code that ran before
    the first training step of `python script argv`."""
    functions, lines = collections.OrderedDict(), set()

    def local(frame, event, arg):  # lines of functions, lambdas and comprehensions, not module bodies
        if event == "line" and frame.f_code.co_flags & CO_FUNCTION == CO_FUNCTION:
            lines.add((frame.f_code.co_filename, frame.f_lineno))
        return local

    def tracer(frame, event, arg):
        code = frame.f_code
        if code.co_name == "run" and code.co_filename.endswith(os.path.join("client", "session.py")):
            feed = frame.f_locals.get("feed_dict") or {}
            if any(getattr(k, "name", "").startswith("training") and v is True for k, v in feed.items()):
                sys.settrace(None)
                raise FirstStep()
        if not is_kit(code.co_filename):
            return None
        if code.co_flags & CO_FUNCTION == CO_FUNCTION and not code.co_name.startswith("<"):
            key = (os.path.basename(code.co_filename), code.co_name, code.co_firstlineno)
            functions[key] = functions.get(key, 0) + 1
        return local

    old_argv, old_path = sys.argv, list(sys.path)
    sys.argv = [script] + list(argv)
    sys.path.insert(0, ROOT)
    reached = False
    sys.settrace(tracer)
    try:
        runpy.run_path(os.path.join(ROOT, script), run_name="__main__")
    except FirstStep:
        reached = True
    except SystemExit:
        pass
    finally:
        sys.settrace(None)
        sys.argv, sys.path[:] = old_argv, old_path
    if not reached:
        raise SystemExit("%s ended before its first training step: see its message above" % script)
    return functions, {(os.path.basename(f), n) for f, n in lines}


def table(script, argv, functions, lines):
    by_file = collections.OrderedDict()
    for (name, function, _), _calls in functions.items():
        by_file.setdefault(name, []).append(function)
    rows = ["`python %s%s` to its first training `sess.run`:" % (script, "".join(" " + a for a in argv)), "",
            "| file | functions that ran |", "|---|---|"]
    for name, names in by_file.items():
        rows.append("| %s | %d: %s |" % (name, len(names), ", ".join(names)))
    rows += ["", "%d files, %d functions, %d distinct lines of the kit's functions."
             % (len(by_file), len(functions), len(lines))]
    return "\n".join(rows) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("script", nargs="?", default="ResNeXt.py")
    p.add_argument("--write", action="store_true", help="also write the table into BENCHMARKS.md")
    args, flags = p.parse_known_args(argv)
    if not args.script.endswith(".py") or not os.path.isfile(os.path.join(ROOT, args.script)):
        # runpy would raise FileNotFoundError, or SyntaxError on a file that is not Python
        sys.stderr.write("error: %s is not a Python script of %s: name a model script, e.g. ResNeXt.py or "
                         "Densenet.py\n" % (args.script, ROOT))
        return 2
    run_dir = tempfile.mkdtemp(prefix="kit-trace-")
    try:
        os.environ.setdefault("KIT_MAX_STEPS", "1")
        functions, lines = trace(args.script, flags + ["--run_dir", os.path.join(run_dir, "run")])
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    text = table(args.script, flags, functions, lines)
    print(text, end="")
    if args.write:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import bench
        bench.write_markdown(os.path.join(ROOT, "BENCHMARKS.md"), "trace",
                             "    python bench/trace.py %s\n\n%s" % (" ".join([args.script] + flags), text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
