"""The run machinery every stage's trainer shares (ours; not in the posts).

The posts' `train` loop, `save` and `load` live with each model (gantut_gan.DCGAN, the pix2pix
stage's Pix2Pix); what lets such a loop be stopped, resumed and watched is here, written once:

- the run a training loop owns: `TrainingRun` (the loop's steps from the training `Position`
  in the checkpoint, the writer, loss log, speed, stop requests, checkpoints when due), made
  once the model's graph is whole and adding nothing to it;
- the graph's part of it, made by the model's `train`: `position_variable`, `training_state`
  (what a weights-only checkpoint lacks);
- checkpoints: `save_model`, `load_model` (the newest complete one, damaged ones skipped; the
  posts' `save` and `load` call them), `model_saver`, `checkpoint_paths`, `saved_position`;
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
from extras.utils import (FolderBusy, atomic_path, folder_lock, format_seconds, read_json,
                          remove_stale_temp_files)

# Beside the checkpoints: the flags that fix the model's variables.
SETTINGS_FILE = "model.json"
# The variable scope of a model's moving averages of its weights (DCGAN's --g_average).
AVERAGE_SCOPE = "average"
# The collection of a model's training state: variables a weights-only checkpoint lacks.
TRAINING_STATE = "training_state"


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
    """The run machinery of a model's training loop, made by `train` once its graph is whole
    (the model's Saver and position variable included: see position_variable); it adds nothing
    to the graph. It restores the newest checkpoint (`start`, the Position to go on from) and
    owns the writer, loss log, speed, stop requests and checkpoints when due.

    `model` has the attributes of the posts' models: sess, saver, model_name, shape_flags, and
    `position`. `with run:` finalizes the graph while the loop runs (an op built in the loop is
    an error) and makes Ctrl-C a stop request; `steps` yields the loop's batches.
    """

    def __init__(self, model, config, steps_per_epoch, batch_size):
        self.model, self.sess, self.config = model, model.sess, config
        self.steps_per_epoch = steps_per_epoch
        self.sess.run([variable.initializer for variable in tf.global_variables()])
        self.start = self.resume()
        steps_left = (config.epoch - self.start.epoch) * steps_per_epoch - self.start.batch
        self.loss_log = LossLog(config.logs_dir, self.start.step)
        self.speed = Speedometer(self.start.step, self.start.step + steps_left, batch_size)
        self.stop = StopRequest()

    def __enter__(self):
        self.writer = tf.summary.FileWriter(self.config.logs_dir, self.sess.graph)
        self.sess.graph.finalize()
        self.stop.__enter__()
        return self

    def __exit__(self, *exc):
        self.stop.__exit__(*exc)
        # The model stays usable after training: sampling, completion build their ops then.
        self.sess.graph._unsafe_unfinalize()  # pylint: disable=protected-access
        self.writer.close()
        return False

    def resume(self):
        """The Position to go on from: the newest checkpoint's; a weights-only checkpoint's step
        and epoch 0 (its Adam state starts anew); else a new one whose shuffles follow --seed
        (random without one)."""
        config = self.config
        seed = np.random.randint(2**31) if config.seed is None else config.seed
        path = load_model(self.model, config.checkpoint_dir)
        if path is None:
            print(" [*] No checkpoint in %s: starting a new model" % config.checkpoint_dir)
            return Position(0, 0, 0, seed)
        position = position_at(path)
        if position is None:
            position = Position(checkpoint_step(path), 0, 0, seed)
            print(" [*] An existing model was found, its weights alone: training it anew from "
                  "step %d" % position.step)
        else:
            print(" [*] An existing model was found: resuming at step %d (epoch %d, batch %d)"
                  % position[:3])
        return position

    def steps(self, batches, end_epoch):
        """The loop's steps from `start` to --epoch: yield (step, epoch, batch index, batch),
        `batches(epoch, first)` giving the epoch's (index, batch) from batch `first` on. After
        each step a checkpoint when due (the loop ends at a stop request); after each epoch
        `end_epoch(epoch, step)`, the loss chart and a checkpoint that starts the next epoch."""
        step = self.start.step
        for epoch in range(self.start.epoch, self.config.epoch):
            first = self.start.batch if epoch == self.start.epoch else 0
            for idx, batch in batches(epoch, first):
                step += 1
                yield step, epoch, idx, batch
                if self.checkpoint_due(step, epoch, idx + 1):
                    return
            end_epoch(epoch, step)
            self.loss_log.plot()
            self.checkpoint(step, epoch + 1, 0)

    def record(self, step, epoch, idx, losses):
        """After a step: the progress line (the post's, with speed and ETA), then stop at a NaN
        or infinite loss (check_finite), else log the losses."""
        print("Epoch [%2d] [%4d/%4d] time: %4.4f, %s, %s"
              % (epoch, idx, self.steps_per_epoch, self.speed.elapsed(),
                 ", ".join("%s: %.8f" % item for item in losses.items()),
                 self.speed.report(step)))
        check_finite(step, epoch, idx, self.config, **losses)
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

    def checkpoint(self, step, epoch, batch):
        """Save the loss log, then the checkpoint at this position in --checkpoint_dir (a
        resumed run then finds every loss up to its step), and TensorBoard's pointer to it in
        --logs_dir (see point_tensorboard_at)."""
        self.loss_log.save()
        set_variable(self.sess, self.model.position,
                     [step, epoch, batch, self.start.data_seed])
        point_tensorboard_at(self.config.logs_dir,
                             save_model(self.model, self.config.checkpoint_dir, step))


def position_variable():
    """The training position's variable, `state/counters` (Position's fields), made by a
    model's `train` with its optimisers: a training checkpoint holds it, a weights-only one
    not. TrainingRun writes it before each checkpoint."""
    with tf.variable_scope("state"):
        return tf.get_variable("counters", [len(Position._fields)], tf.int64,
                               tf.zeros_initializer(), trainable=False)


@contextlib.contextmanager
def training_state():
    """The variables made in the block (optimisers' state, loss scales, the position) are
    training state: a weights-only checkpoint lacks them, so restoring one leaves them at their
    initial values (see checkpoint_source)."""
    before = {variable.op.name for variable in tf.global_variables()}
    yield
    for variable in tf.global_variables():
        if variable.op.name not in before:
            tf.add_to_collection(TRAINING_STATE, variable)


def set_variable(sess, variable, value):
    """Write `value` into `variable` without adding an op, as Variable.load does (without its
    deprecation notice): its initializer runs with the value fed."""
    value = np.asarray(value)
    if value.shape != tuple(variable.shape):
        raise tf.errors.InvalidArgumentError(
            None, None, "%s has shape %s, the checkpoint %s"
            % (variable.op.name, tuple(variable.shape), value.shape))
    sess.run(variable.initializer, {variable.initializer.inputs[1]: value})


def position_at(path):
    """The Position in the checkpoint at `path`, read without a graph (None for a weights-only
    checkpoint)."""
    try:
        return Position(*map(int, tf.train.load_variable(path, "state/counters")))
    except tf.errors.NotFoundError:
        return None


def saved_position(checkpoint_dir, model_name):
    """The Position in the newest checkpoint of `checkpoint_dir`, read without a graph (None
    where there is none, or it holds the weights alone)."""
    for path in checkpoint_paths(checkpoint_dir, model_name)[:1]:
        try:
            return position_at(path)
        except tf.errors.DataLossError:
            pass  # a damaged one
    return None


def model_saver(model):
    """`model`'s Saver, made once: by `train` after its optimisers (checkpoints then keep
    Adam's state and the position), else here, at the first save or load of a model used
    without training (its weights alone)."""
    if model.saver is None:
        model.saver = tf.train.Saver(save_relative_paths=True)  # the folder can move
    return model.saver


def save_model(model, checkpoint_dir, step):
    """Save `model`'s variables as `checkpoint_dir/<model_name>-step` and return that path (the
    posts' `save`).

    No .meta graph: the graph is this code (and in TensorBoard); it would triple the size of
    every checkpoint. A full disk or an unwritable folder raises TrainingError, naming it.
    """
    saver = model_saver(model)
    # max_to_keep retires only this folder's checkpoints, never those a model was loaded from.
    folder = os.path.abspath(checkpoint_dir)
    saver.set_last_checkpoints_with_time(
        [(path, os.path.getmtime(path + ".index")) for path in saver.last_checkpoints
         if os.path.dirname(os.path.abspath(path)) == folder and os.path.exists(path + ".index")])
    try:
        os.makedirs(checkpoint_dir, exist_ok=True)
        return saver.save(model.sess, os.path.join(checkpoint_dir, model.model_name),
                          global_step=step, write_meta_graph=False)
    except (OSError, tf.errors.OpError) as err:
        raise TrainingError(
            "could not write the step %d checkpoint to %s (%s). Free space there, or use "
            "another --checkpoint_dir; the complete checkpoints already there are kept, and "
            "a rerun resumes from the newest." % (step, checkpoint_dir, first_line(err)))


def load_model(model, checkpoint_dir, averaged=False):
    """Restore `model`'s newest complete checkpoint in `checkpoint_dir` and return its path,
    None where there is none (the posts' `load`). With `averaged`, variables whose moving
    average the checkpoint holds take it (a model loaded for use; see checkpoint_source).

    A checkpoint whose files are missing or truncated is reported by name and the one before
    it is used. One of another model shape stops with a message naming it and the flags that
    fix the shape (`model.shape_flags`).
    """
    saver = model_saver(model)
    paths = checkpoint_paths(checkpoint_dir, model.model_name) if checkpoint_dir else []
    for path in paths:
        try:
            if not glob.glob(path + ".data-*"):
                raise tf.errors.DataLossError(None, None, "its .data file is missing")
            restore(model.sess, saver, path, averaged)
        except (tf.errors.DataLossError, tf.errors.OutOfRangeError) as err:
            print("warning: checkpoint %s is damaged (%s); trying the one before it"
                  % (path, first_line(err)), file=sys.stderr)
            continue
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as err:
            raise SystemExit("error: checkpoint %s does not fit this model (%s). It was trained "
                             "with other settings (%s); use those, or a new --checkpoint_dir."
                             % (path, first_line(err), ", ".join(model.shape_flags)))
        # Let the Saver's max_to_keep also retire the checkpoints of earlier runs.
        saver.set_last_checkpoints_with_time(
            [(p, os.path.getmtime(p + ".index")) for p in reversed(paths)])
        print(" [*] Restored %s" % path)
        return path
    return None


def average_of(name):
    """The checkpoint name of the moving average of variable `name`."""
    return AVERAGE_SCOPE + "/" + name


def checkpoint_source(name, saved, averaged, training_state):
    """The name in a checkpoint holding `saved` names that variable `name` is restored from
    (None: it keeps its initial value); see restore. `training_state`: the names of
    TRAINING_STATE's variables."""
    if averaged and average_of(name) in saved:
        return average_of(name)
    if name not in saved:
        if name.startswith(average_of("")) and name[len(average_of("")):] in saved:
            return name[len(average_of("")):]
        if name in training_state:
            return None
    return name  # absent otherwise: the restore fails, naming it


def restore(sess, saver, path, averaged=False):
    """Restore the checkpoint at `path` into this graph, adding no op: with `saver` where the
    two hold the same names. Else from the file, variable by variable: training state the
    checkpoint lacks (a weights-only one, or saved without --mixed_precision) keeps its initial
    value; an average it lacks (saved without --g_average) starts from its variable; with
    `averaged`, a variable whose average it holds takes that."""
    saved = {name for name, _ in tf.train.list_variables(path)}
    training_state = {variable.op.name for variable in tf.get_collection(TRAINING_STATE)}
    sources = {variable: checkpoint_source(variable.op.name, saved, averaged, training_state)
               for variable in tf.global_variables()}
    if all(source == variable.op.name for variable, source in sources.items()):
        saver.restore(sess, path)
        return
    reader = tf.train.load_checkpoint(path)
    for variable, source in sources.items():
        if source is not None:
            set_variable(sess, variable, reader.get_tensor(source))


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
