"""--mixed_precision: Adam with dynamic loss scaling for both stages, in real sessions, and what
the flag does on a machine without a GPU.

The float16 rewrite itself needs an NVIDIA GPU. On a CPU the tests run the loss-scaled step in
float32 (GANTUT_LOSS_SCALE_ON_CPU=1 for the trainer): TensorFlow 2.21's float16 emulation for
CPUs (auto_mixed_precision_cpu) crashes on this graph (test_float16_emulation_on_cpu_...).
"""
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from conftest import REPO, TINY, checkpoint_steps, run_trainer
from extras.model.pix2pix import Pix2Pix
from extras.model.precision import LOSS_SCALE_ON_CPU, mixed_precision_plan
from extras.machine.session import session_config
from gantut_gan import DCGAN

STEPS = 6
# Scaling the loss by a power of two and the gradients back is exact in float32, barring
# overflow: a loss-scaled step's losses are float32's up to the order of summation.
FLOAT32_RTOL = 1e-5


def batches(steps, image_size=16, batch=4):
    """`steps` (images, z) batches from a fixed seed."""
    rng = np.random.default_rng(0)
    return [(rng.uniform(-1, 1, [batch, image_size, image_size, 3]), rng.uniform(-1, 1, [batch, 8]))
            for _ in range(steps)]


def scales(sess):
    """The current loss scale of each Adam, by its name."""
    found = [var for var in tf.global_variables() if var.op.name.endswith("current_loss_scale")]
    return dict(zip([var.op.name.split("/")[-2] for var in found], sess.run(found)))


def dcgan_steps(loss_scale, loss="gan", steps=STEPS):
    """`steps` one-run DCGAN steps from seed 0; return (losses per step, loss scales after each
    step, Adam's applied update counts)."""
    with tf.Graph().as_default(), tf.Session() as sess:
        tf.set_random_seed(0)
        dcgan = DCGAN(sess, image_size=16, batch_size=4, sample_size=4, z_dim=8, gf_dim=4,
                      df_dim=4, loss=loss, n_critic=2, loss_scale=loss_scale)
        _, _, one_run_steps = dcgan.optimizers(0.0002, 0.5)
        sess.run(tf.global_variables_initializer())
        losses, scale_log = [], []
        for step, (images, z) in enumerate(batches(steps), start=1):
            _, values = sess.run(one_run_steps[dcgan.loss_kind.g_updates_after(step)],
                                 {dcgan.images: images, dcgan.z: z, dcgan.is_training: True})
            losses.append(values)
            scale_log.append(scales(sess))
        powers = [var for var in tf.global_variables() if "beta1_power" in var.op.name]
        updates = [int(round(np.log(value) / np.log(0.5))) - 1 for value in sess.run(powers)]
    return losses, scale_log, updates


@pytest.mark.parametrize("loss", ["gan", "wgan-gp"])
def test_loss_scaled_dcgan_step_matches_float32(loss):
    plain, _, plain_updates = dcgan_steps(None, loss)
    scaled, scale_log, updates = dcgan_steps({}, loss)
    assert updates == plain_updates
    # No overflow at the default scale of 2^15: it stays, as no 2000 good steps have passed.
    assert scale_log[-1] == {"d_adam": 2.0**15, "g_adam": 2.0**15}
    for name in plain[0]:
        if loss == "wgan-gp" and name != "wasserstein_estimate":
            continue  # the gradient penalty draws its own random points in every run
        np.testing.assert_allclose([row[name] for row in scaled], [row[name] for row in plain],
                                   rtol=FLOAT32_RTOL, err_msg=name)
    assert all(np.isfinite(value) for row in scaled for value in row.values())


def test_loss_scale_falls_after_an_overflow_and_grows_back():
    # Scaled by 2^121, D's gradients overflow float32 as they would float16 at a scale too
    # high: each such step is skipped and halves the scale; every 2 good steps double it.
    start, steps = 2.0**121, 10
    losses, scale_log, updates = dcgan_steps({"initial_loss_scale": start,
                                              "increment_period": 2}, steps=steps)
    d_scales = [step["d_adam"] for step in scale_log]
    assert d_scales[0] < start, d_scales  # fell at the first, overflowing, step
    fell_to = min(d_scales)
    assert any(later > fell_to for later in d_scales[d_scales.index(fell_to):]), d_scales
    skipped = sum(1 for before, after in zip([start] + d_scales, d_scales) if after < before)
    # A skipped step leaves D's weights and Adam alone.
    assert 0 < skipped < steps and updates[0] == steps - skipped
    assert all(np.isfinite(value) for row in losses for value in row.values())


