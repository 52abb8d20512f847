"""Engine processes die with the process that started them, however it dies (`kill -9` included).

vLLM starts its engine core and its workers as child processes. A SIGKILL of the parent runs no
exit handler, and vLLM's engine core does not watch its parent, so they were left running, holding
gigabytes. The mechanisms that live inside a process die with it or never reach vLLM's children:
a thread in the parent dies by the same SIGKILL; `PR_SET_PDEATHSIG` must be set by each child
itself, and vLLM spawns fresh interpreters that run none of this library's code; killing the
parent's process group also kills whoever ran the command when the parent leads no group of its
own. So `start_watchdog()` starts one small process beside the parent (its own session, no pipes
of the parent's held open): while the parent lives it records the parent's descendants; once the
parent is gone it kills those still running, and their children. It runs as a script (this file),
so it imports neither the library nor vLLM.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

POLL_S = 0.5
"""How often the watchdog looks at the parent and records its descendants."""
_started: set[int] = set()
"""The process ids that started a watchdog (one per process, also after a fork)."""


def start_watchdog() -> None:
    """Start this process's watchdog once (before its first engine starts)."""
    if os.getpid() in _started:
        return
    _started.add(os.getpid())
    subprocess.Popen([sys.executable, __file__, str(os.getpid())], stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)


def watch(parent_pid: int) -> None:
    """Record `parent_pid`'s descendants while it lives; then kill those left (checked by start time,
    so a reused pid is never hit), their own children first collected."""
    import psutil

    me = os.getpid()
    seen: dict[int, float] = {}
    try:
        parent = psutil.Process(parent_pid)
        while parent.is_running() and parent.status() != psutil.STATUS_ZOMBIE:
            for child in parent.children(recursive=True):
                if child.pid != me:
                    seen.setdefault(child.pid, child.create_time())
            time.sleep(POLL_S)
    except psutil.Error:
        pass  # the parent is gone
    left = []
    for pid, created in seen.items():
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == created:
                left += [proc, *proc.children(recursive=True)]
        except psutil.Error:
            continue
    for proc in left:
        try:
            proc.kill()
        except psutil.Error:
            continue


if __name__ == "__main__":
    watch(int(sys.argv[1]))
