"""Shared helpers for the tests: real image files in temp folders, real TF sessions, and the
trainer run as a real subprocess."""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


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


def run_trainer(cwd, *args, timeout=300):
    """Run gantut_trainer.py in `cwd` with `args`; return the CompletedProcess (text output)."""
    return subprocess.run([sys.executable, os.path.join(REPO, "gantut_trainer.py")] + list(args),
                          cwd=cwd, capture_output=True, text=True, timeout=timeout)


# The smallest model the trainer builds: 16x16 images, thin layers, batches of 4.
TINY = ["--image_size", "16", "--batch_size", "4", "--gf_dim", "4", "--df_dim", "4",
        "--z_dim", "8", "--threads", "2", "--seed", "3"]


@pytest.fixture
def sess():
    """A real Session on a fresh graph."""
    with tf.Graph().as_default(), tf.Session() as session:
        yield session


# Figures of the fault-injection suite, printed as one line at the end of the run.
FAULT_STATS = {"kills": 0, "resumed": 0, "lost_steps_max": 0, "corrupt": 0}


def pytest_terminal_summary(terminalreporter):
    if FAULT_STATS["kills"]:
        terminalreporter.write_line("faults: " + " ".join(
            "%s=%d" % item for item in FAULT_STATS.items()))
