"""--g_average: a moving average of G's weights for sampling, in real sessions and real trainer
runs; without it the posts' graph is unchanged."""
import numpy as np
import tensorflow.compat.v1 as tf

from conftest import TINY, checkpoint_steps, run_trainer, write_images
from gantut_gan import DCGAN

DECAY = 0.75


def tiny_dcgan(sess, **kwargs):
    return DCGAN(sess, image_size=16, batch_size=4, sample_size=4, z_dim=8, gf_dim=4, df_dim=4,
                 **kwargs)


def test_without_it_the_graph_has_no_averages_and_samples_from_g(sess):
    dcgan = tiny_dcgan(sess)
    assert not [var for var in tf.global_variables() if var.op.name.startswith("average/")]
    sess.run(tf.global_variables_initializer())
    z = np.random.default_rng(0).uniform(-1, 1, [4, 8])
    # The sampler is G in the mode is_training says; the step's G is G in training mode.
    np.testing.assert_allclose(sess.run(dcgan.sampler, {dcgan.z: z, dcgan.is_training: True}),
                               sess.run(dcgan.G, {dcgan.z: z}), rtol=1e-5, atol=1e-6)
    assert not np.allclose(sess.run(dcgan.sampler, {dcgan.z: z, dcgan.is_training: False}),
                           sess.run(dcgan.G, {dcgan.z: z}))


def test_each_g_update_moves_every_average_towards_its_variable(sess):
    dcgan = tiny_dcgan(sess, g_average=DECAY)
    _, g_optim, _ = dcgan.optimizers(0.01, 0.5)
    sess.run(tf.global_variables_initializer())
    g_variables = list(dcgan.g_averages)
    averages = [dcgan.g_averages[var] for var in g_variables]
    # Batch-norm statistics included, Adam's slots not; all start at G's own initial values.
    assert any(var.op.name.endswith("moving_mean") for var in g_variables)
    assert not any("adam" in var.op.name for var in g_variables)
    before = sess.run(averages)
    for start, var in zip(before, sess.run(g_variables)):
        np.testing.assert_array_equal(start, var)
    rng = np.random.default_rng(0)
    sess.run(g_optim, {dcgan.z: rng.uniform(-1, 1, [4, 8]), dcgan.is_training: True,
                       dcgan.images: rng.uniform(-1, 1, [4, 16, 16, 3])})
    after, variables = sess.run([averages, g_variables])
    moved = 0
    for old, new, var in zip(before, after, variables):
        np.testing.assert_allclose(new, DECAY * old + (1 - DECAY) * var, rtol=1e-5, atol=1e-7)
        moved += not np.array_equal(new, old)
    assert moved == len(averages)


def test_the_sampler_runs_g_on_the_averages(sess):
    dcgan = tiny_dcgan(sess, g_average=DECAY)
    sess.run(tf.global_variables_initializer())
    z = np.random.default_rng(0).uniform(-1, 1, [4, 8])
    feed = {dcgan.z: z, dcgan.is_training: True}  # both towers in training mode
    np.testing.assert_allclose(sess.run(dcgan.sampler, feed), sess.run(dcgan.G, feed),
                               rtol=1e-5, atol=1e-6)
    sess.run([tf.assign(average, average * 1.5) for average in dcgan.g_averages.values()])
    assert not np.allclose(sess.run(dcgan.sampler, feed), sess.run(dcgan.G, feed))


def test_a_run_resumed_with_it_averages_from_the_restored_weights_and_use_takes_them(tmp_path):
    write_images(str(tmp_path / "faces"), 8, 16)
    args = ["--dataset", "faces", "--sample_freq", "1000", *TINY]
    assert run_trainer(str(tmp_path), "--epoch", "1", *args).returncode == 0
    result = run_trainer(str(tmp_path), "--epoch", "2", "--g_average", str(DECAY), *args)
    assert result.returncode == 0, result.stderr[-2000:]
    first, last = ["%s/DCGAN.model-%d" % (tmp_path / "checkpoint", step)
                   for step in checkpoint_steps(str(tmp_path / "checkpoint"))]
    names = [name for name, _ in tf.train.list_variables(last)
             if name.startswith("generator/") and "adam" not in name]
    assert names and all("average/" + name in dict(tf.train.list_variables(last))
                         for name in names)
    assert not any(name.startswith("average/") for name, _ in tf.train.list_variables(first))
    # Two steps of decay DECAY from the first checkpoint's weights: near them, not at them.
    name = "generator/g_h1/w"
    start, average, weights = (tf.train.load_variable(first, name),
                               tf.train.load_variable(last, "average/" + name),
                               tf.train.load_variable(last, name))
    assert np.abs(average - start).max() < np.abs(weights - start).max()
    # A model loaded for use (no --g_average) holds the averages as G's weights.
    with tf.Graph().as_default(), tf.Session() as sess:
        dcgan = DCGAN(sess, image_size=16, z_dim=8, gf_dim=4, df_dim=4)
        sess.run(tf.global_variables_initializer())
        assert dcgan.load(str(tmp_path / "checkpoint"))
        loaded = sess.run(next(var for var in tf.global_variables() if var.op.name == name))
    np.testing.assert_array_equal(loaded, average)
    # --export ships the averages as G's own weights, and no averages beside them.
    assert run_trainer(str(tmp_path), "--train=False", "--export", "shipped", *args).returncode == 0
    shipped = tf.train.latest_checkpoint(str(tmp_path / "shipped"))
    np.testing.assert_array_equal(tf.train.load_variable(shipped, name), average)
    assert not any(name.startswith("average/") for name, _ in tf.train.list_variables(shipped))
