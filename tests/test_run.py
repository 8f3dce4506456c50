"""The run machinery a training loop owns (extras.run.training.TrainingRun), in-process on a real
Session: the position round trip and the loop's steps, checkpoints when due, stop requests, the
loss log, a finalized graph while the loop runs; a checkpoint written before the run machinery
was its own object, and a weights-only one, still resume."""
import os
import shutil
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from conftest import REPO, checkpoint_steps, newest_position

from gantut_gan import DCGAN
from gantut_imgfuncs import imread
from extras.run.config import TrainingConfig
from extras.run.checkpoints import Position, position_variable, training_state
from extras.run.training import LossLog, TrainingRun, save_sample_grid
from extras.utils import BackgroundWrites, TrainingError

MODEL = "Toy.model"
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "checkpoint_v1")


def config(folder, **overrides):
    """The flags a TrainingRun reads, with folders in `folder`."""
    flags = dict(checkpoint_dir=str(folder / "checkpoint"), logs_dir=str(folder / "logs"),
                 max_to_keep=0, seed=5, ckpt_freq=3, learning_rate=0.1)
    for name in ("checkpoint_dir", "logs_dir"):
        os.makedirs(flags[name], exist_ok=True)
    return TrainingConfig(**{**flags, **overrides})


class Toy(object):
    """A model of one variable `w`, with what a TrainingRun reads of a model."""

    model_name, shape_flags = MODEL, ("image_size",)

    def __init__(self, sess, max_to_keep=0):
        self.sess = sess
        tf.get_variable("w", [2], initializer=tf.zeros_initializer())
        with training_state():
            self.position = position_variable()
        self.saver = tf.train.Saver(max_to_keep=max_to_keep)


def toy_run(sess, flags, steps_per_epoch=4):
    """A TrainingRun over the Toy model, `steps_per_epoch` batches an epoch."""
    return TrainingRun(Toy(sess), flags, steps_per_epoch, batch_size=4)


def steps_taken(run, steps_per_epoch=4):
    """(step, epoch, batch index) of each step `run.steps` yields, and the epochs it ended."""
    ended = []
    batches = lambda epoch, first: ((idx, None) for idx in range(first, steps_per_epoch))
    with run:
        taken = [(step, epoch, idx) for step, epoch, idx, _ in
                 run.steps(batches, lambda epoch, step: ended.append((epoch, step)))]
    return taken, ended


def test_the_position_goes_round_a_checkpoint_and_the_steps_go_on_from_it(sess, tmp_path):
    run = toy_run(sess, config(tmp_path))
    assert run.start == Position(0, 0, 0, 5)  # a new run: its shuffles seeded by --seed
    run.checkpoint(7, 2, 3)
    run.writes.finished(wait=True)
    assert newest_position(str(tmp_path / "checkpoint"), MODEL) == Position(7, 2, 3, 5)
    with tf.Graph().as_default(), tf.Session() as again:
        resumed = toy_run(again, config(tmp_path, seed=None, epoch=4))
        assert resumed.start == Position(7, 2, 3, 5)  # the seed comes from the checkpoint
        taken, ended = steps_taken(resumed)
    assert taken == [(8, 2, 3), (9, 3, 0), (10, 3, 1), (11, 3, 2), (12, 3, 3)]
    assert ended == [(2, 8), (3, 12)]
    assert newest_position(str(tmp_path / "checkpoint"), MODEL) == Position(12, 4, 0, 5)


def test_a_checkpoint_holds_the_variables_as_they_were_when_it_was_asked_for(sess, tmp_path):
    """It is written while training goes on: what a step changes after it is not in it."""
    run = toy_run(sess, config(tmp_path))
    w, = [variable for variable in tf.global_variables() if variable.op.name == "w"]
    value = tf.placeholder(tf.float32, [2])
    assign = w.assign(value)
    with run:
        for step in (1, 2):
            sess.run(assign, {value: [step, step]})
            run.checkpoint(step, 0, 0)
        sess.run(assign, {value: [9, 9]})  # a step while the second one is written
    for step in (1, 2):
        path = os.path.join(tmp_path, "checkpoint", "%s-%d" % (MODEL, step))
        assert tf.train.load_variable(path, "w").tolist() == [step, step]


def test_a_training_grid_shows_the_weights_of_its_step_whatever_steps_follow(
        sess, tmp_path, capsys):
    """It is drawn in a thread, from a snapshot of the weights taken at its step."""
    dcgan = DCGAN(sess, image_size=16, batch_size=4, sample_size=4, z_dim=8, gf_dim=4, df_dim=4)
    _, _, steps = dcgan.optimizers(0.01, 0.5)
    sess.run(tf.global_variables_initializer())
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (4, 16, 16, 3))
    feed = {dcgan.images: images, dcgan.z: rng.uniform(-1, 1, (4, 8)), dcgan.is_training: True}
    dcgan.sample(str(tmp_path), "now.png", images)
    writes, steps_done = BackgroundWrites(), threading.Event()
    writes.submit(steps_done.wait)  # the thread held until the steps below have run
    dcgan.sample_later(writes, str(tmp_path), "later.png", images)
    for _ in range(3):
        sess.run(steps[2], feed)
    steps_done.set()
    writes.finished(wait=True)
    writes.close()
    dcgan.sample(str(tmp_path), "after.png", images)
    now, later, after = (imread(str(tmp_path / name)).astype(int)
                         for name in ("now.png", "later.png", "after.png"))
    np.testing.assert_array_equal(later, now)
    assert np.abs(after - now).max() > 0  # the steps changed G
    losses = [line.split(", grid")[0] for line in capsys.readouterr().out.splitlines()]
    assert losses[0] == losses[1] != losses[2]


