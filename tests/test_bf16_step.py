"""--bf16 (oneDNN's bfloat16 rewrite) trains as float32 does: the one-run step's losses over a few
steps stay within BF16_RTOL of float32's, from the same seed and batches, in real sessions (on a
CPU without bfloat16 instructions oneDNN emulates them, with the same rounding)."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from extras.machine.session import session_config
from gantut_gan import DCGAN

STEPS, IMAGE_SIZE, BATCH, Z_DIM = 5, 32, 8, 8
# bfloat16 keeps 8 significant bits (a relative rounding of 0.4%); measured: at most 0.5% apart
# over these steps.
BF16_RTOL = 0.02


def step_losses(bf16, fused_bn):
    """(d_loss, g_loss) of STEPS one-run steps from seed 0."""
    rng = np.random.default_rng(0)
    with tf.Graph().as_default(), tf.Session(config=session_config(2, bf16)) as sess:
        tf.set_random_seed(0)
        dcgan = DCGAN(sess, image_size=IMAGE_SIZE, batch_size=BATCH, sample_size=BATCH,
                      z_dim=Z_DIM, gf_dim=8, df_dim=8, fused_bn=fused_bn)
        _, _, one_run_steps = dcgan.optimizers(0.0002, 0.5)
        sess.run(tf.global_variables_initializer())
        losses = []
        for step in range(1, STEPS + 1):
            feed = {dcgan.images: rng.uniform(-1, 1, [BATCH, IMAGE_SIZE, IMAGE_SIZE, 3]),
                    dcgan.z: rng.uniform(-1, 1, [BATCH, Z_DIM]), dcgan.is_training: True}
            _, values = sess.run(one_run_steps[dcgan.loss_kind.g_updates_after(step)], feed)
            losses.append([values["d_loss"], values["g_loss"]])
    return np.array(losses)


@pytest.mark.parametrize("fused_bn", [False, True])
def test_bf16_step_losses_stay_near_float32(fused_bn):
    float32, bf16 = step_losses(False, fused_bn), step_losses(True, fused_bn)
    assert np.isfinite(bf16).all()
    np.testing.assert_allclose(bf16, float32, rtol=BF16_RTOL)
