"""The DCGAN trains as it did before the post-shaped restructuring: 5 float32 steps from recorded
weights give the recorded losses and sample grid.

tests/data/five_steps.npz was written by this file's `record` on main before the restructuring
(`python tests/test_same_behaviour.py --record`). It holds every variable's starting value (so the
figures do not depend on the order ops are created in), the training images, each step's
d_loss and g_loss, and G's samples from the fixed sample noise after the 5 steps. They were made
with TensorFlow's Eigen kernels, which that machine used by default, so the replay runs in a
process of its own with TF_ENABLE_ONEDNN_OPTS=0 (oneDNN's kernels round differently: samples
differ by about 3e-5 after 5 steps).
"""
import os
import subprocess
import sys

import numpy as np
import tensorflow.compat.v1 as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from extras.run.config import TrainingConfig  # noqa: E402
from gantut_gan import DCGAN  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "five_steps.npz")
SEED = 7
SHAPE = dict(image_size=16, c_dim=3, z_dim=8, gf_dim=4, df_dim=4, batch_size=8, sample_size=8)


def config(folder, epochs, learning_rate=0.0002):
    """The trainer's flags for a float32 run of `epochs` epochs in `folder` (5 steps each)."""
    return TrainingConfig(
        epoch=epochs, learning_rate=learning_rate, batch_size=SHAPE["batch_size"], dataset=None,
        checkpoint_dir=os.path.join(folder, "c"), sample_dir=os.path.join(folder, "s"),
        logs_dir=os.path.join(folder, "l"), ckpt_freq=100, summary_freq=2, seed=SEED,
        max_to_keep=2, progress_gif=False, holdout=0.0, eval_every_epoch=False, eval_samples=8)


def session():
    """One thread, float32: the same sums in the same order on every run."""
    graph = tf.Graph()
    return graph, tf.Session(graph=graph, config=tf.ConfigProto(
        intra_op_parallelism_threads=1, inter_op_parallelism_threads=1))


def train_five_steps(folder, images, start=None, learning_rate=0.0002):
    """Train 5 steps on `images`, from the variables `start` (name -> value) if given; return
    (starting variables, losses per step, samples after the steps)."""
    for name in ("c", "s", "l"):
        os.makedirs(os.path.join(folder, name), exist_ok=True)
    graph, sess = session()
    with graph.as_default(), sess:
        tf.set_random_seed(SEED)
        dcgan = DCGAN(sess, **SHAPE)
        dcgan.train(config(folder, 0), images)  # builds the optimisers; trains nothing
        variables = {var.op.name: var for var in tf.global_variables()}
        if start is not None:
            assert sorted(variables) == sorted(start)
            for name, var in variables.items():
                var.load(start[name], sess)
        # A checkpoint of every variable at step 0, its shuffles seeded by SEED.
        variables["state/counters"].load([0, 0, 0, SEED], sess)
        start = sess.run(variables)
        tf.train.Saver().save(sess, os.path.join(folder, "c", DCGAN.model_name), global_step=0,
                              write_meta_graph=False)
    graph, sess = session()
    with graph.as_default(), sess:
        dcgan = DCGAN(sess, **SHAPE)
        dcgan.train(config(folder, 1, learning_rate), images)  # resumes from the step-0 checkpoint
        samples = dcgan.generate(sess.run(dcgan.sample_z))
        # Adam's beta1_power is beta1^(1 + its updates): one accumulator for D, one for G.
        updates = sorted(int(round(np.log(value) / np.log(0.5))) - 1 for value in sess.run(
            [var for var in tf.global_variables() if "beta1_power" in var.op.name]))
    rows = np.genfromtxt(os.path.join(folder, "l", "losses.csv"), delimiter=",", names=True)
    return start, np.stack([rows["d_loss"], rows["g_loss"]], axis=1), samples, updates


def training_images():
    return np.random.default_rng(SEED).integers(0, 256, (40, 16, 16, 3), dtype=np.uint8)


# Float32 results differ in the last digits from one CPU to another: after the 5 steps, samples
# replayed with AVX-512 kernels differ from these AVX2 figures by up to 3.0e-5 (losses by less than
# 1e-5 of their value). The sample tolerance leaves 3x room over that; a changed step moves the
# figures far more (the next test).
LOSS_TOLERANCE = dict(rtol=1e-5, atol=1e-6)
SAMPLE_TOLERANCE = dict(rtol=0, atol=1e-4)


def replayed(tmp_path, learning_rate=0.0002):
    """The recorded 5 steps replayed by the code under test, in a process of its own with
    TensorFlow's Eigen kernels (as recorded), at `learning_rate`."""
    out = str(tmp_path / "replay.npz")
    subprocess.run([sys.executable, __file__, "--replay", out, str(tmp_path), str(learning_rate)],
                   check=True, env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "0"},
                   capture_output=True)
    return np.load(out)


def test_five_float32_steps_match_the_figures_recorded_before_the_restructuring(tmp_path):
    recorded, replay_ = np.load(DATA), replayed(tmp_path)
    # The posts' loss: one D update, then two G updates, per batch (Adam's update counts).
    assert replay_["updates"].tolist() == [5, 10]
    assert replay_["losses"].shape == (5, 2)
    np.testing.assert_allclose(replay_["losses"], recorded["losses"], **LOSS_TOLERANCE)
    np.testing.assert_allclose(replay_["samples"], recorded["samples"], **SAMPLE_TOLERANCE)


def test_the_tolerances_catch_a_changed_step(tmp_path):
    """A learning rate of 0.0003 instead of the posts' 0.0002 falls outside both tolerances."""
    recorded, replay_ = np.load(DATA), replayed(tmp_path, learning_rate=0.0003)
    assert not np.allclose(replay_["losses"], recorded["losses"], **LOSS_TOLERANCE)
    assert not np.allclose(replay_["samples"], recorded["samples"], **SAMPLE_TOLERANCE)


def replay(out, folder, learning_rate):
    """The 5 steps from the recorded starting variables at `learning_rate`, saved to `out`."""
    recorded = np.load(DATA)
    start = {key[len("var:"):]: recorded[key] for key in recorded.files if key.startswith("var:")}
    _, losses, samples, updates = train_five_steps(folder, recorded["images"], start,
                                                  float(learning_rate))
    np.savez(out, losses=losses, samples=samples, updates=updates)


def record(folder):
    images = training_images()
    start, losses, samples, _ = train_five_steps(folder, images)
    os.makedirs(os.path.dirname(DATA), exist_ok=True)
    np.savez_compressed(DATA, images=images, losses=losses, samples=samples,
                        **{"var:" + name: value for name, value in start.items()})
    print("recorded %s: losses %s" % (DATA, losses.tolist()))


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        record(tmp)
elif __name__ == "__main__" and sys.argv[1:2] == ["--replay"]:
    replay(*sys.argv[2:5])
