#!/usr/bin/env python3
"""Benchmark: DCGAN training throughput on the demo faces (project addition to Part 5).

Trains the posts' DCGAN (batch 64, 64x64, one D + two G updates per step) for a fixed number of
steps, fed as gantut_trainer.py feeds it, and times each step and its wait for input. Last line:

    train_img_per_s=<median over steps> data_wait_frac=<share of step time spent waiting for input>
    step_ops=<ops one traced step runs: the host's dispatches per step, whatever the device>

    .venv/bin/python bench/train_throughput.py --threads 2 [--bf16 | --no-bf16]

- `--peer torch` (or `torch-compile`): the same model in PyTorch too (bench/torch_peer.py, needs
  bench/requirements.txt), on the same batches and noise, in alternating blocks of steps; last
  line `tf_img_per_s=.. torch_img_per_s=.. ratio=<tf / torch>` (torch_compile_img_per_s);
- `--loss wgan-gp` (or another loss kind): its steps instead;
- `--profile`: the per-op breakdown of one traced step, to --profile_out and stdout;
- `--host_cost`: the model shrunk to one channel a layer, batch 2, so that a step's time is what
  the host spends on it; last line `host_ms_per_step=<median> step_ops=<..>`;
- `--mixed_precision`: float16 with loss scaling on an NVIDIA GPU, as the trainers';
- `--augment`: augmented batches, and `augment_ms_per_batch=<median> augment_share_of_step=<..>`.

Every run prints a `placement:` line: each device's ops in one traced step and their share of
op time.
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

# The repository first, for extras.machine.tfenv, which must come before numpy and TensorFlow.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import extras.machine.tfenv  # noqa: E402,F401  (TensorFlow's logging, see the module)

import numpy as np  # noqa: E402
import tensorflow.compat.v1 as tf  # noqa: E402

from demo_faces import make_demo_dataset  # noqa: E402
from extras.machine.device import choose_device, gpu_visible  # noqa: E402
from extras.data.dataset import augment_images, feed_batches, load_dataset  # noqa: E402
from gantut_gan import DCGAN, GANLoss, LOSSES  # noqa: E402
from extras.model.precision import mixed_precision_plan  # noqa: E402
from extras.machine.cpu import (BF16_INSTRUCTIONS, bf16_wins, cpu_flags, cpu_info,
                                fused_batch_norm_wins)
from extras.machine.session import session_config
from extras.utils import ALL_CORES  # noqa: E402

PEERS = ("torch", "torch-compile")
# Op types counted as convolution in --profile, after stripping oneDNN's prefixes.
CONV_OPS = ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter", "FusedConv2D",
            "Conv2DWithBias", "Conv2DBackpropFilterWithBias", "Conv2DTranspose",
            "DepthwiseConv2dNative")


# --host_cost's batch and layer width (gf_dim = df_dim): small enough that a step's time is
# almost all the host's.
HOST_COST_BATCH, HOST_COST_WIDTH = 2, 1


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps [40]")
    parser.add_argument("--warmup", type=int, default=5, help="untimed first steps [5]")
    parser.add_argument("--threads", type=int, default=ALL_CORES,
                        help="TensorFlow threads [every core: %d]" % ALL_CORES)
    parser.add_argument("--batch_size", type=int, default=64, help="images per step [64]")
    parser.add_argument("--image_size", type=int, default=64, help="image size [64]")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=bf16_wins(),
                        help="oneDNN bfloat16 auto mixed precision, as the trainer's --bf16 "
                             "[this machine's default: %(default)s]")
    parser.add_argument("--mixed_precision", action="store_true",
                        help="float16 with loss scaling on an NVIDIA GPU, as the trainer's "
                             "--mixed_precision")
    parser.add_argument("--fused_bn", action=argparse.BooleanOptionalAction,
                        default=fused_batch_norm_wins(),
                        help="batch norm in the fused kernel, as the trainer's --fused_bn "
                             "[this machine's default: %(default)s]")
    parser.add_argument("--loss", choices=list(LOSSES), default=GANLoss.name,
                        help="the trainer's --loss [%(default)s]")
    parser.add_argument("--augment", action="store_true",
                        help="flip and jitter each batch, as the trainer's --augment")
    parser.add_argument("--data_dir", default=os.path.join(tempfile.gettempdir(), "gantut_bench"),
                        help="where the demo faces and their cache go [%(default)s]")
    parser.add_argument("--peer", choices=PEERS,
                        help="also time this framework's version of the model, alternating "
                             "with TensorFlow, and compare the two (torch-compile: the same "
                             "under torch.compile)")
    parser.add_argument("--block", type=int, default=5,
                        help="with --peer: steps each framework runs before the other's turn [5]")
    parser.add_argument("--profile", action="store_true",
                        help="trace one step and print its per-op breakdown")
    parser.add_argument("--profile_out", default="train_step_profile.txt",
                        help="with --profile: the text file it goes to [%(default)s]")
    parser.add_argument("--top", type=int, default=25, help="with --profile: ops listed [25]")
    parser.add_argument("--host_cost", action="store_true",
                        help="the step's cost to the host alone: the model shrunk to one channel "
                             "a layer (gf_dim = df_dim = 1), batch 2; prints host_ms_per_step")
    args = parser.parse_args()
    args.width = HOST_COST_WIDTH if args.host_cost else 64
    if args.host_cost:
        args.batch_size = HOST_COST_BATCH
    return args


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
def tf_training(threads, bf16, image_size, batch_size, loss=GANLoss.name, fused_bn=False,
                mixed_precision=False, width=64):
    """(model, step): the project's DCGAN in its own graph and session, and a function training
    it one step on (batch, noise) as the trainer's steps do (its one-run step,
    with the trainer's Adam settings for `loss`); `width`: gf_dim and df_dim."""
    mixed = mixed_precision_plan(mixed_precision, gpu_visible())
    with tf.Graph().as_default(), \
            tf.Session(config=session_config(threads, bf16, mixed.float16)) as sess:
        tf.set_random_seed(0)
        dcgan = DCGAN(sess, image_size=image_size, batch_size=batch_size, loss=loss,
                      fused_bn=fused_bn, loss_scale=mixed.loss_scale, gf_dim=width, df_dim=width)
        _, _, one_run_steps = dcgan.optimizers(**LOSSES[loss].adam)
        sess.run(tf.global_variables_initializer())
        steps = itertools.count(1)

        def train(batch, batch_z):
            feed = {dcgan.image_bytes: batch, dcgan.z: batch_z, dcgan.is_training: True}
            return dcgan.sess.run(one_run_steps[dcgan.loss_kind.g_updates_after(next(steps))], feed)
        yield dcgan, train


