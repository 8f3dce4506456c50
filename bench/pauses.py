#!/usr/bin/env python3
"""Benchmark: the training loop's pauses per epoch at CelebA's figures (project addition to
Part 5).

What `DCGAN.train` does besides the steps' runs, timed piece by piece on the posts' 64x64 model
with the trainer's code, and counted as an epoch of CelebA has it: 3,102 steps (202,599 faces,
2 % held out, batches of 64), the trainer's default frequencies (a summary every 10 steps, a
grid every 100, a checkpoint every 500 and at the epoch's end), quality figures of 1,000 samples,
and the loss chart and GIF at the end of epoch 20, where they are largest. Last line:

    pause_s_per_epoch=<the loop's wall time outside the steps' runs>
    host_cpu_s_per_epoch=<the CPU seconds that work costs, the evaluation process's included>

    .venv/bin/python bench/pauses.py --threads 2

Graph runs for grids and evaluation samples count as this CPU runs them (on a GPU they are
shorter). Work in other threads and processes (the batches cut ahead; the grids and evaluation
samples drawn from a snapshot of the weights; the checkpoints, loss chart and GIF written; the
quality figures) counts in the CPU seconds only. The evaluation process's start (its models,
the real set's figures) comes once a run and is printed apart.
"""
import argparse
import contextlib
import itertools
import os
import sys
import tempfile
import time

# The repository first, for extras.machine.tfenv, which must come before numpy and TensorFlow.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import extras.machine.tfenv  # noqa: E402,F401  (TensorFlow's logging, see the module)

import numpy as np  # noqa: E402

from extras.data.dataset import feed_batches  # noqa: E402
from extras.machine.cpu import bf16_wins, fused_batch_norm_wins  # noqa: E402
from extras.machine.session import new_session  # noqa: E402
from extras.run.config import DEFAULTS, TrainingConfig  # noqa: E402
from extras.run.checkpoints import new_saver  # noqa: E402
from extras.run.plots import write_progress_gif  # noqa: E402
from extras.run.training import TrainingRun  # noqa: E402
from extras.utils import ALL_CORES  # noqa: E402
from gantut_gan import DCGAN  # noqa: E402
from gantut_imgfuncs import transform  # noqa: E402
from train_throughput import demo_images  # noqa: E402

CELEBA_STEPS = 3102  # an epoch of CelebA's aligned faces in batches of 64
EPOCH = 20  # the epoch whose end is timed: `--epoch 20`, the posts' run, at its last
STEPS_TIMED = 300  # steps whose own work is timed, then counted CELEBA_STEPS times


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=ALL_CORES,
                        help="TensorFlow threads [every core: %d]" % ALL_CORES)
    parser.add_argument("--data_dir", default=os.path.join(tempfile.gettempdir(), "gantut_bench"),
                        help="where the demo faces and their cache go [%(default)s]")
    return parser.parse_args()


class Clock(object):
    """Wall and CPU seconds of timed pieces, by name, with how often an epoch has each."""

    def __init__(self):
        self.pieces = {}

    @contextlib.contextmanager
    def piece(self, name, per_epoch, repeats=1, extra_cpu=lambda: 0.0):
        """Time the block, which does the piece `repeats` times (a piece timed in several
        blocks adds them up); `extra_cpu`: the CPU seconds so far of work done elsewhere
        (another process) for it."""
        wall, cpu, other = time.perf_counter(), time.process_time(), extra_cpu()
        yield
        _, walls, cpus, count = self.pieces.get(name, (per_epoch, 0.0, 0.0, 0))
        self.pieces[name] = (per_epoch, walls + time.perf_counter() - wall,
                             cpus + time.process_time() - cpu + extra_cpu() - other,
                             count + repeats)

    def report(self, background=()):
        """The table, then the two totals per epoch; pieces in `background` cost CPU only."""
        lines = ["%-22s %9s %9s %9s" % ("piece", "per epoch", "wall_s", "cpu_s")]
        pause = cpu = 0.0
        for name, (count, walls, cpus, repeats) in self.pieces.items():
            wall, used = walls / repeats, cpus / repeats
            lines.append("%-22s %9d %9.5f %9.5f" % (name, count, wall, used))
            pause += 0 if name in background else count * wall
            cpu += count * used
        lines.append("pause_s_per_epoch=%.2f host_cpu_s_per_epoch=%.2f" % (pause, cpu))
        return "\n".join(lines)


def process_cpu_seconds(pid):
    """User + system CPU seconds of process `pid` so far (Linux's /proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def evaluation_process_cpu(run):
    """The CPU seconds so far of `run`'s evaluation process (0 before it starts)."""
    pool = run.evaluation.pool
    return sum(process_cpu_seconds(pid) for pid in (pool._processes if pool else ()))


def the_epochs_before(run, dcgan, sample_dir, images):
    """What 20 epochs leave behind: the loss log of every step, each epoch's grid, and the
    graph runs of grids, evaluation samples and checkpoints set up by their first call."""
    rng = np.random.default_rng(0)
    for step in range(1, EPOCH * CELEBA_STEPS + 1):
        run.loss_log.add(step, (step - 1) // CELEBA_STEPS,
                         {"d_loss": rng.uniform(0.5, 1.5), "g_loss": rng.uniform(1, 3)})
    sample_images = transform(images[:dcgan.sample_size], is_crop=False)
    for epoch in range(EPOCH):
        dcgan.sample_later(run.writes, sample_dir, "epoch_%02d.png" % epoch, sample_images)
    dcgan.evaluation_samples_later(run.writes, dcgan.batch_size)
    run.checkpoint(1, 0, 0)
    run.writes.finished(wait=True)
    return sample_images


