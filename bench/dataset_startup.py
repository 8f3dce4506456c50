#!/usr/bin/env python3
"""Benchmark: how long gantut_trainer.py takes to start on a folder of many small files.

Writes `--files` 64x64 PNGs in sub-folders of 1,000, then times the trainer from launch to its
first progress line, without its image cache and with it. Last line:

    startup_s_uncached=<x> startup_s_cached=<y> files=<n>

    .venv/bin/python bench/dataset_startup.py [--files 100000] [--threads 2]
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=100000, help="image files [100000]")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)),
                        help="the trainer's --threads [every core]")
    parser.add_argument("--work_dir", default=None, help="where to write them [a temp folder]")
    return parser.parse_args()


def write_files(folder, count):
    """`count` distinct small PNGs: a few encoded images, each written many times."""
    rng = np.random.default_rng(0)
    blobs = []
    for i in range(16):
        path = os.path.join(folder, "blob%d.png" % i)
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).resize(
            (64, 64), Image.BILINEAR).save(path)
        with open(path, "rb") as blob:
            blobs.append(blob.read())
        os.remove(path)
    for i in range(count):
        sub = os.path.join(folder, "faces", "%03d" % (i // 1000))
        if i % 1000 == 0:
            os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, "%06d.png" % i), "wb") as out:
            out.write(blobs[i % len(blobs)])


def time_to_first_step(folder, threads):
    """Seconds from launching the trainer to its first progress line."""
    started = time.time()
    proc = subprocess.Popen(
        [sys.executable, os.path.join(REPO, "gantut_trainer.py"), "--dataset", "faces",
         "--epoch", "1", "--threads", str(threads), "--sample_freq", "100000"],
        cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in proc.stdout:
        if line.startswith("Epoch ["):
            elapsed = time.time() - started
            break
    proc.terminate()
    proc.communicate()
    return elapsed


def main():
    args = parse_args()
    with tempfile.TemporaryDirectory(dir=args.work_dir) as folder:
        started = time.time()
        write_files(folder, args.files)
        print("wrote %d files in %.1f s" % (args.files, time.time() - started))
        uncached = time_to_first_step(folder, args.threads)
        cached = time_to_first_step(folder, args.threads)
    print("startup_s_uncached=%.1f startup_s_cached=%.1f files=%d"
          % (uncached, cached, args.files))


if __name__ == "__main__":
    main()
