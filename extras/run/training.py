"""The run machinery of a training loop (ours; not in the posts), shared by every stage.

The posts' `train` loop lives with each model (gantut_gan.DCGAN, the pix2pix stage's Pix2Pix);
what lets such a loop be stopped, resumed and watched is here, written once:

- `TrainingRun`: the loop's steps from the training position in the checkpoint, the writer, loss
  log, speed, stop requests, checkpoints when due, sample grids and the loss chart (written by
  a thread) and quality figures in the background, made once the model's graph is whole;
  `training_folders` (made, cleared of a killed run's temp files, locked);
- stopping: `StopRequest` (Ctrl-C and SIGTERM finish the step and checkpoint), `check_finite`;
- logs: `Speedometer` (img/s and ETA), `LossLog` (logs/losses.csv and .png), `log_metrics`
  (quality figures to TensorBoard and logs/metrics.csv), `save_sample_grid`.
"""
import extras.machine.tfenv  # noqa: F401  (first: TensorFlow then loads without Keras; see it)

import concurrent.futures
import contextlib
import csv
import io
import os
import signal
import sys
import time

import numpy as np
import tensorflow.compat.v1 as tf

from gantut_imgfuncs import save_images
from extras.run.checkpoints import (CheckpointWriter, Position, checkpoint_step, load_model,
                                    point_tensorboard_at, position_at, set_variable)
from extras.run.evaluation import BackgroundEvaluation
from extras.run.plots import plot_losses
from extras.utils import (BackgroundWrites, FolderBusy, TrainingError, atomic_path, done_in_order,
                          error_line, folder_lock, format_seconds, remove_stale_temp_files)


class TrainingRun(object):
    """The run machinery of a model's training loop, made by `train` once its graph is whole
    (the model's Saver and position variable included: see position_variable); it adds only
    the checkpoints' snapshot (CheckpointWriter). It restores the newest checkpoint (`start`,
    the Position to go on from) and owns the writer, loss log, speed, stop requests, and
    `writes`, the thread that writes the checkpoints when due, the loss chart and a model's
    own work (such as sample grids drawn from a WeightSnapshot) while training goes on; what
    it could not write stops the run at the next write, or at its end. And the quality figures
    of images it drew (evaluate_later).

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
        self.evaluation = BackgroundEvaluation()
        self.drawing = []  # the images of evaluations to come: (epoch, step, future, real)
        self.writes = BackgroundWrites()  # checkpoints, grids, the GIF, the chart, samples
        self.checkpoints = CheckpointWriter(
            model, config.max_to_keep, self.writes,
            lambda path: point_tensorboard_at(config.logs_dir, path))

    def __enter__(self):
        self.writer = tf.summary.FileWriter(self.config.logs_dir, self.sess.graph)
        self.sess.graph.finalize()
        self.stop.__enter__()
        return self

    def __exit__(self, *exc):
        try:
            self.writes.finished(wait=True)  # the last checkpoint and grid whole on return
            if exc[0] is None:  # the loop ended, or stopped on request: log the figures due
                self.log_evaluations(wait=True)
        finally:
            self.writes.close()
            self.evaluation.close()
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
        `end_epoch(epoch, step)`, the loss chart (drawn by the run's thread) and a checkpoint
        that starts the next epoch."""
        step = self.start.step
        for epoch in range(self.start.epoch, self.config.epoch):
            first = self.start.batch if epoch == self.start.epoch else 0
            for idx, batch in batches(epoch, first):
                step += 1
                yield step, epoch, idx, batch
                self.log_evaluations()
                if self.checkpoint_due(step, epoch, idx + 1):
                    return
            end_epoch(epoch, step)
            self.writes.submit(self.loss_log.plot, list(self.loss_log.rows))
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

    def evaluate_later(self, epoch, step, generated, real):
        """Quality figures of `generated` (a future of uint8 images, drawn by the run's thread)
        against `real` (uint8 images) at this epoch's end, computed in the background
        (extras.run.evaluation) once the images are drawn, and logged when ready."""
        self.drawing.append((epoch, step, generated, real))

    def log_evaluations(self, wait=False):
        """Log the quality figures finished (all of them, waiting, with `wait`): log_metrics.
        Images drawn since are handed to the evaluation first."""
        for epoch, step, generated, real in done_in_order(self.drawing, wait,
                                                          lambda item: item[2]):
            self.evaluation.submit(epoch, step, generated.result(), real)
        try:
            for epoch, step, figures in self.evaluation.finished(wait):
                log_metrics(self.writer, self.config.logs_dir, epoch, step, figures)
        except concurrent.futures.BrokenExecutor as err:
            print("warning: the quality figures under way were lost (%s); later epochs' come "
                  "from a new process" % error_line(err), file=sys.stderr)
            self.evaluation.close()
            self.evaluation = BackgroundEvaluation()

    def checkpoint_due(self, step, epoch, batch):
        """Save a checkpoint every --ckpt_freq steps and when a stop was requested; return True
        (after saying how to resume) if training should stop now."""
        if self.stop.requested or step % self.config.ckpt_freq == 0:
            self.checkpoint(step, epoch, batch)
        if self.stop.requested:
            self.writes.finished(wait=True)
            print(" [*] Stopped at step %d; saved a checkpoint in %s. Run the same command "
                  "again to resume." % (step, self.config.checkpoint_dir))
        return self.stop.requested

    def checkpoint(self, step, epoch, batch):
        """Save the loss log, then the checkpoint at this position in --checkpoint_dir (a
        resumed run then finds every loss up to its step), written in the background, and then
        TensorBoard's pointer to it in --logs_dir (see point_tensorboard_at)."""
        self.loss_log.save()
        set_variable(self.sess, self.model.position,
                     [step, epoch, batch, self.start.data_seed])
        self.checkpoints.save(self.config.checkpoint_dir, step)


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


