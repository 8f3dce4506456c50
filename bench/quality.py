#!/usr/bin/env python3
"""Benchmark: how real the faces of the TF port and of its PyTorch peer look after the same
training time (project addition beside Part 5).

Trains the project's DCGAN, then its PyTorch peer (bench/torch_peer.py, needs
bench/requirements.txt; as bench/train_throughput.py --peer runs it) for the same wall time each,
on the same batches and noise; then extras.run.metrics scores the samples each draws from the same
noise against real images held out from training. 8x8 grids go to --data_dir. Last line:

    ours_face_rate=<a> peer_face_rate=<b> ours_fd=<c> peer_fd=<d>

    .venv/bin/python bench/quality.py --dataset demo --minutes 3 --threads 2

`--loss gan wgan-gp --nopeer` compares the trainer's two losses instead; the last line then
names each model: ours_face_rate=.. ours_wgan_gp_face_rate=.. ...
"""
import argparse
import os
import sys
import tempfile
import time

# The repository first, for extras.machine.tfenv, which must come before numpy and TensorFlow.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import extras.machine.tfenv  # noqa: E402,F401  (TensorFlow's logging, see the module)

import numpy as np  # noqa: E402

import extras.run.metrics  # noqa: E402
from extras.data.dataset import load_dataset, split_rows  # noqa: E402
from gantut_gan import GANLoss, LOSSES  # noqa: E402
from gantut_imgfuncs import inverse_transform, save_images, to_uint8  # noqa: E402
from extras.machine.cpu import bf16_wins, fused_batch_norm_wins
from extras.utils import ALL_CORES, timed_steps  # noqa: E402
from train_throughput import (demo_images, device_line, tf_training,  # noqa: E402
                              torch_peer_model, training_work)

IMAGE_SIZE = 64
BATCH_SIZE = 64


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="demo",
                        help="folder of 64x64 aligned face images (searched recursively), or "
                             "'demo' for the trainer's 4,000 cartoon faces [demo]")
    parser.add_argument("--minutes", type=float, default=3.0,
                        help="training time of each model, in minutes [3]")
    parser.add_argument("--threads", type=int, default=ALL_CORES,
                        help="threads of each framework [every core: %d]" % ALL_CORES)
    parser.add_argument("--samples", type=int, default=1000,
                        help="samples drawn from each model and real images held out from "
                             "training to score them against [1000]")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=bf16_wins(),
                        help="train ours in oneDNN bfloat16 mixed precision, as the trainer's "
                             "--bf16, and the peer under torch.autocast bfloat16 "
                             "[this machine's default: %(default)s]")
    parser.add_argument("--fused_bn", action=argparse.BooleanOptionalAction,
                        default=fused_batch_norm_wins(),
                        help="batch norm in the fused kernel, as the trainer's --fused_bn "
                             "[this machine's default: %(default)s]")
    parser.add_argument("--peer_compile", action="store_true",
                        help="the peer's networks under torch.compile")
    parser.add_argument("--loss", nargs="+", choices=list(LOSSES), default=[GANLoss.name],
                        help="the trainer's --loss of our model; several train one model each "
                             "[%(default)s]")
    parser.add_argument("--nopeer", dest="peer", action="store_false",
                        help="do not train the PyTorch peer")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the held-out split, the sample noise and the metrics [0]")
    parser.add_argument("--data_dir", default=os.path.join(tempfile.gettempdir(), "gantut_bench"),
                        help="where the demo faces, image caches and sample grids go "
                             "[%(default)s]")
    return parser.parse_args()


def load_images(dataset, data_dir):
    """The data set as a uint8 array: the demo faces, or a folder's images through the
    trainer's cache (kept in `data_dir`, one cache folder per data set folder name)."""
    if dataset == "demo":
        return demo_images(data_dir, IMAGE_SIZE)
    folder = os.path.abspath(os.path.expanduser(dataset))
    cache = os.path.join(data_dir, "cache_" + os.path.basename(folder))
    return load_dataset(folder, IMAGE_SIZE, cache_dir=cache)


def split_held_out(images, count, seed):
    """(training images, `count` real images held out from training), a random split."""
    if len(images) < count + BATCH_SIZE:
        raise SystemExit("error: %d images are too few to hold out --samples %d and still "
                         "train; lower --samples" % (len(images), count))
    kept, held_out = split_rows(len(images), count, seed)
    return images[kept], np.asarray(images[held_out])


def train_for(name, train_step, work, seconds):
    """Train `name` on (batch, noise) pairs from `work` until `seconds` have passed, with a
    progress line; return the steps."""
    steps = 0
    for steps in timed_steps(seconds, "training " + name, BATCH_SIZE):
        train_step(*next(work))
    return steps


def as_uint8(samples):
    """Generator output in [-1, 1] as the uint8 images extras.run.metrics takes."""
    return to_uint8(inverse_transform(samples))


def model_name(loss):
    """How the figures name our model trained with `loss`: ours (the posts' loss), ours_wgan_gp."""
    return "ours" if loss == GANLoss.name else "ours_" + loss.replace("-", "_")


def train_and_sample(args, training_images, sample_z):
    """{name: (steps trained, samples of sample_z in [-1, 1])} for ours with each --loss and
    for the peer."""
    seconds = 60 * args.minutes
    results = {}
    for loss in args.loss:
        with tf_training(args.threads, args.bf16, IMAGE_SIZE, BATCH_SIZE, loss,
                         args.fused_bn) as (dcgan, train_tf):
            name = model_name(loss)
            steps = train_for(name, train_tf, training_work(training_images, BATCH_SIZE),
                              seconds)
            results[name] = (steps, dcgan.generate(sample_z))
    if args.peer:
        peer_model = torch_peer_model(args.threads, IMAGE_SIZE, bf16=args.bf16,
                                      compile=args.peer_compile)
        print("peer: %s" % peer_model.mode(), flush=True)
        peer_steps = train_for("peer", peer_model.train_step,
                               training_work(training_images, BATCH_SIZE), seconds)
        results["peer"] = (peer_steps, peer_model.generate(sample_z))
    return results


def main():
    args = parse_args()
    print(device_line(), flush=True)
    training_images, held_out = split_held_out(load_images(args.dataset, args.data_dir),
                                               args.samples, args.seed)
    sample_z = np.random.default_rng(args.seed).uniform(-1, 1, [args.samples, 100])
    results = train_and_sample(args, training_images, sample_z)
    figures = {}
    for name, (steps, samples) in results.items():
        grid = save_images(samples[:64], (8, 8),
                           os.path.join(args.data_dir, "quality_%s.png" % name))
        started = time.perf_counter()
        figures[name] = extras.run.metrics.evaluate(as_uint8(samples), held_out, args.seed)
        print("%s: %d steps in %g min, evaluated in %.0f s, grid %s"
              % (name, steps, args.minutes, time.perf_counter() - started, grid))
        print("  " + " ".join("%s=%.4g" % item for item in sorted(figures[name].items())))
    print(" ".join(["%s_face_rate=%.3f" % (name, figures[name]["face_rate"]) for name in figures]
                   + ["%s_fd=%.4f" % (name, figures[name]["face_fd"]) for name in figures]))


if __name__ == "__main__":
    main()
