"""Part 5's own training script, changed only where TensorFlow 2 makes it (tensorflow.compat.v1,
a float train_size, flags parsed before use), drives our DCGAN: its nine flags, the post's
`DCGAN(...)` call and `dcgan.train(FLAGS)`; every field train reads beyond them takes the
trainer's default."""
import os
import subprocess
import sys

from conftest import REPO, checkpoint_steps, write_images
from extras.run.config import DEFAULTS, TrainingConfig

POST_SCRIPT = '''
import os
import sys

import numpy as np
import tensorflow.compat.v1 as tf

from gantut_gan import DCGAN

flags = tf.app.flags
flags.DEFINE_integer("epoch", 20, "Number of epochs to train [20]")
flags.DEFINE_float("learning_rate", 0.0002, "Learning rate for adam optimiser [0.0002]")
flags.DEFINE_float("beta1", 0.5, "Momentum term for adam optimiser [0.5]")
flags.DEFINE_float("train_size", np.inf, "Size of training images [np.inf]")
flags.DEFINE_integer("batch_size", 64, "The size of batch images [64]")
flags.DEFINE_integer("image_size", 64, "The size of images [64]")
flags.DEFINE_string("dataset", "lfw-aligned-64", "Dataset directory.")
flags.DEFINE_string("checkpoint_dir", "checkpoint", "Directory name to save the checkpoints [checkpoint]")
flags.DEFINE_string("sample_dir", "samples", "Directory name to save the image samples [samples]")
FLAGS = flags.FLAGS
FLAGS(sys.argv)

if not os.path.exists(FLAGS.checkpoint_dir):
    os.makedirs(FLAGS.checkpoint_dir)
if not os.path.exists(FLAGS.sample_dir):
    os.makedirs(FLAGS.sample_dir)

config = tf.ConfigProto(intra_op_parallelism_threads=8)
with tf.Session(config=config) as sess:
    dcgan = DCGAN(sess, image_size=FLAGS.image_size, batch_size=FLAGS.batch_size,
                  is_crop=False, checkpoint_dir=FLAGS.checkpoint_dir)
    dcgan.train(FLAGS)
'''


def test_the_posts_script_trains_our_dcgan_to_the_end_and_resumes(tmp_path):
    write_images(str(tmp_path / "faces"), 8, 16)
    (tmp_path / "post_trainer.py").write_text(POST_SCRIPT)
    env = dict(os.environ, PYTHONPATH=REPO)

    def run(epochs):
        return subprocess.run([sys.executable, "post_trainer.py", "--dataset", "faces",
                               "--image_size", "16", "--batch_size", "4", "--epoch", str(epochs)],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    result = run(1)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Epoch [ 0] [   1/   2]" in result.stdout
    assert (tmp_path / "samples" / "epoch_00.png").exists()
    assert list((tmp_path / "logs").glob("events.out.tfevents.*"))
    assert checkpoint_steps(str(tmp_path / "checkpoint")) == [2]
    again = run(2)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming at step 2 (epoch 1, batch 0)" in again.stdout
    assert checkpoint_steps(str(tmp_path / "checkpoint")) == [2, 4]


def test_a_config_takes_what_it_is_given_and_the_trainers_defaults_for_the_rest():
    class PostFlags:
        epoch, dataset = 3, "faces"

    config = TrainingConfig.of(PostFlags)
    assert (config.epoch, config.dataset) == (3, "faces")
    assert config.holdout == DEFAULTS.holdout and config.sample_freq == DEFAULTS.sample_freq
    assert TrainingConfig.of(config) == config
