"""The run machinery every stage's trainer shares (ours; not in the posts).

The posts' `train` loop, `save` and `load` live with each model (gantut_gan.DCGAN, the pix2pix
stage's Pix2Pix); what lets such a loop be stopped, resumed and watched is here, written once:

- the run a training loop owns: `TrainingRun` (the training `Position` in the checkpoint, the
  Saver, writer, loss log, speed, stop requests, checkpoints when due);
- checkpoints: `save_checkpoint`, `restore_checkpoint` (the newest complete one, damaged ones
  skipped), `checkpoint_paths`, `saved_position`;
- settings: `record_settings`/`saved_settings`, the flags that fix a model's shape, in model.json
  beside the checkpoints;
- the session and its folders: `new_session`, `session_config`, the per-machine choices
  `bf16_wins` and `fused_batch_norm_wins`, `training_folders` (made, cleared of a killed run's
  temp files, locked);
- stopping: `StopRequest` (Ctrl-C and SIGTERM finish the step and checkpoint), `TrainingError`,
  `check_finite`;
- logs: `Speedometer` (img/s and ETA), `LossLog` (logs/losses.csv and .png), `log_metrics`
  (quality figures to TensorBoard and logs/metrics.csv), `save_sample_grid`.
"""
import extras.tfenv  # noqa: F401  (first: TensorFlow then loads without Keras; see it)

import collections
import contextlib
import csv
import glob
import io
import json
import os
import signal
import sys
import time

import numpy as np
import tensorflow.compat.v1 as tf
from absl import flags
from tensorflow.core.protobuf import rewriter_config_pb2

from gantut_imgfuncs import save_images
from extras.device import gpu_visible
from extras.plots import plot_losses
from extras.precision import LOSS_SCALE_VARIABLES
from extras.utils import (FolderBusy, atomic_path, folder_lock, format_seconds, read_json,
                          remove_stale_temp_files)

# Beside the checkpoints: the flags that fix the model's variables.
SETTINGS_FILE = "model.json"
# The variable scope of a model's moving averages of its weights (DCGAN's --g_average).
AVERAGE_SCOPE = "average"


class TrainingError(Exception):
    """Training cannot go on; the message says why, what is kept and what to do."""


def first_line(err):
    """The first line of an exception's message, for one-line error reports."""
    text = getattr(err, "message", None) or str(err)
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


# ----------------------------------------------------------------------------------------------
# Checkpoints and the training position
# ----------------------------------------------------------------------------------------------

# Where training stands, kept in the checkpoint: steps done, the epoch and the batch within it to
# go on at, and the seed of the epochs' shuffles.
Position = collections.namedtuple("Position", "step epoch batch data_seed")


class TrainingRun(object):
    """The run machinery a training loop creates, after the whole graph, and owns: the position
    in the checkpoint (`start`, resumed at once), a Saver of every variable, the writer, loss log,
    speed, stop requests and checkpoints when due. `with run:` makes Ctrl-C a stop request."""

    def __init__(self, sess, config, model_name, shape_flags, total_steps, batch_size):
        self.sess, self.config, self.model_name = sess, config, model_name
        with tf.variable_scope("state"):
            self.counters = tf.get_variable("counters", [len(Position._fields)], tf.int64,
                                            tf.zeros_initializer(), trainable=False)
        self.new_counters = tf.placeholder(tf.int64, [len(Position._fields)],
                                           name="new_counters")
        self.set_counters = tf.assign(self.counters, self.new_counters)
        self.saver = tf.train.Saver(max_to_keep=config.max_to_keep, save_relative_paths=True)
        sess.run(tf.global_variables_initializer())
        self.start = self.resume(shape_flags)
        self.loss_log = LossLog(config.logs_dir, self.start.step)
        self.speed = Speedometer(self.start.step, total_steps, batch_size)
        self.stop = StopRequest()

    def __enter__(self):
        self.writer = tf.summary.FileWriter(self.config.logs_dir, self.sess.graph)
        self.stop.__enter__()
        return self

    def __exit__(self, *exc):
        self.stop.__exit__(*exc)
        self.writer.close()
        return False

    def resume(self, shape_flags):
        """The Position to go on from: the newest checkpoint's, else a new one whose shuffles
        follow --seed (random without one)."""
        config = self.config
        if restore_checkpoint(self.sess, self.saver, config.checkpoint_dir, self.model_name,
                              shape_flags):
            position = Position(*map(int, self.sess.run(self.counters)))
            print(" [*] An existing model was found: resuming at step %d (epoch %d, batch %d)"
                  % position[:3])
            return position
        print(" [*] No checkpoint in %s: starting a new model" % config.checkpoint_dir)
        return Position(0, 0, 0, np.random.randint(2**31) if config.seed is None
                        else config.seed)

    def first_batch(self, epoch):
        """The batch `epoch` starts at: the resumed one in the resumed epoch, else 0."""
        return self.start.batch if epoch == self.start.epoch else 0

    def record(self, step, epoch, batch, losses):
        """After a step: stop at a NaN or infinite loss (check_finite), else log the losses."""
        check_finite(step, epoch, batch, self.config, **losses)
        self.loss_log.add(step, epoch, losses)

    def checkpoint_due(self, step, epoch, batch):
        """Save a checkpoint every --ckpt_freq steps and when a stop was requested; return True
        (after saying how to resume) if training should stop now."""
        if self.stop.requested or step % self.config.ckpt_freq == 0:
            self.checkpoint(step, epoch, batch)
        if self.stop.requested:
            print(" [*] Stopped at step %d; saved a checkpoint in %s. Run the same command "
                  "again to resume." % (step, self.config.checkpoint_dir))
        return self.stop.requested

    def end_epoch(self, step, epoch):
        """The loss chart, then a checkpoint that starts the next epoch."""
        self.loss_log.plot()
        self.checkpoint(step, epoch + 1, 0)

    def checkpoint(self, step, epoch, batch):
        """Save the loss log, then the checkpoint at this position in --checkpoint_dir (a
        resumed run then finds every loss up to its step), and TensorBoard's pointer to it in
        --logs_dir (see point_tensorboard_at)."""
        self.loss_log.save()
        self.sess.run(self.set_counters,
                      {self.new_counters: [step, epoch, batch, self.start.data_seed]})
        point_tensorboard_at(self.config.logs_dir, save_checkpoint(
            self.sess, self.saver, self.config.checkpoint_dir, self.model_name, step))


