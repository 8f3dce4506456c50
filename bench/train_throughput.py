#!/usr/bin/env python3
"""Benchmark: DCGAN training throughput on the demo faces (project addition to Part 5).

Trains the posts' DCGAN (batch 64, 64x64, one D + two G updates per step) for a fixed number of
steps, feeding batches exactly as gantut_trainer.py does, and measures each step and the time it
waited for its batch. Last line:

    train_img_per_s=<median over steps> data_wait_frac=<share of step time spent waiting for input>

    .venv/bin/python bench/train_throughput.py --threads 2 [--bf16]
"""
import argparse
import os
import resource
import sys
import tempfile
import time

import numpy as np
import tensorflow.compat.v1 as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from demo_faces import make_demo_dataset  # noqa: E402
from gantut_datafuncs import feed_batches, load_dataset  # noqa: E402
from gantut_gan import DCGAN  # noqa: E402
from gantut_trainer import ALL_CORES, session_config  # noqa: E402


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps [40]")
    parser.add_argument("--warmup", type=int, default=5, help="untimed first steps [5]")
    parser.add_argument("--threads", type=int, default=ALL_CORES,
                        help="TensorFlow threads [every core: %d]" % ALL_CORES)
    parser.add_argument("--batch_size", type=int, default=64, help="images per step [64]")
    parser.add_argument("--image_size", type=int, default=64, help="image size [64]")
    parser.add_argument("--bf16", action="store_true",
                        help="oneDNN bfloat16 auto mixed precision, as the trainer's --bf16")
    parser.add_argument("--data_dir", default=os.path.join(tempfile.gettempdir(), "gantut_bench"),
                        help="where the demo faces and their cache go [%(default)s]")
    return parser.parse_args()


def demo_images(data_dir, image_size):
    """The trainer's demo data set (4,000 faces) as its uint8 cache."""
    faces = make_demo_dataset(os.path.join(data_dir, "demo_%dpx" % image_size),
                              size=image_size, seed=0)
    return load_dataset(faces, image_size, cache_dir=os.path.join(data_dir, "cache"))


def endless_batches(images, batch_size):
    """The trainer's batches, epoch after epoch."""
    epoch = 0
    while True:
        for _, batch in feed_batches(images, batch_size, seed=0, epoch=epoch):
            yield batch
        epoch += 1


def measure(args, images):
    """Return per-step (seconds, seconds waiting for the batch) for the timed steps."""
    rng = np.random.default_rng(0)
    with tf.Graph().as_default(), \
            tf.Session(config=session_config(args.threads, args.bf16)) as sess:
        tf.set_random_seed(0)
        dcgan = DCGAN(sess, image_size=args.image_size, batch_size=args.batch_size)
        d_optim, g_optim = dcgan.optimizers(0.0002, 0.5)
        sess.run(tf.global_variables_initializer())
        batches = endless_batches(images, args.batch_size)
        timings = []
        for step in range(args.warmup + args.steps):
            started = time.perf_counter()
            batch = next(batches)
            waited = time.perf_counter() - started
            batch_z = rng.uniform(-1, 1, [args.batch_size, dcgan.z_dim])
            dcgan.train_step(d_optim, g_optim, batch, batch_z)
            if step >= args.warmup:
                timings.append((time.perf_counter() - started, waited))
    return np.array(timings)


def main():
    args = parse_args()
    images = demo_images(args.data_dir, args.image_size)
    timings = measure(args, images)
    img_per_s = args.batch_size / np.median(timings[:, 0])
    wait_frac = timings[:, 1].sum() / timings[:, 0].sum()
    peak_rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print("threads=%d bf16=%s steps=%d batch=%d size=%d peak_rss_gb=%.2f"
          % (args.threads, args.bf16, args.steps, args.batch_size, args.image_size, peak_rss_gb))
    print("train_img_per_s=%.1f data_wait_frac=%.4f" % (img_per_s, wait_frac))


if __name__ == "__main__":
    main()
