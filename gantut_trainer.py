#!/usr/bin/env python3
"""Train the DCGAN from the command line (Part 5 of "Generative Adversarial Network (GAN) in
TensorFlow").

    ./gantut_trainer.py --dataset ~/GAN/aligned --epoch 20
    ./gantut_trainer.py --dataset demo --epoch 5        # built-in cartoon faces, no download
    tensorboard --logdir logs

Every setting is a flag defined below, with its default and help (`--helpfull` lists them all).
Outputs: `logs/` (TensorBoard events and graph), `checkpoint/` (weights, training position and the
image cache), `samples/` (sample grids). Running the same command again resumes where the last run
stopped; Ctrl-C saves a checkpoint first.
"""
import os
import sys

import tensorflow.compat.v1 as tf
from absl import app
from tensorflow.core.protobuf import rewriter_config_pb2

from gantut_datafuncs import DatasetError, load_dataset
from gantut_gan import DCGAN, valid_image_size

ALL_CORES = len(os.sched_getaffinity(0))

flags = tf.app.flags
flags.DEFINE_integer("epoch", 20, "Epochs to train [20]")
flags.DEFINE_float("learning_rate", 0.0002, "Learning rate of Adam [0.0002]")
flags.DEFINE_float("beta1", 0.5, "Momentum term (beta1) of Adam [0.5]")
flags.DEFINE_float("train_size", float("inf"), "Use at most this many images [inf: all]")
flags.DEFINE_integer("batch_size", 64, "Images per batch [64]")
flags.DEFINE_integer("image_size", 64, "Image height and width; a power of two, 8 or more [64]")
flags.DEFINE_integer("c_dim", 3, "Image channels: 3 for RGB, 1 for grayscale [3]")
flags.DEFINE_integer("z_dim", 100, "Length of the noise vector z [100]")
flags.DEFINE_integer("gf_dim", 64, "Channels of G's last hidden layer [64]")
flags.DEFINE_integer("df_dim", 64, "Channels of D's first layer [64]")
flags.DEFINE_string("dataset", "lfw-aligned-64",
                    "Folder of training images, searched recursively for .png/.jpg/.jpeg, or "
                    "'demo' for procedural cartoon faces drawn on first use [lfw-aligned-64]")
flags.DEFINE_integer("demo_images", 4000, "How many faces --dataset demo draws [4000]")
flags.DEFINE_boolean("is_crop", False,
                     "Centre-crop and resize images that are not image_size square [False]")
flags.DEFINE_string("checkpoint_dir", "checkpoint",
                    "Folder for checkpoints and the decoded-image cache [checkpoint]")
flags.DEFINE_string("sample_dir", "samples", "Folder for sample grids [samples]")
flags.DEFINE_string("logs_dir", "logs", "Folder for TensorBoard logs [logs]")
flags.DEFINE_integer("sample_freq", 100, "Write a sample grid every this many steps [100]")
flags.DEFINE_integer("ckpt_freq", 500, "Save a checkpoint every this many steps [500]")
flags.DEFINE_integer("summary_freq", 10, "Write TensorBoard summaries every this many steps [10]")
flags.DEFINE_integer("max_to_keep", 5, "Checkpoints to keep; 0 keeps all [5]")
flags.DEFINE_integer("threads", ALL_CORES,
                     "CPU threads for TensorFlow and for decoding; the post used 8, since TF "
                     "will otherwise take every core on a shared cluster [every core this "
                     "process may use: %d]" % ALL_CORES)
flags.DEFINE_integer("seed", None, "Random seed for weights, noise and data order [random]")
flags.DEFINE_boolean("bf16", False,
                     "Let oneDNN run the graph in bfloat16 mixed precision: faster on CPUs with "
                     "AVX512-BF16 or AMX; sample quality not yet compared with float32 [False]")
FLAGS = flags.FLAGS

