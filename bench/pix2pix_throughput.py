#!/usr/bin/env python3
"""Benchmark: pix2pix training speed, and how close its side views come after a few minutes
(the pix2pix stage).

Speed: the full-width model (gf_dim = df_dim = 64) trains a few steps on random pairs at 64 and
256 px with batch 1 and 4; one line per setting:

    pix2pix_img_per_s=<median over the timed steps> size=<px> batch=<pairs per step>

Quality: it trains on the demo pairs (64 px, batch 1) for --minutes, then translates the test
pairs. Last line: the mean L1 distance to the true side view in [0, 1] pixel units, beside the
front view's and the mean training side view's:

    translation_l1=<x> input_l1=<y> mean_side_l1=<z> steps=<training steps> minutes=<m>

    .venv/bin/python bench/pix2pix_throughput.py --minutes 3 --threads 2 \
        [--figure docs/pix2pix_demo.png]
"""
import argparse
import itertools
import os
import sys
import tempfile
import time
from types import SimpleNamespace

# The repository first, for extras.machine.tfenv, which must come before numpy and TensorFlow.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import extras.machine.tfenv  # noqa: E402,F401  (TensorFlow's logging, see the module)

import numpy as np  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402

from demo_faces import make_demo_pairs  # noqa: E402
from extras.data.dataset import split_holdout  # noqa: E402
from gantut_imgfuncs import save_images  # noqa: E402
from extras.model.pix2pix import (Pix2Pix, feed_pairs, load_pairs, pair_views,  # noqa: E402
                            sample_rows)
from extras.machine.cpu import bf16_wins
from extras.machine.session import session_config
from extras.utils import ALL_CORES, timed_steps  # noqa: E402

DEMO_SIZE = 64
# The trainer's flags that feed_pairs and pair_views read, at their defaults.
FEED = SimpleNamespace(c_dim=3, direction="AtoB", flip_side=False, jitter=False, batch_size=1)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=3.0,
                        help="training time on the demo pairs before the L1 is measured [3]")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per setting [10]")
    parser.add_argument("--warmup", type=int, default=3, help="untimed first steps [3]")
    parser.add_argument("--threads", type=int, default=ALL_CORES,
                        help="TensorFlow threads [every core: %d]" % ALL_CORES)
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=bf16_wins(),
                        help="oneDNN bfloat16 auto mixed precision, as the trainer's --bf16 "
                             "[on where the CPU has bfloat16 instructions and no GPU is visible]")
    parser.add_argument("--data_dir", default=os.path.join(tempfile.gettempdir(), "gantut_bench"),
                        help="where the demo pairs and their cache go [%(default)s]")
    parser.add_argument("--figure", help="write input | generated | target rows to this PNG")
    return parser.parse_args()


def model_session(args, image_size):
    """A graph, a session and the full-width Pix2Pix in it, initialised."""
    graph = tf.Graph()
    with graph.as_default():
        sess = tf.Session(config=session_config(args.threads, args.bf16))
        tf.set_random_seed(0)
        model = Pix2Pix(sess, image_size=image_size)
        sess.run(tf.global_variables_initializer())
    return graph, sess, model


def throughput(args, image_size, batch_size):
    """Median images per second of training steps on random pairs."""
    graph, sess, model = model_session(args, image_size)
    rng = np.random.default_rng(0)
    pairs = rng.uniform(-1, 1, (2, batch_size, image_size, image_size, 3))
    seconds = []
    with graph.as_default(), sess:
        for _ in range(args.warmup + args.steps):
            started = time.perf_counter()
            model.train_step(*pairs)
            seconds.append(time.perf_counter() - started)
    return batch_size / np.median(seconds[args.warmup:])


def demo_pairs(data_dir):
    """The trainer's demo pairs at 64 px as their uint8 cache, split (train, test) as it does."""
    folder = make_demo_pairs(os.path.join(data_dir, "demo_pairs_%dpx" % DEMO_SIZE),
                             size=DEMO_SIZE)
    pairs = load_pairs(folder, DEMO_SIZE, cache_dir=os.path.join(data_dir, "pair_cache"))
    train_rows, test_rows = split_holdout(len(pairs), 0.2)
    return pairs, train_rows, test_rows


def train_for(model, pairs, rows, minutes):
    """Train on `rows` of `pairs` for `minutes` of wall time, epoch after epoch, with a progress
    line; return steps."""
    batches = (batch for epoch in itertools.count()
               for batch in feed_pairs(pairs, rows, FEED, seed=0, epoch=epoch))
    step = 0
    # timed_steps first: zip stops at its end without drawing another batch.
    for step, (_, (inputs, targets)) in zip(timed_steps(60 * minutes, "training pix2pix",
                                                      FEED.batch_size, "pairs"), batches):
        model.train_step(inputs, targets)
    return step


def quality(args):
    """(translation L1, input L1, mean side L1, steps) on the demo test pairs."""
    pairs, train_rows, test_rows = demo_pairs(args.data_dir)
    inputs, targets = pair_views(pairs[test_rows], FEED)
    _, mean_side = pair_views(pairs[train_rows].mean(axis=0, keepdims=True), FEED)
    graph, sess, model = model_session(args, DEMO_SIZE)
    with graph.as_default(), sess:
        steps = train_for(model, pairs, train_rows, args.minutes)
        translated = model.translate(inputs)
    if args.figure:
        save_images(sample_rows(inputs[:8], translated[:8], targets[:8]), (4, 6), args.figure)
    # Pixels are in [-1, 1]; halved, the distances are in [0, 1] units.
    return (np.abs(translated - targets).mean() / 2, np.abs(inputs - targets).mean() / 2,
            np.abs(mean_side - targets).mean() / 2, steps)


def main():
    args = parse_args()
    print("threads=%d bf16=%s" % (args.threads, args.bf16))
    for image_size in (64, 256):
        for batch_size in (1, 4):
            print("pix2pix_img_per_s=%.2f size=%d batch=%d"
                  % (throughput(args, image_size, batch_size), image_size, batch_size))
    translation, as_input, mean_side, steps = quality(args)
    print("translation_l1=%.4f input_l1=%.4f mean_side_l1=%.4f steps=%d minutes=%g"
          % (translation, as_input, mean_side, steps, args.minutes))


if __name__ == "__main__":
    main()
