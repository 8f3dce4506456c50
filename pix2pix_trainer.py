#!/usr/bin/env python3
"""Train pix2pix from the command line: front view in, side view out (the pix2pix stage beside
"Generative Adversarial Network (GAN) in TensorFlow"; the model is in extras/model/pix2pix.py).

    ./pix2pix_trainer.py --dataset demo --image_size 64 --epoch 5   # built-in paired faces
    ./pix2pix_trainer.py --dataset ~/facades --direction BtoA        # side-by-side A|B images
    tensorboard --logdir logs_pix2pix

and translate images with the trained model:

    ./pix2pix_trainer.py --train=False --input photos/ --out_dir translated

Every setting is a flag, with a one-line help ending in its default (`--help` lists them); those
gantut_trainer.py has too are defined in extras/run/flags.py. What the helps leave out:
- --dataset is either a folder of side-by-side images (input | target, each twice as wide as
  high, as the public pix2pix data sets come) or a folder with front/ and side/ sub-folders
  whose images pair up by name; `demo` draws faces from the front and in profile on first use.
- The U-Net has one level per halving of --image_size down to 1x1; --dense_layers (dense +
  leaky ReLU at that 1x1 bottleneck) let parts move around: the mugshots post used 5.
- --flip_side is for data sets whose profiles face left, as the mugshots post's did (the
  demo's face right). --jitter scales up 286/256, crops back at a random place and mirrors half
  the pairs, both images of a pair alike; the mirror turns profiles round, so leave it off for
  front-to-side data.
- --test_split holds out the same pairs on every run: the epoch's L1 (test_l1 in TensorBoard)
  and the sample rows come from them.
- --input is searched recursively; each image is written under the same relative name, as PNG.
Outputs: `logs_pix2pix/` (TensorBoard), `checkpoint_pix2pix/` (weights, training position and
the pair cache), `samples_pix2pix/` (rows of input | generated | target). Running the same
command again resumes where the last run stopped; Ctrl-C or SIGTERM saves a checkpoint first.
"""
import extras.machine.tfenv  # first: TensorFlow's log level is read when it loads (see the module)

import os
import sys

import tensorflow.compat.v1 as tf
from absl import app

from extras.machine.device import choose_device, gpu_visible
from extras.data.dataset import DatasetError, split_holdout
from extras.run.flags import define, define_shared, machine_values
from gantut_imgfuncs import center_crop, imread, save_images, transform
from extras.model.pix2pix import (MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, UNREADABLE, Pix2Pix, load_pairs,
                            receptive_field, valid_image_size)
from extras.model.precision import mixed_precision_plan
from extras.machine.cpu import bf16_wins
from extras.machine.session import new_session
from extras.run.checkpoints import record_settings, saved_settings
from extras.run.flags import parse_flags
from extras.run.training import training_folders
from extras.utils import error_line
from extras.utils import Progress, image_files, node_line

flags = tf.app.flags
flags.DEFINE_string("dataset", "demo",
                    "Folder of pairs, side by side or in front/ and side/; or 'demo' [demo]")
flags.DEFINE_enum("direction", "AtoB", ["AtoB", "BtoA"],
                  "AtoB: left half (or front/) to right half (or side/); BtoA the other way [AtoB]")
define(flags.DEFINE_integer, "image_size", 256,
       "Image height and width: a power of two from %d to %d [256]"
       % (MIN_IMAGE_SIZE, MAX_IMAGE_SIZE), check=valid_image_size,
       message="must be a power of two from %d to %d (16, 32, 64, 128, 256, ...)"
               % (MIN_IMAGE_SIZE, MAX_IMAGE_SIZE))
define(flags.DEFINE_integer, "dense_layers", 0, "Dense layers at G's 1x1 bottleneck [0]",
       at_least=0)
define(flags.DEFINE_float, "l1_lambda", 100.0, "Weight of the L1 distance in G's loss [100]",
       at_least=0)
define(flags.DEFINE_float, "learning_rate", 0.0002, "Learning rate of Adam [0.0002]", above=0)
define(flags.DEFINE_float, "beta1", 0.5, "Momentum term (beta1) of Adam [0.5]", fraction=True)
define(flags.DEFINE_integer, "epoch", 20, "Epochs to train [20]", at_least=1)
define(flags.DEFINE_integer, "batch_size", 1, "Pairs per batch; pix2pix used 1 [1]", at_least=1)
flags.DEFINE_boolean("flip_side", False, "Mirror every side image left-right [False]")
flags.DEFINE_boolean("jitter", False, "pix2pix's random jitter: scale, crop, mirror [False]")
define(flags.DEFINE_float, "test_split", 0.2, "Share of the pairs kept out of training [0.2]",
       fraction=True)
