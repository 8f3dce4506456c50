#!/usr/bin/env python3
"""Train the DCGAN from the command line (Part 5 of "Generative Adversarial Network (GAN) in
TensorFlow").

    ./gantut_trainer.py --dataset ~/GAN/aligned --epoch 20
    ./gantut_trainer.py --dataset demo --epoch 5        # built-in cartoon faces, no download
    tensorboard --logdir logs

and use the trained model (Parts 1 and 5):

    ./gantut_trainer.py --train=False [--interpolate]   # sample grids from the checkpoint
    ./gantut_trainer.py --complete --mask center       # fill in missing parts of --dataset's images
    ./gantut_trainer.py --turing_quiz quiz.html         # the "Real or Fake?" page
    ./gantut_trainer.py --train=False --export my_model # weights only, a folder to share

Every setting is a flag, with a one-line help ending in its default (`--help` lists them): the
post's nine first, then ours; those pix2pix_trainer.py has too are defined in extras/run/flags.py.
What the helps leave out:
- --dataset is searched recursively for .png/.jpg/.jpeg; `demo` draws procedural cartoon faces
  into data/ on first use. G doubles an s x s map (s in 4..7) up to --image_size, a layer each
  time, and D halves it back. --augment flips and jitters (scale up ~10%, random crop back) each
  image anew per batch, from --seed: for small data sets.
- --loss wgan-gp (Gulrajani et al. 2017) is steadier on 1,000-2,000 images; it trains the
  critic --n_critic times per G update, where the posts' loss makes two G updates per D update.
  --loss lsgan (Mao et al. 2017) swaps the posts' cross-entropy for squared errors. Each loss
  kind is a class of gantut_gan (LOSSES); the loss is recorded with the checkpoints.
- --eval_every_epoch: face rate, face Frechet distance and sliced Wasserstein distance, in
  TensorBoard (metrics/...) and logs_dir/metrics.csv. A --mask image is white where known.
- --threads: the post used 8, since TF will otherwise take every core on a shared cluster.
- --bf16 (oneDNN's auto mixed precision rewrite) is faster on CPUs with AVX512-BF16 or AMX, with
  no loss of quality measured; --fused_bn does the same arithmetic, faster on GPUs and on CPUs
  with bfloat16 instructions (docs/results.md, bench/LEVERS.md). Left unset, each is chosen for this
  machine at start, and the ` [*] speed:` line says what was chosen.
- --device gpu stops at start, in one line, where TensorFlow sees no GPU; --device cpu hides the
  GPUs. The ` [*] device:` line names what trains.

Outputs: `logs/` (TensorBoard events and graph), `checkpoint/` (weights, training position and the
image cache), `samples/` (sample grids); using a model writes its image cache to
~/.cache/gantut ($XDG_CACHE_HOME). Running the same command again resumes where the last run
stopped; Ctrl-C saves a checkpoint first.
"""
import extras.machine.tfenv  # first: TensorFlow's log level is read when it loads (see the module)

import dataclasses
import os
import sys

import numpy as np
import tensorflow.compat.v1 as tf
from absl import app

from gantut_complete import CompletionError, complete_images
from extras.machine.device import choose_device, gpu_visible
from extras.run.config import DEFAULTS, TrainingConfig
from extras.data.dataset import DatasetError, load_dataset, split_holdout, user_cache_dir
from extras.run.flags import define, define_shared, machine_values
from gantut_gan import DCGAN, GANLoss, LOSSES, image_size_error, valid_image_size
from gantut_imgfuncs import grid_shape, inverse_transform, save_images, to_uint8
from gantut_quiz import write_quiz
from extras.model.precision import mixed_precision_plan
from extras.machine.cpu import bf16_wins, fused_batch_norm_wins
from extras.machine.session import new_session
from extras.run.checkpoints import (Position, checkpoint_paths, checkpoint_step, position_at,
                                    record_settings, saved_settings)
from extras.run.flags import parse_flags
from extras.run.training import log_metrics, training_folders
from extras.utils import node_line


def loss_defaults(name):
    """The default of Adam's setting `name` in a flag's help: the posts', then each loss kind's
    own where it differs ("0.0002; 0.0001 with --loss wgan-gp")."""
    posts = GANLoss.adam[name]
    return "; ".join(["%g" % posts] + ["%g with --loss %s" % (kind.adam[name], kind.name)
                                       for kind in LOSSES.values() if kind.adam[name] != posts])