def test_grids_are_written_while_the_loop_goes_on_and_a_failed_one_stops_it(sess, tmp_path):
    run = toy_run(sess, config(tmp_path))
    grid = np.linspace(-1, 1, 4 * 8 * 8 * 3).reshape(4, 8, 8, 3)
    with pytest.raises(TrainingError, match="could not write the sample grid b.png"):
        with run:
            run.writes.submit(save_sample_grid, grid, (2, 2), str(tmp_path), "a.png")
            run.writes.submit(save_sample_grid, grid, (2, 2), str(tmp_path / "missing"), "b.png")
    assert imread(str(tmp_path / "a.png")).shape == (16, 16, 3)


def test_the_graph_is_finalized_while_the_loop_runs_and_only_then(sess, tmp_path):
    run = toy_run(sess, config(tmp_path, epoch=1))
    with run:
        with pytest.raises(RuntimeError, match="finalized"):
            tf.constant(1.0)
    assert not sess.graph.finalized


def test_checkpoints_come_every_ckpt_freq_steps(sess, tmp_path):
    run = toy_run(sess, config(tmp_path))
    with run:
        assert not any(run.checkpoint_due(step, 0, step) for step in range(1, 8))
    assert checkpoint_steps(str(tmp_path / "checkpoint"), MODEL) == [3, 6]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_request_saves_now_and_says_stop(sess, tmp_path, capsys, signum):
    found = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    run = toy_run(sess, config(tmp_path))
    with run:
        assert not run.checkpoint_due(1, 0, 1)
        os.kill(os.getpid(), signum)  # Ctrl-C or SIGTERM: only a request while the run is active
        if found[signum] == signal.SIG_IGN:  # this process was started with it ignored
            assert signum == signal.SIGINT and not run.stop.requested  # left ignored
            os.kill(os.getpid(), signal.SIGTERM)
        assert run.stop.requested
        assert run.checkpoint_due(2, 0, 2)
    assert checkpoint_steps(str(tmp_path / "checkpoint"), MODEL) == [2]
    assert "Run the same command again to resume" in capsys.readouterr().out
    # The handlers found are handed back, whatever they were.
    assert {sig: signal.getsignal(sig) for sig in found} == found