def saved_position(checkpoint_dir, model_name):
    """The Position in the newest checkpoint of `checkpoint_dir`, read without a graph (None
    where there is none)."""
    for path in checkpoint_paths(checkpoint_dir, model_name)[:1]:
        try:
            return Position(*map(int, tf.train.load_variable(path, "state/counters")))
        except (tf.errors.NotFoundError, tf.errors.DataLossError):
            pass  # a weights-only checkpoint (DCGAN.save), or a damaged one
    return None


def save_checkpoint(sess, saver, checkpoint_dir, model_name, step):
    """Save `saver`'s variables as `checkpoint_dir/model_name-step` and return that path.

    No .meta graph: the graph is this code (and in TensorBoard); it would triple the size of
    every checkpoint. A full disk or an unwritable folder raises TrainingError, naming it.
    """
    # max_to_keep retires only this folder's checkpoints, never those a model was loaded from.
    folder = os.path.abspath(checkpoint_dir)
    saver.set_last_checkpoints_with_time(
        [(path, os.path.getmtime(path + ".index")) for path in saver.last_checkpoints
         if os.path.dirname(os.path.abspath(path)) == folder and os.path.exists(path + ".index")])
    try:
        os.makedirs(checkpoint_dir, exist_ok=True)
        return saver.save(sess, os.path.join(checkpoint_dir, model_name), global_step=step,
                          write_meta_graph=False)
    except (OSError, tf.errors.OpError) as err:
        raise TrainingError(
            "could not write the step %d checkpoint to %s (%s). Free space there, or use "
            "another --checkpoint_dir; the complete checkpoints already there are kept, and "
            "a rerun resumes from the newest." % (step, checkpoint_dir, first_line(err)))


def restore_checkpoint(sess, saver, checkpoint_dir, model_name, shape_flags, averaged=False):
    """Restore the newest complete `model_name` checkpoint in `checkpoint_dir`; return whether
    one was found. With `averaged`, variables whose moving average the checkpoint holds take it
    (a model loaded for use; see restorers_for).

    A checkpoint whose files are missing or truncated is reported by name and the one before
    it is used. One of another model shape stops with a message naming it and the flags that
    fix the shape (`shape_flags`).
    """
    paths = checkpoint_paths(checkpoint_dir, model_name) if checkpoint_dir else []
    for path in paths:
        try:
            if not glob.glob(path + ".data-*"):
                raise tf.errors.DataLossError(None, None, "its .data file is missing")
            for restorer in restorers_for(saver, path, averaged):
                restorer.restore(sess, path)
        except (tf.errors.DataLossError, tf.errors.OutOfRangeError) as err:
            print("warning: checkpoint %s is damaged (%s); trying the one before it"
                  % (path, first_line(err)), file=sys.stderr)
            continue
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as err:
            raise SystemExit("error: checkpoint %s does not fit this model (%s). It was trained "
                             "with other settings (%s); use those, or a new --checkpoint_dir."
                             % (path, first_line(err), ", ".join(shape_flags)))
        # Let the Saver's max_to_keep also retire the checkpoints of earlier runs.
        saver.set_last_checkpoints_with_time(
            [(p, os.path.getmtime(p + ".index")) for p in reversed(paths)])
        print(" [*] Restored %s" % path)
        return True
    return False