def check_image_size(value):
    """True for an --image_size the model builds; else refused, naming the nearest valid ones."""
    if not valid_image_size(value):
        raise tf.app.flags.ValidationError("--" + image_size_error(value))
    return True


flags = tf.app.flags
# The post's flags, in the post's order, with its defaults (those DCGAN.train reads: DEFAULTS).
define(flags.DEFINE_integer, "epoch", DEFAULTS.epoch, "Epochs to train [%d]" % DEFAULTS.epoch,
       at_least=1)
define(flags.DEFINE_float, "learning_rate", DEFAULTS.learning_rate,
       "Learning rate of Adam [%s]" % loss_defaults("learning_rate"), above=0)
define(flags.DEFINE_float, "beta1", DEFAULTS.beta1,
       "Momentum term (beta1) of Adam [%s]" % loss_defaults("beta1"), fraction=True)
define(flags.DEFINE_float, "train_size", DEFAULTS.train_size,
       "Use at most this many images [%g: all]" % DEFAULTS.train_size, at_least=1)
define(flags.DEFINE_integer, "batch_size", DEFAULTS.batch_size,
       "Images per batch [%d]" % DEFAULTS.batch_size, at_least=1)
define(flags.DEFINE_integer, "image_size", DEFAULTS.image_size, "Image height and width: a power "
       "of two from 8, or s x 2^k from 16, s in 4..7 [%d]" % DEFAULTS.image_size,
       check=check_image_size)
flags.DEFINE_string("dataset", DEFAULTS.dataset, "Folder of training images, or 'demo' for "
                    "drawn cartoon faces [%s]" % DEFAULTS.dataset)
flags.DEFINE_string("checkpoint_dir", DEFAULTS.checkpoint_dir, "Folder for checkpoints and the "
                    "decoded-image cache [%s]" % DEFAULTS.checkpoint_dir)
flags.DEFINE_string("sample_dir", DEFAULTS.sample_dir,
                    "Folder for sample grids [%s]" % DEFAULTS.sample_dir)

# Ours from here on: first those pix2pix_trainer.py has too, then this trainer's own.
define_shared(DEFAULTS.logs_dir, DEFAULTS.sample_freq, DEFAULTS.ckpt_freq, DEFAULTS.summary_freq,
              DEFAULTS.max_to_keep)
# The model (its shape and loss are recorded in checkpoint_dir/model.json).
define(flags.DEFINE_integer, "z_dim", 100, "Length of the noise vector z [100]", at_least=1)
flags.DEFINE_enum("loss", GANLoss.name, list(LOSSES), "; ".join(
    "%s: %s" % (name, kind.help) for name, kind in LOSSES.items()) + " [%s]" % GANLoss.name)
define(flags.DEFINE_float, "beta2", DEFAULTS.beta2,
       "Adam's beta2 [%s]" % loss_defaults("beta2"), fraction=True)
define(flags.DEFINE_float, "gp_lambda", 10.0, "Weight of the gradient penalty (wgan-gp) [10]",
       at_least=0)
define(flags.DEFINE_integer, "n_critic", 5, "Critic updates per G update (wgan-gp) [5]",
       at_least=1)
define(flags.DEFINE_float, "g_average", 0.0, "Decay of a moving average of G's weights that "
       "samples, evaluation and the trained model use, e.g. 0.999; 0: none, as the posts [0]",
       fraction=True)
# The data, the samples and the machine.
define(flags.DEFINE_integer, "demo_images", 4000, "How many faces --dataset demo draws [4000]",
       at_least=1)
flags.DEFINE_boolean("is_crop", False, "Centre-crop and resize images to image_size [False]")
flags.DEFINE_boolean("augment", DEFAULTS.augment,
                     "Random flips and jitter of each training image [%s]" % DEFAULTS.augment)
flags.DEFINE_boolean("progress_gif", DEFAULTS.progress_gif,
                     "Animate the epochs' grids into sample_dir/progress.gif [%s]"
                     % DEFAULTS.progress_gif)
# None: this machine's choice, made in main (machine_values), not at import.
flags.DEFINE_boolean("fused_bn", None, "Batch norm in TensorFlow's fused kernel; --nofused_bn "
                     "for the plain one [on a GPU or a CPU with bfloat16 instructions]")
# Knowing how good it is (extras/run/metrics.py).
flags.DEFINE_boolean("eval_every_epoch", DEFAULTS.eval_every_epoch,
                     "Quality figures against held-out images after each epoch [%s]"
                     % DEFAULTS.eval_every_epoch)
