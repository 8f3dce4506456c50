"""The training step is one op that every step runs: the post's D update, then its G updates,
chained. It computes what the post's three `sess.run` calls of `d_optim` and `g_optim` compute,
in float32 real sessions, with either batch norm kernel; fetching the summaries beside it, as
summary steps do, changes nothing."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from extras.model.adam import Adam
from extras.run.config import TrainingConfig
from gantut_gan import DCGAN

STEPS = 3
SHAPE = dict(image_size=16, batch_size=8, sample_size=8, z_dim=8, gf_dim=4, df_dim=4, n_critic=2)


def feeds(dcgan):
    """STEPS feeds of random images and noise, the same on every call."""
    rng = np.random.default_rng(0)
    return [{dcgan.images: rng.uniform(-1, 1, (8, 16, 16, 3)),
             dcgan.z: rng.uniform(-1, 1, (8, 8)), dcgan.is_training: True}
            for _ in range(STEPS)]


def adam_updates(sess):
    """Updates made so far by each Adam (D's, then G's), read from its beta1_power = 0.5^(1+n)."""
    powers = [var for var in tf.global_variables() if "beta1_power" in var.op.name]
    return [int(round(np.log(value) / np.log(0.5))) - 1 for value in sess.run(powers)]


def g_moving_averages(sess):
    """G's batch-norm moving averages by name."""
    averages = [var for var in tf.global_variables()
                if "/moving_" in var.op.name and var.op.name.startswith("generator/")]
    return dict(zip([var.op.name for var in averages], sess.run(averages)))


def run_steps(loss, fused_bn, step):
    """STEPS steps from seed 0 in a fresh graph, each made by `step(dcgan, sess, ops, feed)`;
    return (its losses per step, Adam's update counts, G's moving averages)."""
    with tf.Graph().as_default(), tf.Session() as sess:
        tf.set_random_seed(0)
        dcgan = DCGAN(sess, loss=loss, fused_bn=fused_bn, **SHAPE)
        ops = dcgan.optimizers(**dcgan.loss_kind.adam)
        sess.run(tf.global_variables_initializer())
        losses = [step(dcgan, sess, ops, feed, number)
                  for number, feed in enumerate(feeds(dcgan), 1)]
        return losses, adam_updates(sess), g_moving_averages(sess)


def posts_three_runs(dcgan, sess, ops, feed, number):
    """The post's step: d_optim, then g_optim as often as the loss kind says."""
    d_optim, g_optim, _ = ops
    _, losses = sess.run([d_optim, dcgan.losses], feed)
    for _ in range(dcgan.loss_kind.g_updates_after(number)):
        _, losses["g_loss"] = sess.run([g_optim, dcgan.g_loss], feed)
    return losses


def the_step(dcgan, sess, ops, feed, number, summaries=False):
    """train's step: the one op, with the summaries fetched beside it if `summaries`."""
    step_op = ops[2][dcgan.loss_kind.g_updates_after(number)]
    if summaries:
        (_, losses), d_summary, g_summary = sess.run([step_op, dcgan.d_sum, dcgan.g_sum], feed)
        assert tf.Summary.FromString(d_summary).value and tf.Summary.FromString(g_summary).value
        return losses
    return sess.run(step_op, feed)[1]


