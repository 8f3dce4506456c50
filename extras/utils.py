"""Small helpers every stage shares: whole-or-nothing file writes, writes in a thread, the image
file walk, progress lines, and a lock on a run's folder (project addition to "Generative
Adversarial Network (GAN) in TensorFlow")."""
import concurrent.futures
import contextlib
import json
import os
import re
import socket
import sys
import time

import numpy as np

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")

# The cores this process may use (a cluster job's share, not the whole node): the default of
# every trainer's and bench's --threads.
ALL_CORES = len(os.sched_getaffinity(0))

# This machine's name as it appears in temp names: only [A-Za-z0-9_-], so that its dots cannot
# pass for the extension.
HOST = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())

# The temp names atomic_path makes: .STEM.tmp-PID-START@HOST.EXT. The host keeps the shards of
# an array job that share a folder on a network filesystem from deleting each other's live
# files; START, the writer's start time, tells it from a later process given the same PID
# (PIDs come round: pid_max is often 32768, and every thread takes one). Where the start time
# is unknown (no /proc), the name has none, and the PID alone decides.
TEMP_NAME = re.compile(r"^\..*\.tmp-(?P<pid>\d+)(?:-(?P<start>\d+))?@(?P<host>[A-Za-z0-9_-]*)"
                       r"(?P<ext>\.[^.]*)?$")


def temp_path(path):
    """The hidden temp name beside `path`, keeping its extension, that this process writes it
    under (project helper)."""
    # The extension stays last: writers pick the format from it.
    folder, name = os.path.split(os.path.abspath(path))
    stem, ext = os.path.splitext(name)
    pid, start = os.getpid(), process_start(os.getpid())
    writer = "%d" % pid if start is None else "%d-%d" % (pid, start)
    return os.path.join(folder, ".%s.tmp-%s@%s%s" % (stem, writer, HOST, ext))


