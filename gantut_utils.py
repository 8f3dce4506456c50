"""Small helpers every stage shares: whole-or-nothing file writes, progress lines, and a lock on
a run's folder (project addition to "Generative Adversarial Network (GAN) in TensorFlow").

None of this is in the posts; it is what lets a run be killed at any moment without losing or
half-writing anything, and lets long work say how far it has got.
"""
import contextlib
import json
import os
import re
import socket
import sys
import time

import numpy as np


# The temp names atomic_path makes: .NAME.tmp-PID.EXT
TEMP_NAME = re.compile(r"^\..*\.tmp-(\d+)(\.[^.]*)?$")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temp name beside `path`, renamed onto it only if the block succeeds.

    For every file a later step reads (sample grids, caches, crops, reports): a run killed
    mid-write leaves a hidden temp file, never a half-written file under the real name. The temp
    name keeps the extension, so writers that pick the format from it still work.
    """
    folder, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    tmp = os.path.join(folder, ".%s.tmp-%d%s" % (stem, os.getpid(), ext))
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def remove_stale_temp_files(folder):
    """Delete the temp files that killed processes left in `folder`; return how many.

    Only files of processes that are gone: a live writer's temp file is left alone.
    """
    removed = 0
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        match = TEMP_NAME.match(name)
        if match and not pid_alive(int(match.group(1))):
            os.remove(os.path.join(folder, name))
            removed += 1
    return removed


def format_seconds(seconds):
    """`1h02m03s`-style duration for progress lines."""
    if not np.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return "%dh%02dm%02ds" % (hours, minutes, secs) if hours else "%dm%02ds" % (minutes, secs)


def report_progress(label, done, total, started, out=sys.stderr):
    """Print a `label: done/total, rate/s, ETA` line.

    Whole lines rather than a refreshed one: they read well in a cluster job's log file too.
    """
    rate = done / max(time.time() - started, 1e-9)
    eta = (total - done) / rate if rate > 0 else float("inf")
    print("%s: %d/%d, %.0f/s, ETA %s" % (label, done, total, rate, format_seconds(eta)),
          file=out, flush=True)


def pid_alive(pid):
    """True if a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, but belongs to someone else
        return True
    return True


class FolderBusy(Exception):
    """Another live process holds the folder's lock; the message names it."""


@contextlib.contextmanager
def folder_lock(folder):
    """Hold `folder/.lock` (owner's host and pid) for the block, so two runs never share it.

    A lock left by a process that is gone (killed, on this host) is cleared. A lock from another
    host cannot be checked from here, so it is refused with the path to delete if that job is
    dead. The lock appears with its content in one step (a hard link), never empty.
    """
    path = os.path.join(folder, ".lock")
    me = {"host": socket.gethostname(), "pid": os.getpid()}
    draft = "%s.tmp-%d" % (path, os.getpid())
    with open(draft, "w") as out:
        json.dump(me, out)
    try:
        while True:
            try:
                os.link(draft, path)
                break
            except FileExistsError:
                owner = read_lock(path)
                if owner is not None and (owner["host"] != me["host"] or pid_alive(owner["pid"])):
                    raise FolderBusy(
                        "%s is in use by another run (pid %s on %s). Wait for it, or use another "
                        "folder; if that run is gone, delete %s." % (folder, owner["pid"],
                                                                     owner["host"], path))
                os.remove(path)  # stale: its owner is gone
    finally:
        os.remove(draft)
    try:
        yield
    finally:
        if read_lock(path) == me:
            os.remove(path)


def read_lock(path):
    """The owner recorded in a lock file, or None if it is gone or unreadable."""
    try:
        with open(path) as lock:
            return json.load(lock)
    except (OSError, ValueError):
        return None