define(flags.DEFINE_integer, "eval_samples", DEFAULTS.eval_samples, "Held-out (and as many "
       "generated) images per evaluation, at most [%d]" % DEFAULTS.eval_samples, at_least=1)
define(flags.DEFINE_float, "holdout", DEFAULTS.holdout,
       "Share of the images kept out of training [%g]" % DEFAULTS.holdout, fraction=True)
# Using the trained model (Parts 1 and 5).
flags.DEFINE_boolean("train", True, "Train; --train=False generates from the checkpoint [True]")
define(flags.DEFINE_integer, "n_samples", 64, "Images --train=False generates [64]", at_least=1)
flags.DEFINE_boolean("save_single", False, "With --train=False, also one PNG per image [False]")
flags.DEFINE_boolean("interpolate", False,
                     "With --train=False, a grid whose rows walk between random z [False]")
flags.DEFINE_string("generated_dir", "generated", "Folder for --train=False output [generated]")
flags.DEFINE_alias("out_dir", "generated_dir")
flags.DEFINE_string("export", None,
                    "With --train=False, save the trained model weights-only to this folder, "
                    "G's moving average as G [off]")
flags.DEFINE_boolean("evaluate", False,
                     "With --train=False, evaluate the checkpoint on the held-out images [False]")
flags.DEFINE_boolean("complete", False,
                     "Complete (in-paint) the images of --imgs under --mask (Part 1) [False]")
flags.DEFINE_string("imgs", None, "Images to complete, a glob [the .png images of --dataset]")
flags.DEFINE_string("mask", "center",
                    "Region to fill in: center, left, random, grid or a mask PATH.png [center]")
define(flags.DEFINE_float, "lam", 0.1, "Weight of the perceptual loss in completion [0.1]",
       at_least=0)
define(flags.DEFINE_integer, "nIter", 1000, "Gradient steps on z for completion [1000]",
       at_least=0)
flags.DEFINE_string("completions_dir", "completions",
                    "Folder for completion output [completions]")
flags.DEFINE_alias("outDir", "completions_dir")  # B. Amos's name for it
flags.DEFINE_string("turing_quiz", None,
                    "Write the 'Real or Fake?' quiz page to this HTML file [off]")
FLAGS = flags.FLAGS

# What checkpoints from before --loss existed were trained with.
LEGACY_SETTINGS = {"loss": GANLoss.name}

def dataset_folder(image_size):
    """The folder to train on: --dataset, or the demo faces of `image_size`, drawn on first use
    (Part 5)."""
    if FLAGS.dataset != "demo":
        return os.path.expanduser(FLAGS.dataset)
    from demo_faces import make_demo_dataset
    folder = os.path.join("data", "demo_%dpx" % image_size)
    return make_demo_dataset(folder, n_images=FLAGS.demo_images, size=image_size,
                             seed=0 if FLAGS.seed is None else FLAGS.seed)


def load_images(shape, at_least, purpose, cache_dir=None):
    """Decode (or load the cache of) the dataset's images, cached in `cache_dir` (default:
    --checkpoint_dir); stop with a clear message (Part 5).

    Runs before any graph is built, so a bad dataset costs seconds, not a model build.
    """
    folder = dataset_folder(shape["image_size"])
    try:
        images = load_dataset(folder, shape["image_size"], shape["c_dim"], FLAGS.is_crop,
                              FLAGS.train_size, cache_dir=cache_dir or FLAGS.checkpoint_dir,
                              workers=FLAGS.threads)
    except DatasetError as err:
        sys.exit("error: %s" % err)
    if not len(images):
        sys.exit("error: dataset folder %s has no usable image: every image file in it is "
                 "unreadable (each is named above). Replace them with readable .png/.jpg "
                 "images, or point --dataset at another folder." % folder)
    if len(images) < at_least:
        sys.exit("error: dataset folder %s has %d usable image(s), fewer than %s. Add images "
                 "to it%s." % (folder, len(images), purpose,
                               ", or lower --batch_size" if FLAGS.train else ""))
    print(" [*] %d images from %s" % (len(images), folder))
    return images


def flag_shape():
    """The model shape the flags ask for."""
    return {name: FLAGS[name].value for name in DCGAN.shape_flags}