@pytest.mark.parametrize("loss, fused_bn", [("gan", False), ("gan", True), ("wgan-gp", False)])
def test_the_step_computes_the_posts_three_runs(loss, fused_bn):
    ours, ours_updates, ours_averages = run_steps(loss, fused_bn, the_step)
    posts, updates, averages = run_steps(loss, fused_bn, posts_three_runs)

    # The posts' loss: 2 G updates per D update; WGAN-GP: one after every n_critic (2).
    g_expected = 2 * STEPS if loss == "gan" else STEPS // 2
    assert ours_updates == updates == [STEPS, g_expected]
    # WGAN-GP's penalty draws its own random points in every run, so only the first step's
    # critic scores, before any update, are the same; the posts' loss has no such draw.
    names, steps = (["d_loss", "g_loss"], STEPS) if loss == "gan" else \
        (["wasserstein_estimate"], 1)
    for name in names:
        # Within float32's noise: the chained op may sum in another order than separate runs.
        np.testing.assert_allclose([row[name] for row in ours[:steps]],
                                   [row[name] for row in posts[:steps]], rtol=5e-4, err_msg=name)
    assert len({round(float(row["d_loss"]), 6) for row in ours}) == STEPS  # it trains
    # Batch norm's moving averages end the same: the first G update's reused G pass updates
    # them as a G run of the post does, twice per step in all. (Weights are not compared:
    # Adam's first steps move a weight by about the learning rate whatever the gradient's
    # size, so float noise on a near-zero gradient flips the sign of its step.)
    assert sorted(ours_averages) == sorted(averages)
    for name, value in averages.items():
        np.testing.assert_allclose(ours_averages[name], value, rtol=1e-3, atol=1e-4,
                                   err_msg=name)


def test_fetching_the_summaries_beside_the_step_changes_nothing():
    plain = run_steps("gan", False, the_step)
    with_summaries = run_steps("gan", False, lambda *args: the_step(*args, summaries=True))
    assert plain[1] == with_summaries[1]
    for ours, theirs in zip(plain[0], with_summaries[0]):
        for name in ours:
            np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-6, err_msg=name)


def test_train_runs_the_step_on_every_step_and_writes_summaries_when_due(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    images = np.random.default_rng(0).integers(0, 256, (8 * STEPS, 16, 16, 3), dtype=np.uint8)
    for name in "csl":  # the post's script makes the folders, as the trainer does
        (tmp_path / name).mkdir()
    config = TrainingConfig(epoch=1, batch_size=8, checkpoint_dir=str(tmp_path / "c"),
                            sample_dir=str(tmp_path / "s"), logs_dir=str(tmp_path / "l"),
                            summary_freq=2, seed=0, progress_gif=False, holdout=0.0,
                            eval_every_epoch=False)
    with tf.Graph().as_default(), tf.Session() as sess:
        dcgan = DCGAN(sess, **SHAPE)
        dcgan.train(config, images)
        assert adam_updates(sess) == [STEPS, 2 * STEPS]
    events = EventAccumulator(str(tmp_path / "l"))
    events.Reload()
    assert [event.step for event in events.Scalars("d_loss")] == [2]
    assert [event.step for event in events.Scalars("g_loss")] == [2]


def adam_run(optimizer_class):
    """(three variables after three updates by `optimizer_class(0.1, 0.5)` from seed 0, the
    ReadVariableOps of its beta powers in the graph)."""
    rng = np.random.default_rng(0)
    with tf.Graph().as_default(), tf.Session() as sess:
        variables = [tf.get_variable(name, initializer=rng.standard_normal(shape, np.float32))
                     for name, shape in (("w", (3, 4)), ("b", (4,)), ("c", (2,)))]
        x = tf.constant(rng.standard_normal((5, 3), np.float32))
        loss = tf.reduce_sum(tf.square(tf.matmul(x, variables[0]) + variables[1])) + \
            tf.reduce_sum(variables[2] ** 3)
        update = optimizer_class(0.1, 0.5).minimize(loss)
        power_reads = [op for op in tf.get_default_graph().get_operations()
                       if op.type == "ReadVariableOp" and "_power" in op.inputs[0].op.name]
        sess.run(tf.global_variables_initializer())
        for _ in range(3):
            sess.run(update)
        return sess.run(variables), len(power_reads)


def test_adam_updates_as_tensorflows_to_the_bit_reading_its_beta_powers_once_an_update():
    ours, our_reads = adam_run(Adam)
    theirs, their_reads = adam_run(tf.train.AdamOptimizer)
    for mine, its in zip(ours, theirs):
        np.testing.assert_array_equal(mine, its)
    # beta1^t and beta2^t: TensorFlow's reads both for each of the 3 variables, ours once (the
    # reads made to create and advance them are the same in both).
    assert their_reads - our_reads == 2 * 3 - 2