# Flags that make no sense are refused at start, naming the flag (absl prints the message).
for name, at_least in (("epoch", 1), ("batch_size", 1), ("train_size", 1), ("c_dim", 1),
                       ("z_dim", 1), ("gf_dim", 1), ("df_dim", 1), ("demo_images", 1),
                       ("sample_freq", 1), ("ckpt_freq", 1), ("summary_freq", 1),
                       ("max_to_keep", 0), ("threads", 1)):
    flags.register_validator(name, lambda value, least=at_least: value >= least,
                             message="--%s must be at least %s" % (name, at_least))
flags.register_validator("image_size", valid_image_size,
                         message="--image_size must be a power of two, at least 8 "
                                 "(16, 32, 64, 128, 256)")
flags.register_validator("c_dim", lambda value: value in (1, 3),
                         message="--c_dim must be 1 (grayscale) or 3 (RGB)")
flags.register_validator("learning_rate", lambda value: value > 0,
                         message="--learning_rate must be above 0")
flags.register_validator("beta1", lambda value: 0 <= value < 1,
                         message="--beta1 must be in [0, 1)")


def session_config(threads, bf16):
    """The Session's settings: a thread limit (Part 5) and, if asked, bfloat16 on oneDNN."""
    config = tf.ConfigProto(intra_op_parallelism_threads=threads,
                            inter_op_parallelism_threads=threads)
    if bf16:
        config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = \
            rewriter_config_pb2.RewriterConfig.ON
    return config


def dataset_folder():
    """The folder to train on: --dataset, or the demo faces, drawn on first use (Part 5)."""
    if FLAGS.dataset != "demo":
        return os.path.expanduser(FLAGS.dataset)
    from demo_faces import make_demo_dataset
    folder = os.path.join("data", "demo_%dpx" % FLAGS.image_size)
    return make_demo_dataset(folder, n_images=FLAGS.demo_images, size=FLAGS.image_size,
                             seed=0 if FLAGS.seed is None else FLAGS.seed)


def load_images():
    """Decode (or load the cache of) the training images; stop with a clear message (Part 5).

    Runs before any graph is built, so a bad dataset costs seconds, not a model build.
    """
    folder = dataset_folder()
    try:
        images = load_dataset(folder, FLAGS.image_size, FLAGS.c_dim, FLAGS.is_crop,
                              FLAGS.train_size, cache_dir=FLAGS.checkpoint_dir,
                              workers=FLAGS.threads)
    except DatasetError as err:
        sys.exit("error: %s" % err)
    if len(images) < FLAGS.batch_size:
        sys.exit("error: dataset folder %s has %d usable image(s), fewer than --batch_size %d. "
                 "Add images to it, or lower --batch_size." % (folder, len(images),
                                                                FLAGS.batch_size))
    print(" [*] %d training images from %s" % (len(images), folder))
    return images


def main(_):
    """Create the output folders, open a Session, build the DCGAN and train it (Part 5)."""
    for folder in (FLAGS.checkpoint_dir, FLAGS.sample_dir, FLAGS.logs_dir):
        os.makedirs(folder, exist_ok=True)
    images = load_images()
    with tf.Graph().as_default(), \
            tf.Session(config=session_config(FLAGS.threads, FLAGS.bf16)) as sess:
        if FLAGS.seed is not None:
            tf.set_random_seed(FLAGS.seed)
        dcgan = DCGAN(sess, image_size=FLAGS.image_size, batch_size=FLAGS.batch_size,
                      is_crop=FLAGS.is_crop, c_dim=FLAGS.c_dim, z_dim=FLAGS.z_dim,
                      gf_dim=FLAGS.gf_dim, df_dim=FLAGS.df_dim,
                      checkpoint_dir=FLAGS.checkpoint_dir)
        dcgan.train(FLAGS, images)


if __name__ == "__main__":
    # absl's runner (what tf.app.run wraps) refuses unknown flags and prints a bad flag's
    # message without a traceback.
    app.run(main)