def torch_peer_model(threads, image_size, bf16=False, compile=False):
    """The PyTorch peer of the same model (bench/torch_peer.py), using `threads` threads, in its
    fastest mode for the precision: bfloat16 autocast with `bf16`; torch.compile if asked."""
    import torch
    from torch_peer import TorchDCGAN
    torch.set_num_threads(threads)
    return TorchDCGAN(image_size=image_size, bf16=bf16, compile=compile)


def cpu_model():
    """The CPU's model name, its widest vector unit and its bfloat16 instructions."""
    flags = cpu_flags()
    bf16 = sorted(BF16_INSTRUCTIONS & flags)
    vector = "avx512" if "avx512f" in flags else ("avx2" if "avx2" in flags else "no avx2")
    return "%s (%s, bf16 instructions: %s)" % (cpu_info("model name") or "unknown CPU", vector,
                                               ",".join(bf16) or "none")


def device_line():
    """What this run computes on: the CPU and whether TensorFlow sees a GPU."""
    gpus = tf.config.list_physical_devices("GPU")
    return "device: cpu=%s tf_gpu=%s" % (cpu_model(), ",".join(g.name for g in gpus) or "none")


def tf_levers(args):
    """TensorFlow's levers in one line."""
    # extras.machine.tfenv sets TF_ENABLE_ONEDNN_OPTS=1 unless the environment chose (read once,
    # when TensorFlow is imported); TensorFlow alone turns oneDNN on only on AVX512-VNNI/BF16 or
    # AMX.
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    mixed = mixed_precision_plan(args.mixed_precision, gpu_visible())
    on = {True: "on", False: "off"}
    return ("tf: threads=%d bf16_rewrite=%s fused_bn=%s float16=%s loss_scaling=%s "
            "TF_ENABLE_ONEDNN_OPTS=%s" % (args.threads, on[args.bf16], on[args.fused_bn],
                                          on[mixed.float16], on[mixed.loss_scale is not None],
                                          onednn))


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
    """Return per-step (seconds, seconds waiting for the batch) for the timed steps, and the
    step stats of one more, traced, step."""
    with tf_training(args.threads, args.bf16, args.image_size, args.batch_size,
                     args.loss, args.fused_bn, args.mixed_precision,
                     args.width) as (dcgan, train):
        work = training_work(images, args.batch_size, args.augment)
        timings = time_steps(train, work, args.warmup + args.steps)
        traces, _ = traced_step(dcgan, train, work)
    return np.array(timings[args.warmup:]), traces


