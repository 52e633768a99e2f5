"""A fork server for the crash tests: TensorFlow is imported once, and every training
run is a forked child that the test can SIGKILL at any moment.

Starting a TF process takes seconds; forking one that has imported TF and built the
graph takes milliseconds, so a test can crash and resume one run twenty times within
its time budget. The server never opens a session (TF's thread pools do not survive a
fork): each child runs `ResNeXt.main(argv)`, opens its own session, restores its own
checkpoint and trains on its own data. Only the graph is built once, by the server, for
each distinct set of settings (see `_cache_graphs`); test_crash.py checks that a fresh
`python ResNeXt.py` process ends bitwise where the forked children end.

    server = ForkServer(prime_argv)          # imports TF and builds the graph for these flags
    pid = server.start(argv, log_path, env)  # a child trains; its stdout and stderr go to log_path
    os.kill(pid, signal.SIGKILL)             # at any moment
    code, sig = server.wait(pid)             # (exit code, None) or (None, signal number)

Protocol, one JSON object per line on stdin, one reply per line on the original stdout:
  {"op": "prime", "argv": [...]}                          -> {"graphs": n}
  {"op": "start", "argv": [...], "log": path, "env": {}}  -> {"pid": n}
  {"op": "wait" or "poll", "pid": n}                      -> {"running": bool, "code": n|null, "signal": n|null}
"""
import json
import os
import signal
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class _Primed(BaseException):
    """Ends a priming run right after its graph is built (before any session exists)."""


_graphs = {}


def _cache_graphs(trainer, priming):
    """Make `trainer.Graph` hand out graphs built here, before the fork.

    Building even the tiny model's graph takes longer than training it for a few steps. A
    child gets its (copy-on-write) copy of the finalized graph that a fresh process builds
    from the same settings: the key is every setting except the run folder, and graph
    construction is deterministic. A priming run stops right after the build, before any
    session exists.
    """
    real = getattr(trainer.Graph, "real", trainer.Graph)

    def Graph(build_fn, hp, steps_per_epoch, dist=None):
        key = (build_fn.__name__, steps_per_epoch,
               json.dumps({k: v for k, v in hp.items() if k != "run_dir"}, sort_keys=True, default=str))
        if key not in _graphs:
            _graphs[key] = real(build_fn, hp, steps_per_epoch, dist)
        if priming:
            raise _Primed()
        return _graphs[key]
    Graph.real = real
    trainer.Graph = Graph


def _child(argv, log, env):
    import ResNeXt
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)  # the protocol pipe belongs to the server
    os.environ.update(env)
    code = 1
    try:
        code = ResNeXt.main(argv)
    except BaseException:
        import traceback
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code if isinstance(code, int) else 1)


def serve():
    # Replies go through a private copy of stdout: whatever the imports print lands on stderr.
    reply_to = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.path.insert(0, ROOT)
    import ResNeXt
    import trainer
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "prime":
            _cache_graphs(trainer, priming=True)
            try:
                ResNeXt.main(req["argv"])
            except _Primed:
                pass
            _cache_graphs(trainer, priming=False)
            reply = {"graphs": len(_graphs)}
        elif req["op"] == "start":
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _child(req["argv"], req["log"], req.get("env", {}))
            reply = {"pid": pid}
        elif req["op"] in ("wait", "poll"):
            pid, status = os.waitpid(req["pid"], 0 if req["op"] == "wait" else os.WNOHANG)
            reply = {"running": pid == 0,
                     "code": os.WEXITSTATUS(status) if pid and os.WIFEXITED(status) else None,
                     "signal": os.WTERMSIG(status) if pid and os.WIFSIGNALED(status) else None}
        else:
            return
        reply_to.write(json.dumps(reply) + "\n")
        reply_to.flush()


class ForkServer(object):
    """The test's handle on a `serve()` process."""

    def __init__(self, prime_argv=None):
        self.children = set()
        self.proc = subprocess.Popen([sys.executable, "-u", os.path.abspath(__file__)], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, universal_newlines=True)
        if prime_argv is not None:
            self._ask(dict(op="prime", argv=prime_argv))

    def _ask(self, req):
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the fork server died (exit code %s)" % self.proc.wait())
        return json.loads(line)

    def start(self, argv, log, env=None):
        pid = self._ask(dict(op="start", argv=list(argv), log=str(log), env=env or {}))["pid"]
        self.children.add(pid)
        return pid

    def wait(self, pid):
        r = self._ask(dict(op="wait", pid=pid))
        self.children.discard(pid)
        return r["code"], r["signal"]

    def poll(self, pid):
        """None while the child runs, else (exit code, signal) as `wait` returns them (once)."""
        r = self._ask(dict(op="poll", pid=pid))
        if r["running"]:
            return None
        self.children.discard(pid)
        return r["code"], r["signal"]

    def run(self, argv, log, env=None):
        return self.wait(self.start(argv, log, env))

    def close(self):
        """Stop the server and any child a failed test left running (the server keeps no state)."""
        for pid in self.children:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()


if __name__ == "__main__":
    serve()
