"""Checkpoints (ours; not in the posts): what the posts' `save` and `load` call, and what a
training run keeps in them.

- the graph's part, made by a model's `train`: `position_variable` (the training `Position`),
  `training_state` (what a weights-only checkpoint lacks); `set_variable` writes a variable
  without adding an op;
- `model_saver` (a model's one Saver), `save_model`, `WeightSnapshot` (copies of variables that
  a thread reads while training goes on), `CheckpointWriter` (a training run's checkpoints
  written so), `load_model` (the newest complete checkpoint, damaged ones skipped), `restore`,
  `checkpoint_paths`;
- settings: `record_settings`/`saved_settings`, the flags that fix a model's shape, in model.json
  beside the checkpoints.
"""
import extras.machine.tfenv  # noqa: F401  (first: TensorFlow then loads without Keras; see it)

import collections
import concurrent.futures
import contextlib
import glob
import json
import os
import sys

import numpy as np
import tensorflow.compat.v1 as tf

from extras.utils import TrainingError, atomic_path, error_line, read_json

# Beside the checkpoints: the flags that fix the model's variables.
SETTINGS_FILE = "model.json"
# The variable scope of a model's moving averages of its weights (DCGAN's --g_average).
AVERAGE_SCOPE = "average"
# The collection of a model's training state: variables a weights-only checkpoint lacks.
TRAINING_STATE = "training_state"

# Where training stands, kept in the checkpoint: steps done, the epoch and the batch within it to
# go on at, and the seed of the epochs' shuffles.
Position = collections.namedtuple("Position", "step epoch batch data_seed")


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


def model_saver(model):
    """`model`'s Saver, made once: by `train` after its optimisers (checkpoints then keep
    Adam's state and the position), else here, at the first save or load of a model used
    without training (its weights alone)."""
    if model.saver is None:
        model.saver = new_saver()
    return model.saver


def new_saver(max_to_keep=5):
    """A Saver of every variable the graph holds, keeping `max_to_keep` checkpoints (0: all),
    writing paths relative to its folder, so that the folder can move."""
    return tf.train.Saver(max_to_keep=max_to_keep, save_relative_paths=True)


def save_model(model, checkpoint_dir, step, saver=None):
    """Save `model`'s variables (with `saver`, by default the model's) as
    `checkpoint_dir/<model_name>-step` and return that path (the posts' `save`).

    No .meta graph: the graph is this code (and in TensorBoard); it would triple the size of
    every checkpoint. A full disk or an unwritable folder raises TrainingError, naming it.
    """
    saver = saver or model_saver(model)
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
            "a rerun resumes from the newest." % (step, checkpoint_dir, error_line(err)))


class WeightSnapshot(object):
    """Copies of variables, for work that reads them in a thread while training changes the
    variables (ours). `copy_of(variable)` makes a variable's copy (outside every collection)
    once; `getter(inner)` is a custom getter under which a tower reads the copies of the
    variables it asks for (of those `inner`, a custom getter, gives). `take(sess, writes, work,
    *args)` copies every variable in one run, then queues the work that reads the copies
    (`read_later`, more of it), and returns its future.
    Copies are made with the graph, before it is finalized."""

    def __init__(self, name, variables=()):
        self.name, self.copies, self.assigns, self.in_use = name, {}, [], None  # in_use: a future
        for variable in variables:
            self.copy_of(variable)

    def copy_of(self, variable):
        if variable not in self.copies:
            with tf.init_scope(), tf.name_scope(self.name + "/"):  # a top-level scope
                copy = tf.Variable(tf.zeros(variable.shape, variable.dtype.base_dtype),
                                   trainable=False, collections=[],
                                   name=variable.op.name.replace("/", "_"))
                self.assigns.append(copy.assign(variable.read_value()).op)
            self.copies[variable] = copy
        return self.copies[variable]

    def getter(self, inner=None):
        def read_copy(getter, name, *args, **kwargs):
            variable = (inner(getter, name, *args, **kwargs) if inner
                        else getter(name, *args, **kwargs))
            return self.copy_of(variable)
        return read_copy

    def take(self, sess, writes, work, *args):
        """Copy the variables (once the work on the last snapshot is done), then queue
        work(*args) on `writes` (extras.utils.BackgroundWrites, which raises its errors)."""
        if self.in_use is not None:
            concurrent.futures.wait([self.in_use])
        sess.run(self.assigns)
        return self.read_later(writes, work, *args)

    def read_later(self, writes, work, *args):
        """Queue more work(*args) on the snapshot last taken; return its future."""
        self.in_use = writes.submit(work, *args)
        return self.in_use


class CheckpointWriter(object):
    """A training run's checkpoints, written by a thread while training goes on (ours).

    `save(checkpoint_dir, step)` copies every variable of `model`'s graph into a WeightSnapshot
    (one run: the posts' 64x64 DCGAN's 113 MB in tens of ms) and queues its writing on
    `writes` (extras.utils.BackgroundWrites), as the model's Saver writes its variables (same
    names and files, the same retiring), then `written(path)`; a full disk raises TrainingError
    from `writes`. Made with the graph, before it is finalized.
    """

    def __init__(self, model, max_to_keep, writes, written):
        self.model, self.writes, self.written = model, writes, written
        variables = tf.global_variables()
        self.snapshot = WeightSnapshot("snapshot", variables)
        self.saver = tf.train.Saver(
            {variable.op.name: self.snapshot.copy_of(variable) for variable in variables},
            max_to_keep=max_to_keep, save_relative_paths=True)

    def save(self, checkpoint_dir, step):
        self.snapshot.take(self.model.sess, self.writes, self.write, checkpoint_dir, step)

    def write(self, checkpoint_dir, step):
        self.written(save_model(self.model, checkpoint_dir, step, self.saver))


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
                  % (path, error_line(err)), file=sys.stderr)
            continue
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as err:
            raise SystemExit("error: checkpoint %s does not fit this model (%s). It was trained "
                             "with other settings (%s); use those, or a new --checkpoint_dir."
                             % (path, error_line(err), ", ".join(model.shape_flags)))
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
