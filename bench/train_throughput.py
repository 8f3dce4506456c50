#!/usr/bin/env python3
"""Benchmark: DCGAN training throughput on the demo faces (project addition to Part 5).

Trains the posts' DCGAN (batch 64, 64x64, one D + two G updates per step) for a fixed number of
steps, feeding batches exactly as gantut_trainer.py does, and measures each step and the time it
waited for its batch. Last line:

    train_img_per_s=<median over steps> data_wait_frac=<share of step time spent waiting for input>

    .venv/bin/python bench/train_throughput.py --threads 2 [--bf16]

With `--peer torch` it also trains the same model written in PyTorch (bench/torch_peer.py, needs
bench/requirements.txt) in the same process, on the same batches and noise and with as many
threads, alternating blocks of steps between the two so that both see the same machine state.
`--bf16` applies to TensorFlow only. Last line:

    tf_img_per_s=<median over steps> torch_img_per_s=<median over steps> ratio=<tf / torch>

`--loss wgan-gp` times WGAN-GP's steps instead (one critic update per batch, a G update every
fifth). `--augment` feeds flipped and jittered batches, as the trainer's --augment, and also
prints what the augmentation costs per batch, alone and as a share of a step:

    augment_ms_per_batch=<median> augment_share_of_step=<ms per batch / ms per step>
"""
import argparse
import contextlib
import itertools
import math
import os
import resource
import sys
import tempfile
import time

# The repository first, for gantut_tfenv, which must come before numpy and TensorFlow.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import gantut_tfenv  # noqa: E402,F401  (TensorFlow's logging, see the module)

import numpy as np  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402

from demo_faces import make_demo_dataset  # noqa: E402
from gantut_dataset import augment_images, feed_batches, load_dataset  # noqa: E402
from gantut_gan import DCGAN, LOSSES  # noqa: E402
from gantut_run import session_config  # noqa: E402
from gantut_trainer import WGAN_GP_ADAM  # noqa: E402
from gantut_utils import ALL_CORES  # noqa: E402


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
    parser.add_argument("--loss", choices=LOSSES, default="gan",
                        help="the trainer's --loss [gan]")
    parser.add_argument("--augment", action="store_true",
                        help="flip and jitter each batch, as the trainer's --augment")
    parser.add_argument("--data_dir", default=os.path.join(tempfile.gettempdir(), "gantut_bench"),
                        help="where the demo faces and their cache go [%(default)s]")
    parser.add_argument("--peer", choices=["torch"],
                        help="also time this framework's version of the model, alternating "
                             "with TensorFlow, and compare the two")
    parser.add_argument("--block", type=int, default=5,
                        help="with --peer: steps each framework runs before the other's turn [5]")
    return parser.parse_args()


def demo_images(data_dir, image_size):
    """The trainer's demo data set (4,000 faces) as its uint8 cache."""
    faces = make_demo_dataset(os.path.join(data_dir, "demo_%dpx" % image_size),
                              size=image_size, seed=0)
    return load_dataset(faces, image_size, cache_dir=os.path.join(data_dir, "cache"))


def endless_batches(images, batch_size, augment=False):
    """The trainer's batches, epoch after epoch."""
    epoch = 0
    while True:
        for _, batch in feed_batches(images, batch_size, seed=0, epoch=epoch, augment=augment):
            yield batch
        epoch += 1


@contextlib.contextmanager
def tf_training(threads, bf16, image_size, batch_size, loss="gan"):
    """(model, step): the project's DCGAN in its own graph and session, and a function training
    it one step on (batch, noise), the way the trainer does (with the trainer's Adam settings
    for `loss`)."""
    with tf.Graph().as_default(), tf.Session(config=session_config(threads, bf16)) as sess:
        tf.set_random_seed(0)
        dcgan = DCGAN(sess, image_size=image_size, batch_size=batch_size, loss=loss)
        adam = (WGAN_GP_ADAM["learning_rate"], WGAN_GP_ADAM["beta1"], WGAN_GP_ADAM["beta2"]) \
            if loss == "wgan-gp" else (0.0002, 0.5)
        d_optim, g_optim = dcgan.optimizers(*adam)
        sess.run(tf.global_variables_initializer())
        steps = itertools.count(1)
        yield dcgan, lambda batch, batch_z: dcgan.train_step(
            d_optim, g_optim, batch, batch_z, g_updates=dcgan.g_updates(next(steps)))