def run_config(machine):
    """The run's config, resolved once from the flags: the loss kind's own Adam settings for
    those the user did not set, and this machine's choices (`machine`) for --bf16 and
    --fused_bn where they were left unset."""
    adam = {name: FLAGS[name].value if FLAGS[name].present else value
            for name, value in LOSSES[FLAGS.loss].adam.items()}
    return dataclasses.replace(TrainingConfig.of(FLAGS), **adam,
                               **machine_values(FLAGS, **machine))


def train(config, machine, device, mixed):
    """Create the output folders, open a Session, build the DCGAN and train it with `config`
    (Part 5); `machine`: this machine's choices of --bf16 and --fused_bn, for the speed line;
    `device`: the line naming the device; `mixed`: what --mixed_precision does here."""
    with training_folders(FLAGS.checkpoint_dir, FLAGS.sample_dir, FLAGS.logs_dir):
        shape = flag_shape()
        images = load_images(shape, FLAGS.batch_size, "--batch_size %d" % FLAGS.batch_size)
        # After the data check, so a bad --dataset is told in one line.
        print(node_line(FLAGS.threads))
        print(device)
        print(speed_line(config, machine, mixed))
        print(" [*] --loss %s: Adam learning_rate %g, beta1 %g, beta2 %g"
              % (FLAGS.loss, config.learning_rate, config.beta1, config.beta2))
        record_settings(FLAGS.checkpoint_dir, DCGAN.model_name, shape, LEGACY_SETTINGS)
        with new_session(FLAGS.threads, config.bf16, FLAGS.seed, mixed.float16) as sess:
            dcgan = DCGAN(sess, batch_size=FLAGS.batch_size, is_crop=FLAGS.is_crop,
                          checkpoint_dir=FLAGS.checkpoint_dir, gp_lambda=FLAGS.gp_lambda,
                          n_critic=FLAGS.n_critic, fused_bn=config.fused_bn,
                          loss_scale=mixed.loss_scale, g_average=FLAGS.g_average, **shape)
            dcgan.train(config, images)


def speed_line(config, machine, mixed):
    """What the step runs on (`config`), and what this machine's defaults (`machine`) would
    choose; `mixed`: what --mixed_precision does here."""
    on = {True: "on", False: "off"}
    return (" [*] speed: oneDNN kernels %s, bfloat16 %s, fused batch norm %s, %s (defaults for "
            "this machine: bfloat16 %s, fused batch norm %s)" % (
                on[extras.machine.tfenv.ONEDNN], on[config.bf16], on[config.fused_bn], mixed.words,
                on[machine["bf16"]], on[machine["fused_bn"]]))


def use_trained_model(config):
    """Load the newest checkpoint and generate, complete or write the quiz (Parts 1 and 5);
    `config`: the run's (its --bf16 and --fused_bn)."""
    shape = saved_settings(FLAGS.checkpoint_dir, flag_shape())
    real = None
    if FLAGS.turing_quiz or FLAGS.evaluate:
        # Cached outside --checkpoint_dir: using a model writes nothing beside it.
        real = load_images(shape, 8, "8" if FLAGS.turing_quiz else "enough to hold some out",
                           cache_dir=user_cache_dir())
    with new_session(FLAGS.threads, config.bf16) as sess:
        dcgan = DCGAN(sess, batch_size=FLAGS.batch_size, lam=FLAGS.lam, fused_bn=config.fused_bn,
                      checkpoint_dir=FLAGS.checkpoint_dir, **shape)
        sess.run(tf.global_variables_initializer())
        if not dcgan.load(FLAGS.checkpoint_dir):
            sys.exit("error: no checkpoint in %s (looked for %s). Train first with "
                     "./gantut_trainer.py --dataset ..., or point --checkpoint_dir at the "
                     "checkpoint folder of a training run."
                     % (FLAGS.checkpoint_dir, os.path.join(FLAGS.checkpoint_dir, "checkpoint")))
        rng = np.random.default_rng(FLAGS.seed)
        if FLAGS.complete:
            folder = dataset_folder(shape["image_size"])  # --dataset demo: drawn on first use
            imgs = FLAGS.imgs or os.path.join(folder, "**", "*.png")
            try:
                complete_images(dcgan, imgs, FLAGS)
            except CompletionError as err:
                sys.exit("error: %s" % err)
        elif FLAGS.export:
            export_model(dcgan, shape)
        elif FLAGS.evaluate:
            evaluate_checkpoint(dcgan, real)
        elif FLAGS.turing_quiz:
            fake = dcgan.generate(rng.uniform(-1, 1, [8, dcgan.z_dim]))
            real = real[np.sort(rng.choice(len(real), 8, replace=False))]
            write_quiz(FLAGS.turing_quiz, real, to_uint8(inverse_transform(fake)), FLAGS.seed)
            print(" [*] wrote the quiz to %s" % FLAGS.turing_quiz)
        else:
            write_samples(dcgan, rng)