def time_step_work(clock, run, dcgan, images, rng, log_path):
    """The batches, cut ahead by feed_batches' thread (CPU only: a step waits for none), and the
    loop's own work each step (noise, the feed, the progress line to a log file and the loss
    log), as train does it, without the step's run."""
    # Each batch dropped once fed, as train drops it: batches kept would all be new memory,
    # whose page faults cost several times the cutting itself.
    with clock.piece("batches cut ahead", CELEBA_STEPS, STEPS_TIMED):
        batches = (batch for epoch in itertools.count()
                   for _, batch in feed_batches(images, dcgan.batch_size, 0, epoch))
        for batch in itertools.islice(batches, STEPS_TIMED):
            pass
    losses = {"d_loss": 1.0, "g_loss": 2.0}
    with open(log_path, "w", buffering=1) as log, contextlib.redirect_stdout(log), \
            clock.piece("step's own work", CELEBA_STEPS, STEPS_TIMED):
        for step in range(1, STEPS_TIMED + 1):
            feed = {dcgan.image_bytes: batch, dcgan.is_training: True,
                    dcgan.z: rng.uniform(-1, 1, [dcgan.batch_size, dcgan.z_dim])}
            run.record(step, 0, step - 1, losses)
    return feed


def main():
    args = parse_args()
    images = demo_images(args.data_dir, 64)
    work = tempfile.mkdtemp(prefix="pauses_")
    folders = {name: os.path.join(work, name) for name in ("checkpoint", "samples", "logs")}
    for folder in folders.values():
        os.makedirs(folder)
    config = TrainingConfig(epoch=EPOCH + 1, checkpoint_dir=folders["checkpoint"],
                            sample_dir=folders["samples"], logs_dir=folders["logs"])
    clock, rng = Clock(), np.random.default_rng(0)
    with new_session(args.threads, bf16_wins(), seed=0) as sess, \
            open(os.devnull, "w") as quiet, contextlib.redirect_stdout(quiet):
        dcgan = DCGAN(sess, fused_bn=fused_batch_norm_wins())
        dcgan.optimizers(DEFAULTS.learning_rate, DEFAULTS.beta1)
        dcgan.saver = new_saver(config.max_to_keep)
        run = TrainingRun(dcgan, config, CELEBA_STEPS, dcgan.batch_size)
        with run:
            sample_images = the_epochs_before(run, dcgan, folders["samples"], images)
            feed = time_step_work(clock, run, dcgan, images, rng, os.path.join(work, "log.txt"))
            summaries = sess.run([dcgan.d_sum, dcgan.g_sum], feed)
            every = CELEBA_STEPS // DEFAULTS.summary_freq
            with clock.piece("summaries written", every, 50):
                for _ in range(50):
                    for summary in summaries:
                        run.writer.add_summary(summary, 1)
            every = CELEBA_STEPS // DEFAULTS.sample_freq + 1
            for n in range(5):  # as the loop's: the snapshot, then the grid in the background
                with clock.piece("sample grids", every):
                    dcgan.sample_later(run.writes, folders["samples"], "grid_%d.png" % n,
                                       sample_images)
                with clock.piece("sample grids drawn", every):
                    run.writes.finished(wait=True)
            every = CELEBA_STEPS // DEFAULTS.ckpt_freq + 1
            for n in range(3):  # the loop's part, then the writing in the background
                with clock.piece("checkpoints", every):
                    run.checkpoint(EPOCH * CELEBA_STEPS + n, EPOCH, n)
                with clock.piece("checkpoints written", every):
                    run.writes.finished(wait=True)
            run.loss_log.plot()  # the epoch before drew it too: matplotlib is loaded
            with clock.piece("loss chart", 1):  # the loop's part, then the drawing
                run.writes.submit(run.loss_log.plot, list(run.loss_log.rows))
            with clock.piece("loss chart drawn", 1):
                run.writes.finished(wait=True)
            write_progress_gif(folders["samples"], EPOCH - 1)  # as the epoch before left it
            with clock.piece("GIF", 1):  # the loop queues it after the epoch's grid
                run.writes.submit(write_progress_gif, folders["samples"], EPOCH)
            with clock.piece("GIF written", 1):
                run.writes.finished(wait=True)
            real = images[:DEFAULTS.eval_samples]
            with clock.piece("evaluation samples", 1):  # of the last grid's snapshot
                generated = dcgan.evaluation_samples_later(run.writes, len(real))
            with clock.piece("evaluation samples drawn", 1):
                run.writes.finished(wait=True)
            with clock.piece("evaluation start", 0, extra_cpu=lambda: evaluation_process_cpu(run)):
                run.evaluation.submit(0, 0, generated.result(), real)
                run.evaluation.finished(wait=True)
            with clock.piece("evaluation handed over", 1):
                run.evaluate_later(1, 0, generated, real)
                run.log_evaluations()  # hands the images over; the figures are not ready
            with clock.piece("evaluation", 1, extra_cpu=lambda: evaluation_process_cpu(run)):
                run.evaluation.finished(wait=True)
    print("threads=%d steps_per_epoch=%d epoch=%d eval_samples=%d"
          % (args.threads, CELEBA_STEPS, EPOCH, len(real)))
    print(clock.report(background=(
        "batches cut ahead", "sample grids drawn", "checkpoints written", "loss chart drawn",
        "GIF written", "evaluation samples drawn", "evaluation start", "evaluation")))


if __name__ == "__main__":
    main()
