"""Shared helpers for the tests: real image files in temp folders, real TF sessions, and the
trainer run as a real subprocess."""
import collections
import fcntl
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import extras.machine.tfenv  # noqa: E402,F401  (first: TensorFlow then loads without Keras; see it)
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def user_cache(tmp_path_factory):
    """The image cache of a used model ($XDG_CACHE_HOME/gantut) in a temp folder, not the home's;
    the trainers run by the tests inherit it."""
    folder = tmp_path_factory.mktemp("xdg_cache")
    os.environ["XDG_CACHE_HOME"] = str(folder)
    return folder / "gantut"


def write_images(folder, count, size, mode="RGB", seed=0, ext=".png"):
    """Write `count` random smooth images of `size` (int or (w, h)) into `folder`; return paths."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    width, height = (size, size) if isinstance(size, int) else size
    paths = []
    for i in range(count):
        # Smooth blobs rather than white noise: closer to photos, and JPEG-friendly.
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((width, height), Image.BILINEAR).convert(mode)
        path = os.path.join(folder, "img_%04d%s" % (i, ext))
        img.save(path)
        paths.append(path)
    return paths


def run_trainer(cwd, *args, timeout=300, script="gantut_trainer.py"):
    """Run gantut_trainer.py (or another of the repository's `script`s) in `cwd` with `args`;
    return the CompletedProcess (text output)."""
    return subprocess.run([sys.executable, os.path.join(REPO, script)] + list(args),
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


def assert_refused(result, start):
    """`result` (a CompletedProcess) stopped with exit status 1 and one line of ours on stderr,
    beginning with `start` (not absl's FATAL line and its hint, nor a traceback)."""
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(start), result.stderr


def flag_errors(module, *argvs):
    """What the trainer `module`'s flag parser (extras.run.flags.parse_flags) says of each argv:
    its one-line error, or None if it parses. One process imports the trainer for all of them."""
    script = ("import json, sys, extras.run.flags as run_flags, %s\nerrors = []\n"
              "for argv in json.loads(sys.argv[1]):\n"
              "    try:\n        run_flags.parse_flags([%r] + argv)\n        errors.append(None)\n"
              "    except SystemExit as stop:\n        errors.append(str(stop.code))\n"
              "    run_flags.flags.FLAGS.unparse_flags()\n"
              "print(json.dumps(errors))" % (module, module))
    return python_json(script, json.dumps(argvs))


def python_json(script, *args):
    """Run the Python `script` with `args` in a new interpreter in the repository; return the
    JSON it prints as its last line."""
    out = subprocess.run([sys.executable, "-c", script, *args], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def sigint_from(handler):
    """A subprocess's preexec_fn that starts it with SIGINT's `handler`: SIG_DFL as a terminal
    starts a program (Ctrl-C then reaches it), SIG_IGN as a script's `cmd &` does."""
    return lambda: signal.signal(signal.SIGINT, handler)


def interrupt_when(script, cwd, args, ready, signum):
    """Start the repository's `script` in `cwd` as a terminal would, send it `signum` as soon as
    `ready(output so far)` is true, and return (its exit code, its whole output, stderr
    included)."""
    proc = subprocess.Popen([sys.executable, os.path.join(REPO, script)] + list(args), cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=sigint_from(signal.SIG_DFL))
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if ready("".join(lines)):
            break
    proc.send_signal(signum)
    rest, _ = proc.communicate(timeout=60)
    return proc.returncode, "".join(lines) + rest


def checkpoint_steps(folder, model_name="DCGAN.model"):
    """Steps of the checkpoints in `folder`, oldest first."""
    return sorted(int(path.split("-")[-1].split(".")[0])
                  for path in glob.glob(os.path.join(folder, model_name + "-*.index")))


def newest_position(folder, model_name="DCGAN.model"):
    """The training Position in the newest checkpoint in `folder`."""
    from extras.run.checkpoints import checkpoint_paths, position_at  # TensorFlow: see `sess`
    return position_at(checkpoint_paths(folder, model_name)[0])


# The smallest model the trainer builds: 16x16 images, thin layers, batches of 4.
TINY = ["--image_size", "16", "--batch_size", "4", "--gf_dim", "4", "--df_dim", "4",
        "--z_dim", "8", "--threads", "2", "--seed", "3"]


# The shared trained model (fixture `trained_model`): 24 images of 16x16, 16 PNG in faces/part1
# and 8 JPEG in faces/part2; batches of 4 -> 6 steps per epoch; the default folders checkpoint/,
# logs/ and samples/.
MODEL_EPOCHS = 2
MODEL_ARGS = ["--dataset", "faces", "--epoch", str(MODEL_EPOCHS), "--sample_freq", "4",
              "--ckpt_freq", "5", "--summary_freq", "1", *TINY]

Trained = collections.namedtuple("Trained", "folder stdout stderr")


def train_model(folder):
    """Train the shared model in `folder`, and keep the trainer's output beside it."""
    write_images(os.path.join(folder, "faces", "part1"), 16, 16)
    write_images(os.path.join(folder, "faces", "part2"), 8, 16, seed=1, ext=".jpg")
    result = run_trainer(folder, *MODEL_ARGS)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("stdout", "stderr"):
        with open(os.path.join(folder, "trainer." + name), "w") as out:
            out.write(getattr(result, name))


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory):
    """The tiny model trained with MODEL_ARGS, built once per test run: its folder (a Path) and
    the trainer's stdout and stderr. Read it only: tests that write work on `model_copy`."""
    base = tmp_path_factory.getbasetemp()
    # Under pytest-xdist the workers' temp folders share a parent: one worker builds, the
    # others wait on the lock and then read the finished folder.
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    folder = root / "trained_model"
    with open(root / "trained_model.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not folder.exists():
            build = tempfile.mkdtemp(prefix="trained_model.", dir=root)
            train_model(build)
            os.rename(build, folder)  # whole or not at all
    return Trained(folder, (folder / "trainer.stdout").read_text(),
                   (folder / "trainer.stderr").read_text())


@pytest.fixture
def model_copy(trained_model, tmp_path):
    """A copy of the shared model's folder, for a test that writes into it."""
    copy = tmp_path / "model"
    shutil.copytree(trained_model.folder, copy)
    return copy


@pytest.fixture
def sess():
    """A real Session on a fresh graph."""
    # TensorFlow is imported here, not above: pytest-xdist's controller process loads this file
    # too, and would print TensorFlow's start-up lines outside any test's capture.
    import tensorflow.compat.v1 as tf
    with tf.Graph().as_default(), tf.Session() as session:
        yield session


# Figures of the fault-injection suite, printed as one line at the end of the run.
FAULT_STATS = {"kills": 0, "resumed": 0, "lost_steps_max": 0, "corrupt": 0}


def pytest_sessionfinish(session):
    """In a worker of pytest-xdist: hand this worker's fault figures to the controller."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["fault_stats"] = FAULT_STATS


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist: -p no:xdist runs without it
def pytest_testnodedown(node, error):
    """In the controller of pytest-xdist: add up a finished worker's fault figures."""
    for key, value in node.workeroutput.get("fault_stats", {}).items():
        FAULT_STATS[key] = max(FAULT_STATS[key], value) if key.endswith("_max") else \
            FAULT_STATS[key] + value


def pytest_terminal_summary(terminalreporter):
    if FAULT_STATS["kills"]:
        terminalreporter.write_line("faults: " + " ".join(
            "%s=%d" % item for item in FAULT_STATS.items()))