def process_start(pid):
    """When process `pid` started, in clock ticks since boot, from Linux's /proc; None where
    that cannot be read (project helper)."""
    try:
        with open("/proc/%d/stat" % pid) as stat:
            # The fields after the command name, which may itself hold spaces and brackets.
            return int(stat.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temp name beside `path`, renamed onto it only if the block succeeds, so `path` is
    never half-written (project helper)."""
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def done_in_order(pending, wait=False, future=lambda item: item):
    """Take from the list `pending` (oldest first) and yield the items whose `future(item)` is
    done, up to the first that is not; every item, with `wait`, whose future the caller then
    waits for (project helper)."""
    while pending and (wait or future(pending[0]).done()):
        yield pending.pop(0)


class BackgroundWrites(object):
    """Files written (and what they need drawn) by one thread, in order, while the caller goes
    on (project helper): `submit(write, *args)` queues write(*args) and returns its future;
    `finished(wait)` forgets the writes done (all of them, waiting, with `wait`), raising what
    one raised; `close()` after the last."""

    def __init__(self):
        self.pool = concurrent.futures.ThreadPoolExecutor(1)
        self.pending = []  # oldest first

    def submit(self, write, *args):
        self.finished()
        self.pending.append(self.pool.submit(write, *args))
        return self.pending[-1]

    def finished(self, wait=False):
        for write in done_in_order(self.pending, wait):
            write.result()

    def close(self):
        self.pool.shutdown()


def remove_stale_temp_files(folder):
    """Delete the temp files that killed processes of this machine left in `folder`, not a live
    writer's nor another machine's; return how many (project helper)."""
    removed = 0
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        match = TEMP_NAME.match(name)
        if match and match["host"] == HOST and not pid_alive(int(match["pid"]), match["start"]):
            os.remove(os.path.join(folder, name))
            removed += 1
    return removed


def pid_alive(pid, start=None):
    """True if a process with this id runs on this machine, and, given its `start` time (as
    process_start says it), is still that process and not a later one with the same id
    (project helper)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, but belongs to someone else
        pass
    return start is None or process_start(pid) in (None, int(start))


def image_files(root, skip_dir=None):
    """Sorted paths relative to `root` of every .png/.jpg/.jpeg file (any case) below it, hidden
    names left out; symlinked folders followed, each real folder once, and `skip_dir` not entered
    (project helper)."""
    seen = {folder_id(skip_dir)} if skip_dir and os.path.isdir(skip_dir) else set()
    found = []
    for folder, subfolders, names in os.walk(root, followlinks=True):
        identity = folder_id(folder)
        if identity in seen:
            subfolders[:] = []
            continue
        seen.add(identity)
        # Sorted, so that of two paths to one folder the same one is listed on every run.
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        relative = os.path.relpath(folder, root)
        found += [name if relative == "." else os.path.join(relative, name) for name in names
                  if not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


def folder_id(path):
    """(device, inode) of a folder, the same through every symlink to it (project helper)."""
    stat = os.stat(path)
    return stat.st_dev, stat.st_ino


def format_seconds(seconds):
    """`1h02m03s`-style duration for progress lines (project helper)."""
    if not np.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return "%dh%02dm%02ds" % (hours, minutes, secs) if hours else "%dm%02ds" % (minutes, secs)


class Progress:
    """A `label: done/total unit, rate unit/s, ETA` line on stderr for long work, rewritten in
    place every second on a terminal, else a new line every 10 s; the final count always shown
    (project helper)."""

    def __init__(self, label, total, unit="images", stream=None):
        self.label, self.total, self.unit, self.done = label, total, unit, 0
        self.stream = stream or sys.stderr
        self.on_terminal = self.stream.isatty()
        self.interval = 1.0 if self.on_terminal else 10.0
        self.started = self.shown = time.monotonic()

    def advance(self, count=1):
        """Count `count` more finished items and show the line when it is due."""
        self.done += count
        now, final = time.monotonic(), self.done >= self.total
        if self.due(now, final):
            rate = self.done / max(now - self.started, 1e-6)
            eta = (self.total - self.done) / rate if rate else float("inf")
            self.show(now, "%d/%d %s, %.1f %s/s, ETA %s" % (
                self.done, self.total, self.unit, rate, self.unit, format_seconds(eta)), final)

    def due(self, now, final):
        """Whether a line is due at `now`: the `final` one always, the others every interval."""
        return final or now - self.shown >= self.interval

    def show(self, now, text, final):
        """Write `label: text` at time `now`: in place on a terminal until the `final` line."""
        self.shown = now
        end = "\r" if self.on_terminal and not final else "\n"
        self.stream.write("%s: %s%s" % (self.label, text, end))
        self.stream.flush()

    def note(self, message):
        """Print a message on its own line, clearing a progress line in the way."""
        self.stream.write(("\r\033[K" if self.on_terminal else "") + message + "\n")
        self.stream.flush()


def timed_steps(seconds, label, per_step=1, unit="images", stream=None):
    """1, 2, 3, ... for as long as `seconds` of wall time last (project helper: benchmarks that
    train for a fixed time), with a Progress line after the steps: how many, the rate in
    `unit`/s (`per_step` of them a step) and the time left."""
    progress = Progress(label, seconds, unit, stream)
    step, elapsed = 0, 0.0
    while elapsed < seconds:
        step += 1
        yield step
        now = time.monotonic()
        elapsed = now - progress.started
        final = elapsed >= seconds
        if progress.due(now, final):
            progress.show(now, "%d steps, %.1f %s/s, %s left" % (
                step, step * per_step / max(elapsed, 1e-6), unit,
                format_seconds(max(seconds - elapsed, 0))), final)


class FolderBusy(Exception):
    """Another live process holds the folder's lock; the message names it (project helper)."""


@contextlib.contextmanager
def folder_lock(folder):
    """Hold `folder/.lock` (owner's host, pid and start time) for the block, so two runs never
    share the folder; a dead process's lock on this host is cleared, a live one's or another
    host's raises FolderBusy naming it (project helper)."""
    path = os.path.join(folder, ".lock")
    me = {"host": socket.gethostname(), "pid": os.getpid(), "start": process_start(os.getpid())}
    draft = temp_path(path)
    with open(draft, "w") as out:
        json.dump(me, out)
    try:
        while True:
            try:
                os.link(draft, path)  # the lock appears with its content, never empty
                break
            except FileExistsError:
                owner = read_json(path)
                if owner is not None and (owner["host"] != me["host"] or
                                          pid_alive(owner["pid"], owner.get("start"))):
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
        if read_json(path) == me:
            os.remove(path)


def read_json(path):
    """The JSON value in `path` (e.g. a lock's owner), or None if it is missing or not valid JSON
    (project helper)."""
    try:
        with open(path) as file:
            return json.load(file)
    except (OSError, ValueError):
        return None


def node_line(used, unit="threads"):
    """The start-up line saying where a run is and what it uses, for a cluster job's log:
    ` [*] node HOST, 2 threads (of 4 cores this process may run on)` (project helper)."""
    return " [*] node %s, %d %s (of %d cores this process may run on)" % (
        socket.gethostname(), used, unit, ALL_CORES)


class TrainingError(Exception):
    """Training cannot go on; the message says why, what is kept and what to do."""


# How TensorFlow's op errors open: a traceback of where the failing op was built follows, then
# the op's own message, then the node's name in brackets on an indented line.
GRAPH_ERROR = "Graph execution error:"


def error_line(err):
    """An exception's message in one line, for one-line error reports: its first line; of a
    TensorFlow op error, the op's own message, not the header and traceback before it."""
    lines = (getattr(err, "message", None) or str(err)).strip().splitlines()
    if lines[:1] == [GRAPH_ERROR]:
        lines = [line for line in lines if line and not line[0].isspace()][-1:]
    return lines[0] if lines else type(err).__name__
