"""WGAN-GP, the logo walkthrough's sizes, augmentation and loss plots: the DCGAN's additions
beyond the posts, in real sessions and real trainer runs."""
import csv
import os

import numpy as np
import pytest
import tensorflow.compat.v1 as tf
from conftest import TINY, run_trainer, write_images
from PIL import Image

from extras.data.dataset import augment_images, feed_batches
from gantut_gan import DCGAN, gradient_penalty, image_size_error, layer_sizes, valid_image_size


def test_gradient_penalty_of_a_linear_critic_is_exact(sess):
    # A critic linear in its input has gradient w everywhere, so the penalty is (||w|| - 1)^2
    # wherever the random points between real and fake fall.
    rng = np.random.default_rng(0)
    w = rng.normal(size=(1, 6, 6, 2)).astype(np.float32)
    real = tf.constant(rng.normal(size=(5, 6, 6, 2)), tf.float32)
    fake = tf.constant(rng.normal(size=(5, 6, 6, 2)), tf.float32)
    penalty = gradient_penalty(lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3]), real, fake)
    gp_lambda = 10.0
    expected = gp_lambda * (np.linalg.norm(w) - 1) ** 2
    assert gp_lambda * sess.run(penalty) == pytest.approx(expected, rel=1e-5)


def test_gradient_penalty_is_zero_for_a_critic_of_unit_slope(sess):
    w = np.zeros((1, 4, 4, 1), np.float32)
    w[0, 1, 2, 0] = 1.0
    real, fake = tf.zeros([3, 4, 4, 1]), tf.ones([3, 4, 4, 1])
    penalty = gradient_penalty(lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3]), real, fake)
    assert sess.run(penalty) == pytest.approx(0.0, abs=1e-6)


def test_critic_has_no_sigmoid_no_batch_norm_and_trains_on_n_critic_steps(sess):
    tf.set_random_seed(0)
    dcgan = DCGAN(sess, image_size=16, batch_size=4, sample_size=4, z_dim=8, gf_dim=4, df_dim=4,
                  loss="wgan-gp", n_critic=3)
    names = [v.op.name for v in tf.global_variables()]
    assert not any("d_bn" in name for name in names)  # layer norm instead
    assert any("d_ln1/gamma" in name for name in names)
    _, _, one_run_steps = dcgan.optimizers(1e-4, 0.5, 0.9)
    sess.run(tf.global_variables_initializer())
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (4, 16, 16, 3))
    z = rng.uniform(-1, 1, (4, 8))
    score = sess.run(dcgan.D, {dcgan.images: images * 50, dcgan.is_training: False})
    assert np.abs(score).max() > 1 or np.any(score < 0)  # unbounded, not a probability
    assert [dcgan.loss_kind.g_updates_after(step) for step in range(1, 7)] == [0, 0, 1, 0, 0, 1]

    feed = {dcgan.images: images, dcgan.z: z, dcgan.is_training: True}
    g_before = sess.run(dcgan.g_vars)
    _, losses = sess.run(one_run_steps[0], feed)
    assert set(losses) == {"d_loss", "g_loss", "gradient_penalty", "wasserstein_estimate"}
    assert losses["d_loss"] == pytest.approx(
        -losses["wasserstein_estimate"] + 10 * losses["gradient_penalty"], rel=1e-4, abs=1e-5)
    assert all(np.array_equal(a, b) for a, b in zip(g_before, sess.run(dcgan.g_vars)))
    sess.run(one_run_steps[1], feed)
    assert not all(np.array_equal(a, b) for a, b in zip(g_before, sess.run(dcgan.g_vars)))


@pytest.mark.parametrize("image_size,first,c_dim", [(28, 7, 1), (28, 7, 3), (56, 7, 3),
                                                    (112, 7, 3), (48, 6, 3), (80, 5, 3)])
def test_walkthrough_sizes_build_and_take_a_training_step(sess, image_size, first, c_dim):
    dcgan = DCGAN(sess, image_size=image_size, c_dim=c_dim, batch_size=2, sample_size=2,
                  z_dim=8, gf_dim=4, df_dim=4)
    assert layer_sizes(image_size)[0] == first  # G starts at s x s, D ends there
    _, _, one_run_steps = dcgan.optimizers(2e-4, 0.5)
    sess.run(tf.global_variables_initializer())
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (2, image_size, image_size, c_dim))
    _, losses = sess.run(one_run_steps[2], {dcgan.images: images, dcgan.is_training: True,
                                            dcgan.z: rng.uniform(-1, 1, (2, 8))})
    assert all(np.isfinite(value) for value in losses.values())
    generated = dcgan.generate(rng.uniform(-1, 1, (3, 8)))
    assert generated.shape == (3, image_size, image_size, c_dim)
    assert sess.run(dcgan.D_logits, {dcgan.images: images, dcgan.is_training: False}).shape \
        == (2, 1)