def average_of(name):
    """The checkpoint name of the moving average of variable `name`."""
    return AVERAGE_SCOPE + "/" + name


def checkpoint_source(name, saved, averaged):
    """The name in a checkpoint holding `saved` names that variable `name` is restored from
    (None: it keeps its initial value); see restorers_for."""
    if averaged and average_of(name) in saved:
        return average_of(name)
    if name not in saved:
        if name.startswith(average_of("")) and name[len(average_of("")):] in saved:
            return name[len(average_of("")):]
        if name in {variable.op.name for variable in tf.get_collection(LOSS_SCALE_VARIABLES)}:
            return None
    return name  # absent otherwise: the restore fails, naming it


def restorers_for(saver, path, averaged=False):
    """Savers that restore the checkpoint at `path` into this graph: `saver` where the two hold
    the same names. Else a loss-scale variable the checkpoint lacks (saved without
    --mixed_precision) keeps its initial value; an average it lacks (saved without --g_average)
    starts from its variable; with `averaged`, a variable whose average it holds takes that."""
    saved = {name for name, _ in tf.train.list_variables(path)}
    sources = {variable: checkpoint_source(variable.op.name, saved, averaged)
               for variable in tf.global_variables()}
    if all(source == variable.op.name for variable, source in sources.items()):
        return [saver]
    # A checkpoint name may feed two variables (a weight and its new average): a Saver each.
    groups = []
    for variable, source in sources.items():
        if source is not None:
            group = next((group for group in groups if source not in group), None)
            if group is None:
                groups.append({})
                group = groups[-1]
            group[source] = variable
    return [tf.train.Saver(group) for group in groups]


def point_tensorboard_at(logs_dir, checkpoint):
    """Name `checkpoint` in a TF checkpoint state file in `logs_dir` (relative, so the project
    folder can move), where TensorBoard's projector looks first: it would otherwise meet our
    `checkpoint/` folder in the parent and log an error on every reload (docs/development.md)."""
    logs_dir = os.path.abspath(logs_dir)
    if logs_dir != os.path.dirname(os.path.abspath(checkpoint)):
        tf.train.update_checkpoint_state(logs_dir,
                                         os.path.relpath(os.path.abspath(checkpoint), logs_dir))


def checkpoint_paths(checkpoint_dir, model_name):
    """Checkpoint prefixes (`.../DCGAN.model-STEP`) with an index file, newest first.

    Found by their files rather than TF's `checkpoint` list, so a lost or stale list is no
    problem.
    """
    prefixes = [path[:-len(".index")]
                for path in glob.glob(os.path.join(checkpoint_dir, model_name + "-*.index"))]
    return sorted(prefixes, key=checkpoint_step, reverse=True)


def checkpoint_step(prefix):
    """The step in a checkpoint prefix's name (`.../DCGAN.model-STEP`)."""
    return int(prefix.rsplit("-", 1)[1])


# ----------------------------------------------------------------------------------------------
# Settings beside the checkpoints
# ----------------------------------------------------------------------------------------------

def saved_settings(checkpoint_dir, defaults):
    """The settings recorded beside the checkpoints in model.json, over `defaults`. A later
    --train=False then needs no size flags repeated."""
    return {**defaults, **(read_json(os.path.join(checkpoint_dir, SETTINGS_FILE)) or {})}


def record_settings(checkpoint_dir, model_name, settings, legacy=None):
    """Write `settings` (the flags that fix the model) to model.json beside the checkpoints;
    stop, naming both values, if the checkpoints there were made with others.

    `legacy` fills in settings that an older model.json did not record.
    """
    if checkpoint_paths(checkpoint_dir, model_name):
        saved = saved_settings(checkpoint_dir, legacy or {})
        changed = sorted(name for name in settings if saved.get(name, settings[name])
                         != settings[name])
        if changed:
            raise SystemExit(
                "error: %s holds a model trained with %s, but this run asks for %s. Use the "
                "same flags to resume, or a new --checkpoint_dir for a new model."
                % (checkpoint_dir, describe_flags(saved, changed),
                   describe_flags(settings, changed)))
    with atomic_path(os.path.join(checkpoint_dir, SETTINGS_FILE)) as tmp, open(tmp, "w") as out:
        json.dump(settings, out)