def measure_with_peer(args, images):
    """Per-step seconds of TensorFlow and of the peer, alternating blocks of the same batches."""
    work = training_work(images, args.batch_size)
    seconds = {"tf": [], "peer": []}
    with tf_training(args.threads, args.bf16, args.image_size, args.batch_size,
                     fused_bn=args.fused_bn) as (_, train_tf), peer_training(args) as train_peer:
        trainers = {"tf": train_tf, "peer": train_peer}
        for _ in range(math.ceil((args.warmup + args.steps) / args.block)):
            block = list(itertools.islice(work, args.block))
            for name, train in trainers.items():
                seconds[name] += [step for step, _ in time_steps(train, iter(block), len(block))]
    return {name: np.array(steps[args.warmup:]) for name, steps in seconds.items()}


@contextlib.contextmanager
def peer_training(args):
    """The step function of --peer: the PyTorch model in its fastest mode for the precision."""
    peer = torch_peer_model(args.threads, args.image_size, bf16=args.bf16,
                            compile=args.peer == "torch-compile")
    print("peer: %s %s" % (args.peer, peer.mode()), flush=True)
    yield peer.train_step


class TracingSession(object):
    """Stands in for a Session: each run is traced in full, its step stats kept in `traces`."""

    def __init__(self, sess):
        self.sess, self.traces = sess, []

    def run(self, fetches, feed_dict=None):
        metadata = tf.RunMetadata()
        out = self.sess.run(fetches, feed_dict, run_metadata=metadata,
                            options=tf.RunOptions(trace_level=tf.RunOptions.FULL_TRACE))
        self.traces.append(metadata.step_stats)
        return out


def op_type(node):
    """A traced node's op type, from its timeline label `name = Type(inputs)`."""
    label = node.timeline_label
    if " = " in label:
        return label.split(" = ", 1)[1].split("(", 1)[0]
    return node.node_name.split(":")[0]


def base_op_type(kind):
    """The op type without oneDNN's _Mkl / _MklNative / _OneDnn prefixes."""
    for prefix in ("_MklNative", "_MklFused", "_Mkl", "_OneDnn", "_"):
        if kind.startswith(prefix):
            return ("Fused" if prefix == "_MklFused" else "") + kind[len(prefix):]
    return kind


def is_convolution(kind):
    return base_op_type(kind) in CONV_OPS


def profile_report(traces, wall_seconds, top=25):
    """The per-op breakdown of traced runs as text: op time by type and by node, and the share
    of op time that is convolution. Op times add up across threads, so they can exceed the
    step's wall time."""
    by_type, by_node = {}, {}
    for stats in traces:
        for device in stats.dev_stats:
            for node in device.node_stats:
                micros = node.all_end_rel_micros
                if node.node_name in ("_SOURCE", "_SINK") or micros <= 0:
                    continue
                kind = op_type(node)
                count, total = by_type.get(kind, (0, 0))
                by_type[kind] = (count + 1, total + micros)
                key = (node.node_name, kind)
                by_node[key] = by_node.get(key, 0) + micros
    total = sum(micros for _, micros in by_type.values()) or 1
    conv = sum(micros for kind, (_, micros) in by_type.items() if is_convolution(kind))
    lines = ["one training step (%d sess.run calls), wall %.1f ms, op time %.1f ms "
             "(summed over threads)" % (len(traces), 1000 * wall_seconds, total / 1000.0),
             "convolution share of op time: %.1f%% (conv %.1f ms, rest %.1f ms)"
             % (100.0 * conv / total, conv / 1000.0, (total - conv) / 1000.0),
             "", "top op types by time:", "%10s %6s %6s  %s" % ("ms", "share", "count", "type")]
    for kind, (count, micros) in sorted(by_type.items(), key=lambda item: -item[1][1])[:top]:
        lines.append("%10.2f %5.1f%% %6d  %s%s" % (micros / 1000.0, 100.0 * micros / total,
                                                   count, kind,
                                                   "  [conv]" if is_convolution(kind) else ""))
    lines += ["", "top nodes by time:", "%10s %6s  %s" % ("ms", "share", "node (type)")]
    for (name, kind), micros in sorted(by_node.items(), key=lambda item: -item[1])[:top]:
        lines.append("%10.2f %5.1f%%  %s (%s)" % (micros / 1000.0, 100.0 * micros / total,
                                                 name, kind))
    return "\n".join(lines)


