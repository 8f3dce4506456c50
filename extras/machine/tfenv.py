"""How TensorFlow is loaded here (ours); imported before TensorFlow everywhere, which reads these
settings once, when it loads. TF_USE_LEGACY_KERAS=1 and TF_ENABLE_ONEDNN_OPTS=1 unless the
environment sets them; in our own programs, unless --verbose or GANTUT_VERBOSE=1, TensorFlow's and
absl's logging lowered to ERROR and the lines of FILTERED dropped from file descriptor 2
(docs/development.md, "Quiet by default", says why each line goes).
"""
import atexit
import logging
import os
import re
import select
import sys
import threading

from absl import logging as absl_logging

# The lines dropped from descriptor 2, each whole (absl's C++ header, then the message).
FILTERED = re.compile(
    # absl, once per TensorFlow library that logs before absl::InitializeLog() is called.
    rb"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    rb"|[IWEF]\d{4} [\d:.]+ +\d+ (?:"
    # No NVIDIA driver: the CUDA stub says so while TensorFlow is imported.
    rb"cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine"
    # TF_ENABLE_ONEDNN_OPTS on (see above), said on import.
    rb"|port\.cc:\d+\] oneDNN custom operations are on"
    # No driver library (303: CUDA_ERROR_SHARED_OBJECT_INIT_FAILED), at the first Session; a
    # broken driver's other codes still show.
    rb"|\S+\.cc:\d+\] failed call to cuInit: .*\(303\)$)")
# A flag absl would read as --verbose; group 1 is "no", group 2 the value.
VERBOSE_FLAG = re.compile(r"--?(no)?verbose(?:=(.*))?$")
# The help of the --verbose flag that both trainers define, so that absl accepts what this module
# has already read (its default: VERBOSE, so GANTUT_VERBOSE=1 shows in it).
VERBOSE_HELP = ("Also show TensorFlow's and absl's own log lines, otherwise hidden "
                "(extras/machine/tfenv.py), as GANTUT_VERBOSE=1 [False]")
# How long an unfinished line waits in the filter for its end before it is passed on as it is.
PARTIAL_LINE_WAIT_S = 0.1


def verbose_requested(argv, environ):
    """Whether `argv` (its last --verbose/--noverbose before a `--`) or GANTUT_VERBOSE=1 in
    `environ` asks for every library's log lines."""
    verbose = environ.get("GANTUT_VERBOSE") == "1"
    for arg in argv[1:]:
        if arg == "--":
            break
        match = VERBOSE_FLAG.match(arg)
        if match:
            verbose = not match.group(1) and (match.group(2) or "true").lower() in (
                "true", "t", "1")
    return verbose


def running_our_program():
    """Whether the `__main__` script is one of this repository's (its folder or bench/)."""
    script = getattr(sys.modules.get("__main__"), "__file__", None)
    here = os.path.realpath(__file__)
    for _ in range(3):  # extras/machine/tfenv.py: the repository is three folders up
        here = os.path.dirname(here)
    return script is not None and os.path.dirname(os.path.realpath(script)) in (
        here, os.path.join(here, "bench"))


def lower_logging():
    """TensorFlow's C++ level (read when it loads) and the Python loggers' levels."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    absl_logging.set_verbosity(absl_logging.ERROR)


def filter_stderr(pattern):
    """Send descriptor 2 through a thread that drops the lines `pattern` matches; move
    `sys.stderr` onto a copy of the original descriptor, unfiltered."""
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr = open(original, "w", buffering=1, encoding=sys.stderr.encoding,
                      errors=sys.stderr.errors, closefd=False)
    pump = threading.Thread(target=copy_lines, args=(read_end, original, pattern), daemon=True,
                            name="stderr filter")
    pump.start()
    atexit.register(restore_stderr, original, pump)


def copy_lines(read_end, out, pattern):
    """Copy the pipe to `out` without the lines `pattern` matches, until every writer has closed
    it; an unfinished line is passed on after PARTIAL_LINE_WAIT_S (a prompt, a progress line)."""
    pending = b""
    while True:
        ready, _, _ = select.select([read_end], [], [], PARTIAL_LINE_WAIT_S if pending else None)
        if not ready:
            write_all(out, pending)
            pending = b""
            continue
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\n")
        write_all(out, b"".join(line + b"\n" for line in lines if not pattern.match(line)))
    write_all(out, pending)


def write_all(fd, data):
    """Write all of `data` to `fd`; a reader that went away (`| head`) gets no more."""
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:
        pass


def restore_stderr(original, pump):
    """At exit: the original stderr back on descriptor 2, which ends the pipe (unless a child
    process still holds it: then wait at most a second), and the filter's last lines out."""
    os.dup2(original, 2)
    pump.join(timeout=1)


# This TF1 code never uses Keras 3, which would slow every start.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # faster steps on CPU: bench/LEVERS.md
ONEDNN = os.environ["TF_ENABLE_ONEDNN_OPTS"] not in ("0", "false", "False")
VERBOSE = verbose_requested(sys.argv, os.environ)
if running_our_program() and not VERBOSE:
    lower_logging()
    filter_stderr(FILTERED)