def test_valid_sizes_keep_the_posts_powers_of_two():
    assert all(valid_image_size(2 ** k) for k in range(3, 12))
    assert [s for s in range(16, 257) if valid_image_size(s)] == [
        16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256]
    assert image_size_error(50).endswith("Nearest valid: 48 or 56")
    assert image_size_error(10).endswith("Nearest valid: 8 or 16")
    assert image_size_error(0).endswith("Nearest valid: 8")


def asymmetric_images(count, size=16):
    """Images whose left half is dark and right half bright: a flip is plain to see."""
    images = np.zeros((count, size, size, 3), np.uint8)
    images[:, :, size // 2:] = 255
    return images


def test_augment_flips_about_half_and_repeats_under_one_seed():
    images = asymmetric_images(400)
    flipped = augment_images(images, np.random.default_rng(5), jitter=1.0)
    mirrored = np.all(flipped == images[:, :, ::-1], axis=(1, 2, 3))
    kept = np.all(flipped == images, axis=(1, 2, 3))
    assert np.all(mirrored | kept)  # jitter off: only flips
    assert 160 < mirrored.sum() < 240
    again = augment_images(images, np.random.default_rng(5), jitter=1.0)
    assert np.array_equal(flipped, again)


def test_augment_jitter_crops_a_scaled_copy_of_the_same_size():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (32, 20, 20, 1), dtype=np.uint8)
    jittered = augment_images(images, np.random.default_rng(1))
    assert jittered.shape == images.shape and jittered.dtype == np.uint8
    assert np.mean(jittered != images) > 0.5  # every image moved or rescaled


def test_augmented_batches_repeat_under_one_seed_and_differ_by_epoch():
    images = asymmetric_images(64)
    first = dict(feed_batches(images, 16, seed=3, epoch=0, augment=True))
    second = dict(feed_batches(images, 16, seed=3, epoch=0, augment=True))
    later = dict(feed_batches(images, 16, seed=3, epoch=1, augment=True))
    plain = dict(feed_batches(images, 16, seed=3, epoch=0))
    assert all(np.array_equal(first[i], second[i]) for i in first)
    assert not all(np.array_equal(first[i], later[i]) for i in first)
    assert not all(np.array_equal(first[i], plain[i]) for i in first)


def test_wgan_gp_run_writes_its_scalars_plot_and_checkpoint_and_refuses_another_loss(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    write_images(str(tmp_path / "faces"), 20, 16)
    result = run_trainer(str(tmp_path), "--dataset", "faces", "--epoch", "2", "--loss",
                         "wgan-gp", "--augment", "--summary_freq", "1", "--noeval_every_epoch",
                         *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Adam learning_rate 0.0001, beta1 0.5, beta2 0.9" in result.stdout
    events = EventAccumulator(str(tmp_path / "logs"))
    events.Reload()
    assert {"d_loss", "g_loss", "gradient_penalty", "wasserstein_estimate"} <= \
        set(events.Tags()["scalars"])
    assert os.path.exists(tmp_path / "checkpoint" / "DCGAN.model-10.index")
    with open(tmp_path / "logs" / "losses.csv") as table:
        rows = list(csv.DictReader(table))
    assert [int(row["step"]) for row in rows] == list(range(1, 11))
    assert {row["epoch"] for row in rows} == {"0", "1"}
    with Image.open(tmp_path / "logs" / "losses.png") as plot:
        plot.verify()

    refused = run_trainer(str(tmp_path), "--dataset", "faces", "--epoch", "3", "--loss", "gan",
                          *TINY)
    assert refused.returncode != 0
    assert "--loss wgan-gp" in refused.stderr and "--loss gan" in refused.stderr

    generated = run_trainer(str(tmp_path), "--train=False", "--n_samples", "4")
    assert generated.returncode == 0, generated.stderr[-3000:]  # the loss comes from model.json