define(flags.DEFINE_integer, "eval_pairs", 200,
       "Test pairs whose L1 is measured after each epoch, at most [200]", at_least=1)
define(flags.DEFINE_integer, "demo_pairs", 3000, "How many pairs --dataset demo draws [3000]",
       at_least=2)
flags.DEFINE_string("checkpoint_dir", "checkpoint_pix2pix",
                    "Folder for checkpoints and the decoded-pair cache [checkpoint_pix2pix]")
flags.DEFINE_string("sample_dir", "samples_pix2pix",
                    "Folder for rows of input | generated | target [samples_pix2pix]")
define(flags.DEFINE_integer, "sample_count", 4, "Test pairs shown in the sample rows [4]",
       at_least=1)
# Those gantut_trainer.py has too.
define_shared(logs_dir="logs_pix2pix", sample_freq=500, ckpt_freq=1000, summary_freq=20,
              max_to_keep=5)
# Using the trained model.
flags.DEFINE_boolean("train", True, "Train; --train=False translates --input [True]")
flags.DEFINE_string("input", None, "With --train=False: image file or folder to translate [none]")
flags.DEFINE_string("out_dir", "translated",
                    "With --train=False: folder for the translated images [translated]")
FLAGS = flags.FLAGS


def dataset_folder():
    """The folder of pairs: --dataset, or the demo pairs, drawn on first use (pix2pix stage)."""
    if FLAGS.dataset != "demo":
        return os.path.expanduser(FLAGS.dataset)
    from demo_faces import make_demo_pairs
    folder = os.path.join("data", "demo_pairs_%dpx" % FLAGS.image_size)
    return make_demo_pairs(folder, n_pairs=FLAGS.demo_pairs, size=FLAGS.image_size,
                           seed=0 if FLAGS.seed is None else FLAGS.seed)


def load_training_pairs(settings):
    """Decode (or load the cache of) the pairs; stop with a clear message if too few remain for
    one batch (pix2pix stage). Runs before any graph is built."""
    folder = dataset_folder()
    try:
        pairs = load_pairs(folder, settings["image_size"], settings["c_dim"],
                           cache_dir=FLAGS.checkpoint_dir, workers=FLAGS.threads)
    except DatasetError as err:
        sys.exit("error: %s" % err)
    train_rows, test_rows = split_holdout(len(pairs), FLAGS.test_split)
    if len(train_rows) < FLAGS.batch_size:
        sys.exit("error: dataset folder %s has %d usable pair(s), %d of them for training after "
                 "--test_split %g: fewer than --batch_size %d. Add pairs, or lower --batch_size "
                 "or --test_split." % (folder, len(pairs), len(train_rows), FLAGS.test_split,
                                       FLAGS.batch_size))
    print(" [*] %d pairs from %s: %d to train on, %d for testing"
          % (len(pairs), folder, len(train_rows), len(test_rows)))
    return pairs


def flag_settings():
    """The model settings the flags ask for (pix2pix stage)."""
    return {name: FLAGS[name].value for name in Pix2Pix.shape_flags}


def build_model(sess, settings, loss_scale=None):
    """The Pix2Pix graph for `settings`, the flags of its losses and `loss_scale` (pix2pix
    stage)."""
    shape = {name: settings[name] for name in ("image_size", "c_dim", "gf_dim", "df_dim",
                                               "dense_layers")}
    model = Pix2Pix(sess, l1_lambda=FLAGS.l1_lambda, learning_rate=FLAGS.learning_rate,
                    beta1=FLAGS.beta1, loss_scale=loss_scale, **shape)
    field = receptive_field(model.patch_layers)
    print(" [*] pix2pix at %d px: a U-Net of %d levels, %d dense layer(s) at its bottleneck; "
          "D judges %dx%d patches" % (model.image_size, len(model.sizes), model.dense_layers,
                                      field, field))
    return model