def traced_step(dcgan, train, work):
    """Train one step on `work`'s next pair with every run traced; return (its step stats, its
    wall seconds)."""
    tracing = TracingSession(dcgan.sess)
    dcgan.sess = tracing
    try:
        [(wall, _)] = time_steps(train, work, 1)
    finally:
        dcgan.sess = tracing.sess
    return tracing.traces, wall


def ops_by_device(traces):
    """{device: (ops run, their op time in microseconds)} of a traced step."""
    per_device = {}
    for stats in traces:
        for device in stats.dev_stats:
            name = device.device.split("device:")[-1]
            if "stream" in name or "memcpy" in name:
                continue  # a GPU's kernels again, by stream
            nodes = [node for node in device.node_stats
                     if node.node_name not in ("_SOURCE", "_SINK")]
            count, micros = per_device.get(name, (0, 0))
            per_device[name] = (count + len(nodes),
                                micros + sum(node.all_end_rel_micros for node in nodes))
    return per_device


def placement_line(traces):
    """Where a traced step's ops ran: `placement: GPU:0 290 ops (97.1% of op time), CPU:0 ...`."""
    per_device = ops_by_device(traces)
    total = sum(micros for _, micros in per_device.values()) or 1
    return "placement: " + ", ".join(
        "%s %d ops (%.1f%% of op time)" % (name, count, 100.0 * micros / total)
        for name, (count, micros) in sorted(per_device.items(), key=lambda item: -item[1][1]))


def profile_step(args, images):
    """Trace one training step after the warm-up; return its breakdown as text."""
    with tf_training(args.threads, args.bf16, args.image_size, args.batch_size,
                     args.loss, args.fused_bn, args.mixed_precision,
                     args.width) as (dcgan, train):
        work = training_work(images, args.batch_size, args.augment)
        time_steps(train, work, max(args.warmup, 1))
        traces, wall = traced_step(dcgan, train, work)
    return placement_line(traces) + "\n" + profile_report(traces, wall, args.top)


def main():
    args = parse_args()
    print(device_line(), flush=True)
    device, warning = choose_device("auto")  # the trainers' line, and their fallback warning
    print("\n".join(filter(None, [device, warning])), flush=True)
    print("levers: %s" % tf_levers(args), flush=True)
    images = demo_images(args.data_dir, args.image_size)
    if args.profile:
        report = profile_step(args, images)
        with open(args.profile_out, "w") as out:
            out.write(report + "\n")
        print(report)
        print("profile written to %s" % args.profile_out)
        return
    if args.peer:
        seconds = measure_with_peer(args, images)
    else:
        timings, traces = measure(args, images)
        print(placement_line(traces))
    peak_rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print("threads=%d bf16=%s steps=%d batch=%d size=%d peak_rss_gb=%.2f"
          % (args.threads, args.bf16, args.steps, args.batch_size, args.image_size, peak_rss_gb))
    if args.peer:
        tf_rate, peer_rate = (args.batch_size / np.median(seconds[name]) for name in ("tf", "peer"))
        print("tf_img_per_s=%.1f %s_img_per_s=%.1f ratio=%.2f"
              % (tf_rate, args.peer.replace("-", "_"), peer_rate, tf_rate / peer_rate))
    else:
        img_per_s = args.batch_size / np.median(timings[:, 0])
        wait_frac = timings[:, 1].sum() / timings[:, 0].sum()
        # step_ops: what a step costs the host in op dispatches, whatever the device.
        step_ops = sum(count for count, _ in ops_by_device(traces).values())
        if args.host_cost:
            # With next to no arithmetic left, a step's time is what the host spends on it.
            print("host_ms_per_step=%.2f step_ops=%d" % (1000 * np.median(timings[:, 0]),
                                                         step_ops))
            return
        print("train_img_per_s=%.1f data_wait_frac=%.4f step_ops=%d"
              % (img_per_s, wait_frac, step_ops))
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