def torch_peer_model(threads, image_size):
    """The PyTorch peer of the same model (bench/torch_peer.py), using `threads` threads."""
    import torch
    from torch_peer import TorchDCGAN
    torch.set_num_threads(threads)
    return TorchDCGAN(image_size=image_size)


def noise_batches(batch_size, z_dim=100):
    """Uniform [-1, 1] noise batches from a fixed seed, as the trainer draws them."""
    rng = np.random.default_rng(0)
    while True:
        yield rng.uniform(-1, 1, [batch_size, z_dim])


def time_steps(train, work, count):
    """Train `count` steps on the (batch, noise) pairs of the iterator `work`; return per-step
    (seconds, seconds waiting for the pair)."""
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        batch, batch_z = next(work)
        waited = time.perf_counter() - started
        train(batch, batch_z)
        timings.append((time.perf_counter() - started, waited))
    return timings


def training_work(images, batch_size, augment=False):
    """The trainer's (batch, noise) pairs, endlessly."""
    return zip(endless_batches(images, batch_size, augment), noise_batches(batch_size))


def measure(args, images):
    """Return per-step (seconds, seconds waiting for the batch) for the timed steps."""
    with tf_training(args.threads, args.bf16, args.image_size, args.batch_size,
                     args.loss) as (_, train):
        timings = time_steps(train, training_work(images, args.batch_size, args.augment),
                             args.warmup + args.steps)
    return np.array(timings[args.warmup:])


def measure_with_peer(args, images):
    """Per-step seconds of TensorFlow and of the peer, alternating blocks of the same batches."""
    work = training_work(images, args.batch_size)
    seconds = {"tf": [], "peer": []}
    with tf_training(args.threads, args.bf16, args.image_size, args.batch_size) as (_, train_tf):
        trainers = {"tf": train_tf,
                    "peer": torch_peer_model(args.threads, args.image_size).train_step}
        for _ in range(math.ceil((args.warmup + args.steps) / args.block)):
            block = list(itertools.islice(work, args.block))
            for name, train in trainers.items():
                seconds[name] += [step for step, _ in time_steps(train, iter(block), len(block))]
    return {name: np.array(steps[args.warmup:]) for name, steps in seconds.items()}


def main():
    args = parse_args()
    images = demo_images(args.data_dir, args.image_size)
    if args.peer:
        seconds = measure_with_peer(args, images)
    else:
        timings = measure(args, images)
    peak_rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print("threads=%d bf16=%s steps=%d batch=%d size=%d peak_rss_gb=%.2f"
          % (args.threads, args.bf16, args.steps, args.batch_size, args.image_size, peak_rss_gb))
    if args.peer:
        tf_rate, peer_rate = (args.batch_size / np.median(seconds[name]) for name in ("tf", "peer"))
        print("tf_img_per_s=%.1f %s_img_per_s=%.1f ratio=%.2f"
              % (tf_rate, args.peer, peer_rate, tf_rate / peer_rate))
    else:
        img_per_s = args.batch_size / np.median(timings[:, 0])
        wait_frac = timings[:, 1].sum() / timings[:, 0].sum()
        print("train_img_per_s=%.1f data_wait_frac=%.4f" % (img_per_s, wait_frac))
        if args.augment:
            augment_seconds = augment_time(images, args.batch_size)
            print("augment_ms_per_batch=%.2f augment_share_of_step=%.4f"
                  % (1000 * augment_seconds, augment_seconds / np.median(timings[:, 0])))


def augment_time(images, batch_size, count=50):
    """Median seconds augment_images takes for one batch, timed alone."""
    rng = np.random.default_rng(0)
    seconds = []
    for _ in range(count):
        batch = images[np.sort(rng.choice(len(images), batch_size, replace=False))]
        started = time.perf_counter()
        augment_images(batch, rng)
        seconds.append(time.perf_counter() - started)
    return np.median(seconds)


if __name__ == "__main__":
    main()