def test_loss_scaled_pix2pix_step_matches_float32():
    def steps(loss_scale):
        rng = np.random.default_rng(0)
        with tf.Graph().as_default(), tf.Session() as sess:
            tf.set_random_seed(0)
            model = Pix2Pix(sess, image_size=16, gf_dim=4, df_dim=4, loss_scale=loss_scale)
            sess.run(tf.global_variables_initializer())
            return [model.train_step(rng.uniform(-1, 1, [1, 16, 16, 3]),
                                     rng.uniform(-1, 1, [1, 16, 16, 3]))
                    for _ in range(STEPS)]
    plain, scaled = steps(None), steps({})
    for name in plain[0]:
        np.testing.assert_allclose([row[name] for row in scaled], [row[name] for row in plain],
                                   rtol=FLOAT32_RTOL, err_msg=name)


def test_mixed_precision_plan():
    assert mixed_precision_plan(False, gpu=True).float16 is False
    on_gpu = mixed_precision_plan(True, gpu=True)
    assert on_gpu.float16 and on_gpu.loss_scale == {}
    os.environ.pop(LOSS_SCALE_ON_CPU, None)
    on_cpu = mixed_precision_plan(True, gpu=False)
    assert not on_cpu.float16 and on_cpu.loss_scale is None and "--bf16" in on_cpu.words
    rewrite = session_config(2, False, float16=True).graph_options.rewrite_options
    assert rewrite.auto_mixed_precision == rewrite.ON
    assert session_config(2, False).graph_options.rewrite_options.auto_mixed_precision != \
        rewrite.ON


def loss_scale_names(folder):
    """The loss-scale variables in the newest checkpoint of `folder`."""
    newest = os.path.join(folder, "DCGAN.model-%d" % checkpoint_steps(folder)[-1])
    return sorted(name for name, _ in tf.train.list_variables(newest) if "loss_scale" in name)


def test_resume_with_the_flag_switched_either_way(tmp_path):
    from conftest import write_images
    write_images(str(tmp_path / "faces"), 16, 16)
    common = TINY + ["--dataset", "faces", "--eval_every_epoch=False", "--progress_gif=False"]

    # On this CPU the flag alone does nothing but say so: no loss scale in the checkpoint.
    result = run_trainer(tmp_path, *common, "--epoch", "1", "--mixed_precision")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "float16 off (--mixed_precision is for NVIDIA GPUs; on a CPU, --bf16)" in result.stdout
    assert loss_scale_names(tmp_path / "checkpoint") == []

    # Loss scaling on (the test switch): its variables start fresh where the checkpoint lacks them.
    env = dict(os.environ, **{LOSS_SCALE_ON_CPU: "1"})
    result = subprocess.run([sys.executable, os.path.join(REPO, "gantut_trainer.py"), *common,
                             "--epoch", "2", "--mixed_precision"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "loss scaling on" in result.stdout
    assert "resuming at step 4 (epoch 1, batch 0)" in result.stdout
    assert len(loss_scale_names(tmp_path / "checkpoint")) == 4

    # And without the flag again: the checkpoint's loss scale is ignored.
    result = run_trainer(tmp_path, *common, "--epoch", "3")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "resuming at step 8 (epoch 2, batch 0)" in result.stdout
    assert checkpoint_steps(tmp_path / "checkpoint")[-1] == 12


def test_float16_emulation_on_cpu_crashes_on_this_graph():
    """Why the tests scale losses in float32: TensorFlow's auto_mixed_precision_cpu rewrite
    dies on the generator's transposed convolutions (a grappler bug in TensorFlow 2.21). When
    this test fails, that rewrite works and the tests can run float16's range on the CPU."""
    script = (
        "import extras.machine.tfenv, numpy as np, tensorflow.compat.v1 as tf\n"
        "from tensorflow.core.protobuf import rewriter_config_pb2\n"
        "from gantut_gan import DCGAN\n"
        "config = tf.ConfigProto()\n"
        "config.graph_options.rewrite_options.auto_mixed_precision_cpu = "
        "rewriter_config_pb2.RewriterConfig.ON\n"
        "with tf.Session(config=config) as sess:\n"
        "    m = DCGAN(sess, image_size=16, batch_size=4, gf_dim=4, df_dim=4, z_dim=8)\n"
        "    sess.run(tf.global_variables_initializer())\n"
        "    sess.run(m.G, {m.z: np.zeros([4, 8]), m.is_training: True})\n"
        "print('ran')\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode != 0 and "ran" not in result.stdout