@pytest.mark.parametrize("sigint", [signal.SIG_IGN, signal.SIG_DFL])
def test_the_stop_tests_pass_with_sigint_ignored_or_not(sigint):
    """As a script's `cmd &` or nohup starts them (SIGINT ignored), and as a terminal does."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
         __file__, "-k", "a_stop_request"], cwd=REPO, capture_output=True, text=True,
        timeout=300, preexec_fn=lambda: signal.signal(signal.SIGINT, sigint))
    assert result.returncode == 0 and "2 passed" in result.stdout, result.stdout[-2000:]


def test_the_loss_log_matches_the_checkpoint_it_was_saved_with(sess, tmp_path):
    flags = config(tmp_path)
    run = toy_run(sess, flags)
    for step in range(1, 5):
        run.record(step, 0, step - 1, {"d_loss": 1.0 / step, "g_loss": float(step)})
        if step == 2:
            run.checkpoint(step, 0, step)
            run.writes.finished(wait=True)
    with pytest.raises(TrainingError, match="g_loss became nan at step 5"):
        run.record(5, 0, 4, {"d_loss": 0.1, "g_loss": float("nan")})
    with tf.Graph().as_default(), tf.Session() as again:
        resumed = toy_run(again, flags)
        assert resumed.start.step == 2
        # The rows after the checkpoint's step are trained again, so they are not kept.
        assert [row["step"] for row in resumed.loss_log.rows] == ["1", "2"]
        resumed.record(3, 0, 2, {"d_loss": 0.3, "g_loss": 3.0})
        resumed.loss_log.plot()
        resumed.checkpoint(3, 1, 0)
        resumed.writes.finished(wait=True)
    rows = np.genfromtxt(tmp_path / "logs" / "losses.csv", delimiter=",", names=True)
    assert rows["step"].tolist() == [1, 2, 3] and rows["g_loss"].tolist() == [1, 2, 3]
    assert os.path.exists(tmp_path / "logs" / "losses.png")
    assert newest_position(flags.checkpoint_dir, MODEL) == Position(3, 1, 0, 5)


def test_a_checkpoint_from_before_the_run_object_resumes_where_it_stopped(sess, tmp_path):
    """tests/data/checkpoint_v1 was written by the trainer when the model kept its own position
    (24 images of 16x16, batch 4, --seed 3, stopped at step 9: epoch 1, batch 3)."""
    flags = TrainingConfig(
        epoch=2, batch_size=4, dataset=None, checkpoint_dir=str(tmp_path / "checkpoint"),
        sample_dir=str(tmp_path / "samples"), logs_dir=str(tmp_path / "logs"), ckpt_freq=100,
        summary_freq=2, max_to_keep=0, progress_gif=False, holdout=0.0, eval_every_epoch=False,
        eval_samples=8)
    shutil.copytree(DATA, flags.checkpoint_dir)
    for folder in (flags.sample_dir, flags.logs_dir):
        os.makedirs(folder)
    saved = tf.train.load_variable(os.path.join(DATA, "DCGAN.model-9"), "state/sample_z")
    dcgan = DCGAN(sess, image_size=16, batch_size=4, z_dim=8, gf_dim=4, df_dim=4)
    images = np.random.default_rng(0).integers(0, 256, (24, 16, 16, 3), dtype=np.uint8)
    dcgan.train(flags, images)
    rows = np.genfromtxt(tmp_path / "logs" / "losses.csv", delimiter=",", names=True)
    assert rows["step"].tolist() == [10, 11, 12]  # batches 3, 4, 5 of epoch 1
    assert newest_position(flags.checkpoint_dir, DCGAN.model_name) == Position(12, 2, 0, 3)
    np.testing.assert_array_equal(sess.run(dcgan.sample_z), saved)


class Watched(DCGAN):
    """A DCGAN that notes, at each sample grid it writes, whether its graph is finalized."""

    def sample(self, *args):
        self.finalized_at_samples.append(self.sess.graph.finalized)
        super().sample(*args)


def small_config(folder, checkpoint_dir):
    """One epoch of 24 16x16 images in batches of 4, a grid every step."""
    for name in ("samples", "logs"):
        os.makedirs(folder / name, exist_ok=True)
    return TrainingConfig(
        epoch=1, batch_size=4, checkpoint_dir=str(folder / checkpoint_dir),
        sample_dir=str(folder / "samples"), logs_dir=str(folder / "logs"), sample_freq=1,
        summary_freq=2, progress_gif=False, holdout=0.0, eval_every_epoch=False, seed=3)


def test_the_dcgan_trains_in_a_finalized_graph_and_resumes_from_its_weights_alone(
        sess, tmp_path, capsys):
    images = np.random.default_rng(0).integers(0, 256, (24, 16, 16, 3), dtype=np.uint8)
    shape = dict(image_size=16, batch_size=4, sample_size=4, z_dim=8, gf_dim=4, df_dim=4)
    dcgan = Watched(sess, **shape)
    dcgan.finalized_at_samples = []
    dcgan.train(small_config(tmp_path, "run"), images)
    # Six steps' grids and the epoch's: every one drawn with nothing added to the graph.
    assert dcgan.finalized_at_samples == [True] * 7
    assert not sess.graph.finalized  # the model is usable after training
    with tf.Graph().as_default(), tf.Session() as use:
        model = DCGAN(use, **shape)
        assert model.load(str(tmp_path / "run"))
        model.save(str(tmp_path / "weights"), 6)
    names = {name for name, _ in tf.train.list_variables(str(tmp_path / "weights" /
                                                             "DCGAN.model-6"))}
    assert "state/sample_z" in names and "state/counters" not in names
    assert not [name for name in names if "adam" in name]
    with tf.Graph().as_default(), tf.Session() as again:
        DCGAN(again, **shape).train(small_config(tmp_path, "weights"), images)
    assert "its weights alone: training it anew from step 6" in capsys.readouterr().out
    assert newest_position(str(tmp_path / "weights"), DCGAN.model_name) == Position(12, 1, 0, 3)


def test_the_loss_log_appends_and_leaves_out_a_row_a_killed_run_cut_short(tmp_path):
    log = LossLog(str(tmp_path))
    for step in range(1, 4):
        log.add(step, 0, {"d_loss": 0.5, "g_loss": float(step)})
        log.save()
    text = (tmp_path / "losses.csv").read_text()
    assert text.count("step") == 1 and text.count("\n") == 4  # one header, rows appended
    for torn in ("4,0,0.5", "4,0,0.5,4.0,9", "1"):  # a row cut short, a garbled one, a cut step
        (tmp_path / "losses.csv").write_text(text + torn + "\n")
        resumed = LossLog(str(tmp_path), resume_step=10)
        assert [row["step"] for row in resumed.rows] == ["1", "2", "3"]
    resumed = LossLog(str(tmp_path), resume_step=2)
    resumed.add(3, 0, {"d_loss": 0.5, "g_loss": 30.0})
    resumed.save()  # a resumed run rewrites the file once, from its own rows
    rows = np.genfromtxt(tmp_path / "losses.csv", delimiter=",", names=True)
    assert rows["step"].tolist() == [1, 2, 3] and rows["g_loss"].tolist() == [1, 2, 30]
