"""The training step in one `sess.run` computes what the posts' three runs compute: one D update,
then two G updates on the same noise, in float32 real sessions, with either batch norm kernel."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from gantut_gan import DCGAN

STEPS = 3


def adam_updates(sess):
    """Updates made so far by each Adam (D's, then G's), read from its beta1_power = 0.5^(1+n)."""
    powers = [var for var in tf.global_variables() if "beta1_power" in var.op.name]
    return [int(round(np.log(value) / np.log(0.5))) - 1 for value in sess.run(powers)]


def train(dcgan, d_optim, g_optim, step, batches, noise):
    """The losses of STEPS steps made by `step` (train_step or posts_step)."""
    return [step(d_optim, g_optim, batch, z, None, dcgan.g_updates(i + 1))
            for i, (batch, z) in enumerate(zip(batches, noise))]


@pytest.mark.parametrize("loss, fused_bn", [("gan", False), ("gan", True), ("wgan-gp", False)])
def test_one_run_step_matches_the_posts_three_runs(sess, loss, fused_bn):
    tf.set_random_seed(0)
    dcgan = DCGAN(sess, image_size=16, batch_size=8, z_dim=8, gf_dim=4, df_dim=4, loss=loss,
                  n_critic=2, fused_bn=fused_bn)
    d_optim, g_optim = dcgan.optimizers(0.0002, 0.5)
    sess.run(tf.global_variables_initializer())
    start = sess.run(tf.global_variables())
    rng = np.random.default_rng(0)
    batches = rng.uniform(-1, 1, (STEPS, 8, 16, 16, 3))
    noise = rng.uniform(-1, 1, (STEPS, 8, 8))

    one_run = train(dcgan, d_optim, g_optim, dcgan.train_step, batches, noise)
    one_run_updates = adam_updates(sess)
    averages = [var for var in tf.global_variables() if "/moving_" in var.op.name]
    one_run_averages = sess.run(averages)
    for var, value in zip(tf.global_variables(), start):
        var.load(value, sess)
    three_runs = train(dcgan, d_optim, g_optim, dcgan.posts_step, batches, noise)

    # The posts' loss: 2 G updates per D update; WGAN-GP: one after every n_critic (2).
    g_expected = 2 * STEPS if loss == "gan" else STEPS // 2
    assert one_run_updates == adam_updates(sess) == [STEPS, g_expected]
    assert [ours.keys() for ours in one_run] == [posts.keys() for posts in three_runs]
    # WGAN-GP's penalty draws its own random points in every run, so only the first step's
    # critic scores, before any update, are the same; the posts' loss has no such draw.
    names, checked = (["d_loss", "g_loss"], one_run) if loss == "gan" else \
        (["wasserstein_estimate"], one_run[:1])
    for ours, posts in zip(checked, three_runs):
        for name in names:
            assert ours[name] == pytest.approx(posts[name], rel=1e-4), name
    assert len({round(float(losses["d_loss"]), 6) for losses in one_run}) == STEPS  # it trains
    # Batch norm's moving averages end the same: the first G update's reused G pass updates
    # them as a G run of the posts does, twice per step in all. (Weights are not compared:
    # Adam's first steps move a weight by about the learning rate whatever the gradient's
    # size, so float noise on a near-zero gradient flips the sign of its step.)
    for var, ours, posts in zip(averages, sess.run(averages), one_run_averages):
        np.testing.assert_allclose(ours, posts, rtol=1e-3, atol=1e-4, err_msg=var.op.name)
