"""Part 4: the DCGAN graph, in real sessions."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from gantut_gan import DCGAN, layer_sizes
from gantut_imgfuncs import transform


def tiny_dcgan(sess, image_size=16, c_dim=3, **kwargs):
    return DCGAN(sess, image_size=image_size, c_dim=c_dim, batch_size=8, sample_size=8,
                 z_dim=8, gf_dim=4, df_dim=4, **kwargs)


@pytest.mark.parametrize("image_size", [16, 32, 64, 128, 256])
@pytest.mark.parametrize("c_dim", [1, 3])
def test_generator_and_discriminator_shapes_follow_the_size(sess, image_size, c_dim):
    dcgan = tiny_dcgan(sess, image_size, c_dim)
    sess.run(tf.global_variables_initializer())
    z = np.random.uniform(-1, 1, (2, 8))
    images = np.zeros((2, image_size, image_size, c_dim))
    G, D, logits = sess.run([dcgan.G, dcgan.D, dcgan.D_logits],
                            {dcgan.z: z, dcgan.images: images, dcgan.is_training: False})
    assert G.shape == (2, image_size, image_size, c_dim)
    assert G.min() >= -1 and G.max() <= 1  # tanh output
    assert D.shape == logits.shape == (2, 1)
    assert np.all((D > 0) & (D < 1))
    # One transposed convolution per doubling from 4x4; D mirrors it.
    n_up = len(layer_sizes(image_size)) - 1
    assert n_up == int(np.log2(image_size)) - 2
    names = [v.op.name for v in tf.trainable_variables()]
    assert sum(n.endswith("/w") and "/g_h" in n for n in names) == n_up
    assert sum(n.endswith("_conv/w") for n in names) == n_up


def test_image_bytes_are_scaled_as_transform_scales_them(sess):
    """Training feeds uint8 batches; D sees bit for bit the floats transform makes of them."""
    dcgan = tiny_dcgan(sess)
    pixels = np.arange(256, dtype=np.uint8)
    batch = np.resize(pixels, (2, 16, 16, 3))
    scaled = sess.run(dcgan.images, {dcgan.image_bytes: batch})
    assert scaled.dtype == np.float32
    np.testing.assert_array_equal(scaled, transform(batch, is_crop=False))
    assert scaled.min() == -1.0 and scaled.max() == 1.0


def test_layer_widths_match_the_post_at_64(sess):
    tiny = DCGAN(sess, image_size=64, z_dim=100, gf_dim=64, df_dim=64, batch_size=2)
    shapes = {v.op.name: v.shape.as_list() for v in tf.trainable_variables()}
    assert shapes["generator/g_h0_lin/Matrix"] == [100, 4 * 4 * 512]
    assert [shapes["generator/g_h%d/w" % i][2] for i in range(1, 5)] == [256, 128, 64, 3]
    assert [shapes["discriminator/d_h%d_conv/w" % i][3] for i in range(4)] == [64, 128, 256, 512]
    assert shapes["discriminator/d_h4_lin/Matrix"] == [8192, 1]
    assert tiny.model_name == "DCGAN.model"


def test_variables_split_by_prefix_into_d_and_g(sess):
    dcgan = tiny_dcgan(sess)
    assert dcgan.d_vars and dcgan.g_vars
    assert all(v.op.name.startswith("discriminator/") for v in dcgan.d_vars)
    assert all(v.op.name.startswith("generator/") for v in dcgan.g_vars)
    assert set(dcgan.d_vars) | set(dcgan.g_vars) == set(tf.trainable_variables())


def test_losses_and_summaries_have_the_posts_names(sess):
    dcgan = tiny_dcgan(sess)
    for name in ("d_loss_real", "d_loss_fake", "g_loss", "d_loss"):
        assert getattr(dcgan, name).op.name == "losses/" + name
    sess.run(tf.global_variables_initializer())
    feed = {dcgan.images: np.zeros((8, 16, 16, 3)), dcgan.z: np.zeros((8, 8)),
            dcgan.is_training: True}
    d_sum, g_sum = sess.run([dcgan.d_sum, dcgan.g_sum], feed)
    tags = {value.tag for blob in (d_sum, g_sum) for value in tf.Summary.FromString(blob).value}
    # The image summary of G is tagged G/image/0.. per image.
    tags = {tag.split("/")[0] for tag in tags}
    assert tags == {"z", "d", "d_", "G", "d_loss_real", "d_loss_fake", "g_loss", "d_loss"}


@pytest.mark.parametrize("image_size", [0, 4, 12, 50, 100, 2047])
def test_an_image_size_it_cannot_build_is_refused_with_the_nearest_valid_ones(sess, image_size):
    with pytest.raises(ValueError, match="Nearest valid: "):
        tiny_dcgan(sess, image_size)


def test_a_few_discriminator_steps_tell_real_from_fake_better(sess):
    tf.set_random_seed(0)
    dcgan = tiny_dcgan(sess)
    d_optim, _, _ = dcgan.optimizers(0.0002 * 10, 0.5)
    sess.run(tf.global_variables_initializer())
    rng = np.random.default_rng(0)
    real = np.tile(np.linspace(-1, 1, 16)[None, :, None, None], (8, 1, 16, 3))  # a fixed ramp
    z = rng.uniform(-1, 1, (8, 8))
    feed = {dcgan.images: real, dcgan.z: z, dcgan.is_training: True}

    def gap():  # mean D(real) - mean D(fake), in inference mode
        d_real, d_fake = sess.run([dcgan.D, dcgan.D_], {**feed, dcgan.is_training: False})
        return d_real.mean() - d_fake.mean()
    before_loss, before_gap = sess.run(dcgan.d_loss, feed), gap()
    for _ in range(30):
        sess.run(d_optim, feed)
    assert sess.run(dcgan.d_loss, feed) < before_loss - 0.1
    assert gap() > before_gap + 0.1


def test_importing_the_dcgan_loads_no_library_it_needs_only_for_figures_and_charts():
    """extras.run.metrics (dlib, OpenCV) is imported only where figures are computed, matplotlib
    only where a chart is drawn (0.7 s of a start on EPYC-AVX2), scipy.signal not at all (1.4 s),
    and TensorFlow loads without Keras, which would import OpenCV (extras.machine.tfenv)."""
    import subprocess
    import sys
    from conftest import REPO
    heavy = ('dlib', 'cv2', 'keras', 'matplotlib', 'scipy.signal')
    out = subprocess.run([sys.executable, "-c", "import gantut_gan, sys; print(sorted(m for m in "
                          "sys.modules if m in %r))" % (heavy,)],
                         cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
