"""LSGAN (Mao et al. 2017), the loss kind added beside the posts' and WGAN-GP: its terms, its
place in the posts' step, and real trainer runs that train, resume, generate and complete."""
import json

import numpy as np
import tensorflow.compat.v1 as tf
from conftest import TINY, checkpoint_steps, run_trainer, write_images

from gantut_gan import DCGAN


def test_lsgan_regresses_d_to_one_and_zero_with_the_posts_d_and_updates(sess):
    tf.set_random_seed(0)
    dcgan = DCGAN(sess, image_size=16, batch_size=4, sample_size=4, z_dim=8, gf_dim=4, df_dim=4,
                  loss="lsgan")
    assert any("d_bn1" in var.op.name for var in tf.global_variables())  # the posts' batch norm
    _, _, one_run_steps = dcgan.optimizers(**dcgan.loss_kind.adam)
    assert list(one_run_steps) == [2]  # one D update, then two G updates
    sess.run(tf.global_variables_initializer())
    rng = np.random.default_rng(0)
    feed = {dcgan.images: rng.uniform(-1, 1, (4, 16, 16, 3)), dcgan.z: rng.uniform(-1, 1, (4, 8)),
            dcgan.is_training: False}
    real, fake, d_out, terms = sess.run(
        [dcgan.D_logits, dcgan.D_logits_, dcgan.D,
         {name: getattr(dcgan, name) for name in ("d_loss_real", "d_loss_fake", "d_loss",
                                                  "g_loss")}], feed)
    np.testing.assert_array_equal(d_out, real)  # a regression output, no sigmoid
    expected = {"d_loss_real": 0.5 * np.mean((real - 1) ** 2),
                "d_loss_fake": 0.5 * np.mean(fake ** 2), "g_loss": 0.5 * np.mean((fake - 1) ** 2)}
    expected["d_loss"] = expected["d_loss_real"] + expected["d_loss_fake"]
    for name, value in expected.items():
        np.testing.assert_allclose(terms[name], value, rtol=1e-5, err_msg=name)

    feed[dcgan.is_training] = True
    d_losses = [sess.run(one_run_steps[2], feed)[1]["d_loss"] for _ in range(5)]
    assert d_losses[-1] < d_losses[0]  # D learns to tell this batch from G's


def test_an_lsgan_run_trains_resumes_generates_and_completes(tmp_path):
    write_images(str(tmp_path / "faces"), 12, 16)
    args = ["--dataset", "faces", "--loss", "lsgan", "--noeval_every_epoch", *TINY]
    first = run_trainer(str(tmp_path), "--epoch", "1", *args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads((tmp_path / "checkpoint" / "model.json").read_text())["loss"] == "lsgan"
    resumed = run_trainer(str(tmp_path), "--epoch", "2", *args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming at step 3 (epoch 1, batch 0)" in resumed.stdout
    assert checkpoint_steps(str(tmp_path / "checkpoint"))[-1] == 6
    generated = run_trainer(str(tmp_path), "--train=False", "--n_samples", "4")
    assert generated.returncode == 0, generated.stderr[-3000:]
    completed = run_trainer(str(tmp_path), "--complete", "--imgs", "faces/*.png", "--nIter", "5",
                            "--batch_size", "4")
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert (tmp_path / "completions" / "blended_0005.png").exists()