def describe_flags(settings, names):
    """`--name value` for each of `names`, as a user would type them."""
    return " ".join("--%s %s" % (name, settings.get(name)) for name in names)


# ----------------------------------------------------------------------------------------------
# The session and the run's folders
# ----------------------------------------------------------------------------------------------

@contextlib.contextmanager
def training_folders(checkpoint_dir, sample_dir, logs_dir):
    """Make a run's folders and hold checkpoint_dir's lock for the block, after clearing the
    temp files a killed run left; a busy folder or a TrainingError ends the program with a
    one-line message."""
    for folder in (checkpoint_dir, sample_dir, logs_dir):
        os.makedirs(folder, exist_ok=True)
    try:
        with folder_lock(checkpoint_dir):
            for folder in (checkpoint_dir, sample_dir):
                remove_stale_temp_files(folder)
            yield
    except (FolderBusy, TrainingError) as err:
        sys.exit("error: %s" % err)


def parse_flags(argv):
    """The flags parser for absl's runner (`app.run(main, flags_parser=parse_flags)`): a bad or
    unknown flag is refused in one `error:` line, with exit status 1, where absl prints a FATAL
    line and a hint."""
    try:
        return flags.FLAGS(argv)
    except flags.Error as err:
        sys.exit("error: %s (--help lists the flags)" % err)


@contextlib.contextmanager
def new_session(threads, bf16, seed=None, float16=False):
    """A Session on a fresh graph, with session_config's settings and, if given, the graph's
    random seed."""
    with tf.Graph().as_default(), \
            tf.Session(config=session_config(threads, bf16, float16)) as sess:
        if seed is not None:
            tf.set_random_seed(seed)
        yield sess


def cpu_info(key):
    """The first value of `key` ("flags", "model name") in /proc/cpuinfo; "" where Linux does
    not say."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                name, _, value = line.partition(":")
                if name.strip() == key:
                    return value.strip()
    except OSError:
        pass
    return ""


def cpu_flags():
    """The CPU's feature flags as Linux reports them (empty where it does not)."""
    return set(cpu_info("flags").split())


# The CPU flags of native bfloat16 arithmetic, as Linux names them.
BF16_INSTRUCTIONS = {"avx512_bf16", "amx_bf16"}


def cpu_has_bf16():
    """True if this CPU computes in bfloat16 natively (AVX512-BF16 or AMX)."""
    return bool(BF16_INSTRUCTIONS & cpu_flags())


def bf16_wins():
    """Whether oneDNN's bfloat16 rewrite is the faster choice here: on a CPU with bfloat16
    instructions, and not where a GPU runs the graph (the rewrite is for the CPU's kernels)."""
    return cpu_has_bf16() and not gpu_visible()


def fused_batch_norm_wins():
    """Whether batch norm's fused kernel is the faster choice here: on a GPU and on CPUs with
    bfloat16 instructions; not on AVX2 alone (bench/LEVERS.md has the figures per CPU kind)."""
    return cpu_has_bf16() or gpu_visible()


def session_config(threads, bf16, float16=False):
    """The Session's settings: a thread limit (Part 5's advice) and, if asked, bfloat16 on
    oneDNN or float16 on NVIDIA GPUs (grappler's automatic mixed precision)."""
    config = tf.ConfigProto(intra_op_parallelism_threads=threads,
                            inter_op_parallelism_threads=threads)
    if bf16:
        config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = \
            rewriter_config_pb2.RewriterConfig.ON
    if float16:
        config.graph_options.rewrite_options.auto_mixed_precision = \
            rewriter_config_pb2.RewriterConfig.ON
    return config


# ----------------------------------------------------------------------------------------------
# Stopping
# ----------------------------------------------------------------------------------------------

class StopRequest(object):
    """While active, SIGINT (Ctrl-C) and SIGTERM only set `requested`; a SIGINT that was ignored
    (a program started with `&` or nohup from a script) stays ignored, as Python leaves it.

    The training loop finishes the step under way, saves a checkpoint and returns, instead of
    dying mid-step. A second signal stops at once. On exit each handler found is handed back.
    """

    def __enter__(self):
        self.requested = False
        self.previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig, handler in self.previous.items():
            if not (sig == signal.SIGINT and handler == signal.SIG_IGN):
                signal.signal(sig, self.handle)
        return self

    def handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\n [*] %s received: saving a checkpoint after this step"
              % signal.Signals(signum).name, file=sys.stderr)

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False