def save_sample_grid(images, size, sample_dir, name):
    """save_images to sample_dir/name during training; a failed write (a full disk) raises
    TrainingError naming the grid and the folder."""
    try:
        return save_images(images, size, os.path.join(sample_dir, name))
    except OSError as err:
        raise TrainingError("could not write the sample grid %s to %s (%s). Free space there, "
                            "or use another --sample_dir; a rerun resumes from the newest "
                            "checkpoint." % (name, sample_dir, error_line(err)))


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

    Kept in logs_dir/losses.csv, saved with each checkpoint, so it always matches one: a resumed
    run drops the rows after its step (they are trained again) and rewrites the file once; later
    saves append the new rows. A row a killed run left half-written is not read.
    `plot(rows)` draws logs_dir/losses.png: each loss against step, smoothed, epochs marked;
    of `rows` where given (the rows so far, copied for a thread, as `steps` does).
    """

    def __init__(self, logs_dir, resume_step=0):
        self.csv_path = os.path.join(logs_dir, "losses.csv")
        self.png_path = os.path.join(logs_dir, "losses.png")
        self.rows = []
        self.saved = None  # rows the file holds as they are here; None: rewrite it whole
        if resume_step and os.path.exists(self.csv_path):
            with open(self.csv_path) as saved:
                self.rows = whole_rows(csv.DictReader(saved), resume_step)

    def add(self, step, epoch, losses):
        self.rows.append(dict(step=step, epoch=epoch, **losses))

    def save(self):
        if not self.rows:
            return
        fields = list(self.rows[-1])
        if self.saved is None or fields != list(self.rows[self.saved - 1]):
            with atomic_path(self.csv_path) as tmp, open(tmp, "w", newline="") as out:
                writer = csv.DictWriter(out, fieldnames=fields)
                writer.writeheader()
                writer.writerows(self.rows)
        else:
            with open(self.csv_path, "a", newline="") as out:
                csv.DictWriter(out, fieldnames=fields).writerows(self.rows[self.saved:])
        self.saved = len(self.rows)

    def plot(self, rows=None):
        rows = self.rows if rows is None else rows
        if not rows:
            return
        steps = np.array([int(row["step"]) for row in rows])
        epochs = np.array([int(row["epoch"]) for row in rows])
        names = [name for name in rows[-1] if name not in ("step", "epoch")]
        series = {name: (steps, np.array([float(row[name]) for row in rows])) for name in names}
        # epoch_starts[e] is the first step of epoch e (the first logged one for epochs a
        # resumed run logged no step of).
        epoch_starts = [steps[np.argmax(epochs >= e)] for e in range(epochs.max() + 1)]
        plot_losses(series, self.png_path, epoch_starts, title="losses by step")


def whole_rows(rows, last_step):
    """The rows of a loss log up to step `last_step`, without a half-written one: a row with a
    field missing or not a number, or whose step does not follow the row before it (a step cut
    short), is left out."""
    kept = []
    for row in rows:
        try:
            step = int(row["step"])
            values = [float(value) for value in row.values()]
        except (TypeError, ValueError):
            continue
        if len(values) == len(row) and step <= last_step and (
                not kept or step > int(kept[-1]["step"])):
            kept.append(row)
    return kept


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
