"""DCGAN.train's two branches compute the same step: the one-run step (no summaries due) and the
posts' three `sess.run` calls (summaries due) make one D update, then two G updates on the same
noise, in float32 real sessions, with either batch norm kernel."""
import types

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from gantut_gan import DCGAN

STEPS = 3


def config(folder, summary_freq):
    """The trainer's flags for STEPS steps of batch 8, summaries every `summary_freq` steps."""
    return types.SimpleNamespace(
        epoch=1, learning_rate=0.0002, beta1=0.5, beta2=0.999, train_size=np.inf, batch_size=8,
        dataset=None, checkpoint_dir=str(folder / "c"), sample_dir=str(folder / "s"),
        logs_dir=str(folder / "l"), sample_freq=100, ckpt_freq=100, summary_freq=summary_freq,
        seed=0, max_to_keep=1, progress_gif=False, holdout=0.0, eval_every_epoch=False,
        eval_samples=8, augment=False)


def adam_updates(sess):
    """Updates made so far by each Adam (D's, then G's), read from its beta1_power = 0.5^(1+n)."""
    powers = [var for var in tf.global_variables() if "beta1_power" in var.op.name]
    return [int(round(np.log(value) / np.log(0.5))) - 1 for value in sess.run(powers)]


def train(folder, loss, fused_bn, summary_freq):
    """Train STEPS steps from seed 0 in a fresh graph; return (losses per step, Adam's update
    counts, G's batch-norm moving averages by name)."""
    for name in "csl":
        (folder / name).mkdir(parents=True)
    images = np.random.default_rng(0).integers(0, 256, (8 * STEPS, 16, 16, 3), dtype=np.uint8)
    with tf.Graph().as_default(), tf.Session() as sess:
        tf.set_random_seed(0)
        dcgan = DCGAN(sess, image_size=16, batch_size=8, sample_size=8, z_dim=8, gf_dim=4,
                      df_dim=4, loss=loss, n_critic=2, fused_bn=fused_bn)
        dcgan.train(config(folder, summary_freq), images)
        # G's: D's real and fake passes both update D's averages, in either order, so those
        # differ from run to run in either branch.
        averages = [var for var in tf.global_variables()
                    if "/moving_" in var.op.name and var.op.name.startswith("generator/")]
        averages = dict(zip([var.op.name for var in averages], sess.run(averages)))
        updates = adam_updates(sess)
    rows = np.genfromtxt(folder / "l" / "losses.csv", delimiter=",", names=True)
    return rows, updates, averages


@pytest.mark.parametrize("loss, fused_bn", [("gan", False), ("gan", True), ("wgan-gp", False)])
def test_one_run_step_matches_the_posts_three_runs(tmp_path, loss, fused_bn):
    one_run, one_run_updates, one_run_averages = train(tmp_path / "one", loss, fused_bn, 10**6)
    three_runs, updates, averages = train(tmp_path / "three", loss, fused_bn, 1)

    # The posts' loss: 2 G updates per D update; WGAN-GP: one after every n_critic (2).
    g_expected = 2 * STEPS if loss == "gan" else STEPS // 2
    assert one_run_updates == updates == [STEPS, g_expected]
    assert one_run.dtype.names == three_runs.dtype.names
    # WGAN-GP's penalty draws its own random points in every run, so only the first step's
    # critic scores, before any update, are the same; the posts' loss has no such draw.
    names, checked = (["d_loss", "g_loss"], one_run) if loss == "gan" else \
        (["wasserstein_estimate"], one_run[:1])
    for name in names:
        np.testing.assert_allclose(checked[name], three_runs[name][:len(checked)], rtol=1e-4,
                                   err_msg=name)
    assert len(set(np.round(one_run["d_loss"], 6))) == STEPS  # it trains
    # Batch norm's moving averages end the same: the first G update's reused G pass updates
    # them as a G run of the posts does, twice per step in all. (Weights are not compared:
    # Adam's first steps move a weight by about the learning rate whatever the gradient's
    # size, so float noise on a near-zero gradient flips the sign of its step.)
    assert sorted(one_run_averages) == sorted(averages)
    for name, value in averages.items():
        np.testing.assert_allclose(one_run_averages[name], value, rtol=1e-3, atol=1e-4,
                                   err_msg=name)