def check_finite(step, epoch, batch, config, **losses):
    """Stop at the first NaN or infinite loss, naming the step and the loss.

    Nothing is saved after it, so the newest checkpoint holds the last good weights.
    """
    for name, value in losses.items():
        if not np.isfinite(value):
            raise TrainingError(
                "%s became %s at step %d (epoch %d, batch %d). Nothing was saved after it: the "
                "newest checkpoint in %s holds the last good weights, and a rerun resumes from "
                "it. Try a lower --learning_rate (now %g)."
                % (name, value, step, epoch, batch, config.checkpoint_dir, config.learning_rate))


# ----------------------------------------------------------------------------------------------
# What a run writes as it goes
# ----------------------------------------------------------------------------------------------

def save_sample_grid(images, size, sample_dir, name):
    """save_images to sample_dir/name during training; a failed write (a full disk) raises
    TrainingError naming the grid and the folder."""
    try:
        return save_images(images, size, os.path.join(sample_dir, name))
    except OSError as err:
        raise TrainingError("could not write the sample grid %s to %s (%s). Free space there, "
                            "or use another --sample_dir; a rerun resumes from the newest "
                            "checkpoint." % (name, sample_dir, first_line(err)))


class Speedometer(object):
    """Images per second and time left, for the progress line."""

    def __init__(self, start_step, total_steps, batch_size):
        self.started, self.start_step = time.time(), start_step
        self.total_steps, self.batch_size = total_steps, batch_size

    def elapsed(self):
        return time.time() - self.started

    def report(self, step):
        rate = (step - self.start_step) * self.batch_size / self.elapsed()
        eta = (self.total_steps - step) * self.batch_size / rate
        return "%.1f img/s, ETA %s" % (rate, format_seconds(eta))


class LossLog(object):
    """Every training step's losses, for readers without TensorBoard (after the logo
    walkthrough's loss plots).

    Kept in logs_dir/losses.csv, rewritten whole with each checkpoint, so it always matches a
    checkpoint: a resumed run drops the rows after its step (they are trained again).
    `plot()` draws logs_dir/losses.png: each loss against step, smoothed, epochs marked.
    """

    def __init__(self, logs_dir, resume_step=0):
        self.csv_path = os.path.join(logs_dir, "losses.csv")
        self.png_path = os.path.join(logs_dir, "losses.png")
        self.rows = []
        if resume_step and os.path.exists(self.csv_path):
            with open(self.csv_path) as saved:
                self.rows = [row for row in csv.DictReader(saved)
                             if int(row["step"]) <= resume_step]

    def add(self, step, epoch, losses):
        self.rows.append(dict(step=step, epoch=epoch, **losses))

    def save(self):
        if not self.rows:
            return
        with atomic_path(self.csv_path) as tmp, open(tmp, "w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(self.rows[-1]))
            writer.writeheader()
            writer.writerows(self.rows)

    def plot(self):
        if not self.rows:
            return
        steps = np.array([int(row["step"]) for row in self.rows])
        epochs = np.array([int(row["epoch"]) for row in self.rows])
        names = [name for name in self.rows[-1] if name not in ("step", "epoch")]
        series = {name: (steps, np.array([float(row[name]) for row in self.rows]))
                  for name in names}
        # epoch_starts[e] is the first step of epoch e (the first logged one for epochs a
        # resumed run logged no step of).
        epoch_starts = [steps[np.argmax(epochs >= e)] for e in range(epochs.max() + 1)]
        plot_losses(series, self.png_path, epoch_starts, title="losses by step")


def log_metrics(writer, logs_dir, epoch, step, figures):
    """Print quality figures, write them as TensorBoard scalars `metrics/NAME` with `writer`
    and add a row to logs_dir/metrics.csv."""
    print(" [*] epoch %d quality: %s" % (epoch, ", ".join(
        "%s %.4g" % item for item in figures.items())))
    writer.add_summary(tf.Summary(value=[
        tf.Summary.Value(tag="metrics/" + name, simple_value=value)
        for name, value in figures.items()]), step)
    writer.flush()
    append_csv_row(os.path.join(logs_dir, "metrics.csv"), dict(epoch=epoch, step=step, **figures))


def append_csv_row(path, row):
    """Add `row` (a dict) to the CSV file `path`, header first if new; whole or not at all."""
    old = ""
    if os.path.exists(path):
        with open(path) as existing:
            old = existing.read()
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(row))
    if not old:
        writer.writeheader()
    writer.writerow(row)
    with atomic_path(path) as tmp, open(tmp, "w") as out:
        out.write(old + text.getvalue())