def checkpoint_position(dcgan):
    """The training position of the checkpoint `dcgan.load` restored; a weights-only one
    (DCGAN.save, --export) holds only its step, in its name: epoch 0 then."""
    return position_at(dcgan.restored) or Position(checkpoint_step(dcgan.restored), 0, 1, 0)


def evaluate_checkpoint(dcgan, images):
    """--train=False --evaluate: the quality figures of the checkpoint, logged as in training."""
    _, holdout = split_holdout(len(images), FLAGS.holdout)
    if not len(holdout):
        sys.exit("error: --holdout %g of %d images holds out none; raise --holdout or add images"
                 % (FLAGS.holdout, len(images)))
    position = checkpoint_position(dcgan)
    figures = dcgan.evaluate(images[holdout[:FLAGS.eval_samples]])
    with tf.summary.FileWriter(FLAGS.logs_dir) as writer:
        # A checkpoint saved at an epoch's end already points at the next epoch.
        log_metrics(writer, FLAGS.logs_dir, position.epoch - (position.batch == 0),
                    position.step, figures)


def export_model(dcgan, shape):
    """--export DIR: the loaded model's weights (no Adam state, G on its moving average where it
    has one) as DIR/DCGAN.model-step with its model.json, a folder --checkpoint_dir can use."""
    if checkpoint_paths(FLAGS.export, DCGAN.model_name):
        sys.exit("error: --export %s already holds a model; choose an empty folder"
                 % FLAGS.export)
    position = checkpoint_position(dcgan)
    os.makedirs(FLAGS.export, exist_ok=True)
    record_settings(FLAGS.export, DCGAN.model_name, shape)
    print(" [*] exported %s" % dcgan.save(FLAGS.export, position.step))


def write_samples(dcgan, rng):
    """--train=False: a grid of --n_samples images (or a latent walk), optionally one file each."""
    rows, cols = grid_shape(FLAGS.n_samples)
    if FLAGS.interpolate:
        # Each row walks in a straight line from one random z to another.
        ends = rng.uniform(-1, 1, [2, rows, 1, dcgan.z_dim])
        steps = np.linspace(0, 1, cols)[None, :, None]
        z = ((1 - steps) * ends[0] + steps * ends[1]).reshape(rows * cols, dcgan.z_dim)
    else:
        z = rng.uniform(-1, 1, [FLAGS.n_samples, dcgan.z_dim])
    images = dcgan.generate(z)
    os.makedirs(FLAGS.generated_dir, exist_ok=True)
    name = "interpolation.png" if FLAGS.interpolate else "samples.png"
    print(" [*] wrote %s" % save_images(images, (rows, cols), os.path.join(FLAGS.generated_dir, name)))
    if FLAGS.save_single:
        for i, image in enumerate(images):
            save_images(image[None], (1, 1), os.path.join(FLAGS.generated_dir, "sample_%04d.png" % i))
        print(" [*] and %d single images in %s" % (len(images), FLAGS.generated_dir))


def main(_):
    # One progress line at a time, also when stdout is a pipe or a cluster job's log file.
    sys.stdout.reconfigure(line_buffering=True)
    # Our own lines say what is restored and saved; --verbose: TensorFlow's too.
    tf.logging.set_verbosity(tf.logging.INFO if FLAGS.verbose else tf.logging.ERROR)
    # Here, not at import: importing the trainer or asking for --help probes no device.
    device, warning = choose_device(FLAGS.device)
    if warning:
        print(warning, file=sys.stderr)
    machine = {"bf16": bf16_wins(), "fused_bn": fused_batch_norm_wins()}
    config = run_config(machine)
    if FLAGS.complete or FLAGS.turing_quiz or FLAGS.evaluate or not FLAGS.train:
        use_trained_model(config)
    else:
        train(config, machine, device, mixed_precision_plan(FLAGS.mixed_precision, gpu_visible()))


if __name__ == "__main__":
    # absl's runner (what the post's tf.app.run wraps); a bad flag is one `error:` line.
    app.run(main, flags_parser=parse_flags)