def train(bf16, device, mixed):
    """Create the output folders, load the pairs, build pix2pix and train it (pix2pix stage);
    `bf16`: --bf16 or this machine's choice; `device`: the line naming the device; `mixed`:
    what --mixed_precision does here."""
    with training_folders(FLAGS.checkpoint_dir, FLAGS.sample_dir, FLAGS.logs_dir):
        settings = flag_settings()
        pairs = load_training_pairs(settings)
        # After the data check, so a bad --dataset is told in one line.
        print(node_line(FLAGS.threads))
        print(device)
        print(" [*] precision: bfloat16 %s, %s" % ("on" if bf16 else "off", mixed.words))
        record_settings(FLAGS.checkpoint_dir, Pix2Pix.model_name, settings)
        with new_session(FLAGS.threads, bf16, FLAGS.seed, mixed.float16) as sess:
            build_model(sess, settings, mixed.loss_scale).train(FLAGS, pairs)


def input_files():
    """(path, output name) of every image --input names: one file, or a folder's images
    (pix2pix stage)."""
    if not FLAGS.input:
        sys.exit("error: --train=False needs --input, an image file or a folder of them to "
                 "translate.")
    source = os.path.expanduser(FLAGS.input)
    if os.path.isfile(source):
        return [(source, os.path.splitext(os.path.basename(source))[0] + ".png")]
    if not os.path.isdir(source):
        sys.exit("error: --input %s does not exist. Point it at an image file or a folder of "
                 ".png/.jpg images." % source)
    found = [(os.path.join(source, name), os.path.splitext(name)[0] + ".png")
             for name in image_files(source, skip_dir=FLAGS.out_dir)]
    if not found:
        sys.exit("error: --input folder %s holds no .png/.jpg/.jpeg images." % source)
    return found


def read_input(path, settings):
    """One input image as the model sees it, in [-1, 1]; None if unreadable (pix2pix stage).

    A side image is mirrored when the model was trained with --flip_side and BtoA.
    """
    try:
        pixels = imread(path, settings["c_dim"])
    except UNREADABLE as err:
        print("warning: skipping %s: unreadable (%s)" % (path, error_line(err)), file=sys.stderr)
        return None
    pixels = center_crop(pixels, min(pixels.shape[:2]), resize_w=settings["image_size"])
    if settings["flip_side"] and settings["direction"] == "BtoA":
        pixels = pixels[:, ::-1]
    return transform(pixels, is_crop=False)


def translate(bf16):
    """--train=False: translate every --input image with the newest checkpoint, bfloat16 as
    `bf16` says (pix2pix stage).

    The model's settings come from model.json beside the checkpoints. Unreadable files are
    skipped and counted; each output appears whole or not at all.
    """
    settings = saved_settings(FLAGS.checkpoint_dir, flag_settings())
    files = input_files()
    with new_session(FLAGS.threads, bf16) as sess:
        model = build_model(sess, settings)
        sess.run(tf.global_variables_initializer())
        if not model.load(FLAGS.checkpoint_dir):
            sys.exit("error: no pix2pix checkpoint in %s. Train first with ./pix2pix_trainer.py "
                     "--dataset ..., or point --checkpoint_dir at a training run's checkpoint "
                     "folder." % FLAGS.checkpoint_dir)
        skipped = 0
        progress = Progress("translating", len(files))
        for path, name in files:
            pixels = read_input(path, settings)
            if pixels is None:
                skipped += 1
            else:
                out = os.path.join(FLAGS.out_dir, name)
                os.makedirs(os.path.dirname(out), exist_ok=True)
                save_images(model.translate(pixels[None]), (1, 1), out)
            progress.advance()
    print(" [*] translated %d image(s) into %s%s" % (
        len(files) - skipped, FLAGS.out_dir,
        "; %d unreadable file(s) skipped" % skipped if skipped else ""))


def main(_):
    # One progress line at a time, also when stdout is a pipe or a cluster job's log file.
    sys.stdout.reconfigure(line_buffering=True)
    # Our own lines say what is restored and saved; --verbose: TensorFlow's too.
    tf.logging.set_verbosity(tf.logging.INFO if FLAGS.verbose else tf.logging.ERROR)
    # Here, not at import: importing the trainer or asking for --help probes no device.
    device, warning = choose_device(FLAGS.device)
    if warning:
        print(warning, file=sys.stderr)
    bf16 = machine_values(FLAGS, bf16=bf16_wins())["bf16"]
    if FLAGS.train:
        train(bf16, device, mixed_precision_plan(FLAGS.mixed_precision, gpu_visible()))
    else:
        translate(bf16)


if __name__ == "__main__":
    # absl's runner (what the post's tf.app.run wraps); a bad flag is one `error:` line.
    app.run(main, flags_parser=parse_flags)
