"""The pix2pix stage: a face seen from the front turned into the same face seen from the side,
in the TF1 style of "Generative Adversarial Network (GAN) in TensorFlow".

pix2pix (Isola et al. 2017, "Image-to-Image Translation with Conditional Adversarial
Networks") is a conditional GAN on paired images. The generator G sees an input image x (the
front view) instead of noise and must draw the target y (the side view); the discriminator D
sees x beside either y or G(x) and says, for every patch, whether the pair is real:

    G* = arg min_G max_D  E[log D(x, y)] + E[log(1 - D(x, G(x)))] + lambda * E[|y - G(x)|_1]

The L1 term gets the colours and the layout right; the GAN term makes the result sharp.

G is a U-Net: an encoder of 4x4 stride-2 convolutions halves the image down to 1x1, a decoder
of transposed convolutions doubles it back, and every encoder level is concatenated onto the
decoder level of its size, so details need not squeeze through the 1x1 bottleneck. The
"mugshots" project (2019) put dense layers at the bottleneck "to allow parts to move around"
(a profile puts the nose where the front view had a cheek); `dense_layers` adds them.
D is a PatchGAN: a few 4x4 convolutions whose every output judges one patch, 70x70 at 256 px.

The layer ops, the uint8 cache, the run machinery and the image helpers are those of the DCGAN
stage (gantut_datafuncs, extras.data.dataset, extras.run, gantut_imgfuncs). Pairs live in ONE
cache array, N x size x size x 2*c_dim, the input and target images concatenated on the channel
axis (the post kept them in an HDF5 file to avoid running out of memory; the memory-mapped cache
does that).
"""
import extras.machine.tfenv  # noqa: F401  (first: TensorFlow then loads without Keras; see it)

import os
import sys

import numpy as np
import tensorflow.compat.v1 as tf
from PIL import Image

from gantut_datafuncs import (batch_norm, conv2d, conv2d_transpose, has_prefix, linear, lrelu,
                              sigmoid_loss)
from gantut_gan import inference_tower, width_multiple
from gantut_imgfuncs import center_crop, imread, transform
from extras.data.dataset import (DatasetError, augment_images, cached_rows, dataset_fingerprint,
                                 epoch_batches, prefetch, split_holdout)
from extras.model.adam import Adam
from extras.model.precision import loss_scaled
from extras.run.checkpoints import (WeightSnapshot, load_model, new_saver, position_variable,
                                    save_model, training_state)
from extras.run.training import TrainingRun, save_sample_grid
from extras.utils import error_line, image_files

# Dropout rate of the first decoder layers while training: pix2pix's only source of noise.
DROPOUT_RATE = 0.5
DROPOUT_LAYERS = 3
# --jitter scales up by 286/256, as pix2pix did at 256 px, before cropping back.
JITTER_SCALE = 286 / 256
# The sizes the U-Net halves down to 1x1: powers of two.
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 16, 1024
# What --dataset may hold, for every message about a folder that holds no pairs.
LAYOUT_HELP = ("Expected either side-by-side images, input | target, each twice as wide as it "
               "is high (the layout of the public pix2pix data sets), or two sub-folders "
               "front/ and side/ whose images pair up by file name (front/x.png with "
               "side/x.png); or use --dataset demo for the built-in cartoon faces.")
# Errors Pillow raises for a file it cannot read, as decode_image handles them.
UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


def valid_image_size(image_size):
    """True for the sizes the U-Net halves down to 1x1: powers of two from 16 (pix2pix stage)."""
    return (MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE
            and (image_size & (image_size - 1)) == 0)


def unet_sizes(image_size):
    """Spatial sizes of the encoder levels: [image_size/2, ..., 2, 1] (pix2pix stage)."""
    sizes = [image_size // 2]
    while sizes[-1] > 1:
        sizes.append(sizes[-1] // 2)
    return sizes


def patch_layers(image_size):
    """Stride-2 layers of the PatchGAN: 3 at 256 px, one fewer per halving, at least 1 (pix2pix
    stage).

    Its patch (receptive field) is then 70x70 at 256, 34x34 at 128 and 16x16 at 64: about a
    quarter of the image side at every size, as pix2pix's 70x70 is at 256.
    """
    return max(1, int(np.log2(image_size)) - 5)


def receptive_field(strided_layers):
    """Side of the patch one PatchGAN output sees: two 4x4 stride-1 layers on top of
    `strided_layers` 4x4 stride-2 ones (pix2pix stage)."""
    field = 1
    for stride in [1, 1] + [2] * strided_layers:
        field = (field - 1) * stride + 4
    return field


class Pix2Pix(object):
    """pix2pix: a U-Net G from input to target image and a PatchGAN D on (input, target) pairs
    (pix2pix stage).

    Build it inside a Session: `Pix2Pix(sess, image_size=256)` builds the graph at once, with
    one training op that updates D and G from the same forward pass (`train_step`). Inputs and
    targets are fed in [-1, 1]; `is_training` switches batch norm between batch statistics and
    moving averages, and dropout on and off.
    """

    model_name = "pix2pix.model"
    # The flags that fix the model's variables or what it has learnt to do; kept in model.json.
    shape_flags = ("image_size", "c_dim", "gf_dim", "df_dim", "dense_layers", "direction",
                   "flip_side")

    def __init__(self, sess, image_size=256, c_dim=3, gf_dim=64, df_dim=64, dense_layers=0,
                 l1_lambda=100.0, learning_rate=0.0002, beta1=0.5, loss_scale=None):
        if not valid_image_size(image_size):
            raise ValueError("image_size must be a power of two from %d to %d, not %r"
                             % (MIN_IMAGE_SIZE, MAX_IMAGE_SIZE, image_size))
        if c_dim not in (1, 3):
            raise ValueError("c_dim must be 1 (grayscale) or 3 (RGB), not %r" % (c_dim,))
        self.sess = sess
        self.image_size, self.c_dim = image_size, c_dim
        self.gf_dim, self.df_dim = gf_dim, df_dim
        self.dense_layers, self.l1_lambda = dense_layers, l1_lambda
        self.loss_scale = loss_scale
        self.sizes = unet_sizes(image_size)
        # Batch norm on every encoder level but the first (as pix2pix) and the 1x1 bottleneck:
        # at batch size 1 its batch statistics are its own value, which would normalise the
        # bottleneck to a constant (pix2pix's Torch code leaves it out there too).
        self.e_bns = [None] + [batch_norm(name="g_bn_e%d" % i)
                               for i in range(1, len(self.sizes) - 1)] + [None]
        self.d_bns = [batch_norm(name="g_bn_d%d" % i) for i in range(len(self.sizes) - 1)]
        self.patch_layers = patch_layers(image_size)
        self.disc_bns = [None] + [batch_norm(name="d_bn%d" % i)
                                  for i in range(1, self.patch_layers + 1)]
        self.build_model(learning_rate, beta1)

    # ------------------------------------------------------------------------------------------
    # The graph
    # ------------------------------------------------------------------------------------------

    def build_model(self, learning_rate, beta1):
        """Placeholders, G, D on real and fake pairs, the losses, summaries and the training op
        (pix2pix stage)."""
        shape = [None, self.image_size, self.image_size, self.c_dim]
        with tf.name_scope("inputs"):
            self.is_training = tf.placeholder(tf.bool, [], name="is_training")
            self.inputs = tf.placeholder(tf.float32, shape, name="inputs")
            self.targets = tf.placeholder(tf.float32, shape, name="targets")
            # Dropout follows is_training, so inference can never run with it by mistake.
            self.dropout_rate = tf.where_v2(self.is_training, DROPOUT_RATE, 0.0)

        self.G = self.generator(self.inputs)
        self.real_logits = self.discriminator(self.inputs, self.targets)
        self.fake_logits = self.discriminator(self.inputs, self.G, reuse=True)

        with tf.name_scope("losses"):
            # D's objective is halved, as in the paper, to slow D down relative to G.
            self.disc_loss = tf.multiply(
                0.5, sigmoid_loss(self.real_logits, 1.0, "d_loss_real")
                + sigmoid_loss(self.fake_logits, 0.0, "d_loss_fake"), name="disc_loss")
            self.gen_gan_loss = sigmoid_loss(self.fake_logits, 1.0, "gen_gan_loss")
            self.gen_l1_loss = tf.reduce_mean(tf.abs(self.targets - self.G), name="gen_l1_loss")
            self.gen_total_loss = tf.add(self.gen_gan_loss, self.l1_lambda * self.gen_l1_loss,
                                         name="gen_total_loss")
        self.losses = {name: getattr(self, name) for name in
                       ("disc_loss", "gen_gan_loss", "gen_l1_loss", "gen_total_loss")}
        # No name scope, so TensorBoard shows the tags as named.
        self.summaries = tf.summary.merge([tf.summary.scalar(name, loss)
                                           for name, loss in self.losses.items()])
        self.train_op = self.optimizer(learning_rate, beta1)
        # Made by train, so that checkpoints keep Adam's state; a model used without training
        # makes one of its weights (extras.run.checkpoints.model_saver).
        self.saver = None

    def generator(self, image):
        """G: the U-Net from input image to target image in [-1, 1] (pix2pix stage)."""
        with tf.variable_scope("generator"):
            levels = self.encoder(image)
            self.bottleneck = self.dense_bottleneck(levels[-1])
            return self.decoder(self.bottleneck, levels[:-1])

    def encoder(self, image):
        """The encoder levels, image_size/2 down to 1x1: 4x4 stride-2 conv -> batch norm ->
        leaky ReLU (pix2pix stage).

        pix2pix passes each level on before its activation and puts the activation in front of
        the next layer; the decoder's ReLU makes the two the same (relu(lrelu(x)) = relu(x)),
        and this order lets grappler fuse each conv with its activation.
        """
        s, gf = self.image_size, self.gf_dim
        levels, h = [], image
        # state size. c_dim x s x s
        for i, size in enumerate(self.sizes):
            h = conv2d(h, gf * width_multiple(s, size), k_h=4, k_w=4, name="g_e%d_conv" % i)
            if self.e_bns[i] is not None:
                h = self.e_bns[i](h, self.is_training)
            h = lrelu(h)
            # state size. gf_dim x s/2 x s/2, (gf_dim*2) x s/4 x s/4, (gf_dim*4) x s/8 x s/8,
            # then (gf_dim*8) x s/16 x s/16 ... down to (gf_dim*8) x 1 x 1
            levels.append(h)
        return levels

    def dense_bottleneck(self, h):
        """`dense_layers` fully connected layers, each with a leaky ReLU, on the 1x1 bottleneck,
        as the mugshots post added them to let parts move around (pix2pix stage)."""
        channels = int(h.shape[-1])
        if not self.dense_layers:
            return h
        h = tf.reshape(h, [-1, channels])
        for i in range(self.dense_layers):
            h = lrelu(linear(h, channels, "g_dense%d" % i))
            # state size. (gf_dim*8)
        return tf.reshape(h, [-1, 1, 1, channels])

    def decoder(self, h, levels):
        """The decoder: relu -> 4x4 stride-2 transposed conv -> batch norm -> dropout (first
        three layers) from 1x1 back up to the image, each level's input concatenated with the
        encoder level of its size (pix2pix stage). The skips are `self.skips`, deepest first.
        """
        s, gf = self.image_size, self.gf_dim
        self.skips = []
        for j, size in enumerate([2 * size for size in reversed(self.sizes)]):
            if j:
                # An identity per skip, so that a test can feed what one skip carries.
                skip = tf.identity(levels[-j], name="g_skip%d" % (len(levels) - j))
                self.skips.append(skip)
                h = tf.concat([h, skip], axis=3)
            last = size == s
            channels = self.c_dim if last else gf * width_multiple(s, size)
            h = conv2d_transpose(tf.nn.relu(h), [None, size, size, channels], k_h=4, k_w=4,
                                 name="g_d%d_deconv" % j)
            if last:
                # state size. c_dim x s x s
                return tf.nn.tanh(h)
            h = self.d_bns[j](h, self.is_training)
            if j < DROPOUT_LAYERS:
                h = tf.nn.dropout(h, rate=self.dropout_rate)
            # state size. (gf_dim*8) x 2 x 2, (gf_dim*8) x 4 x 4 ... (gf_dim*2) x s/4 x s/4,
            # gf_dim x s/2 x s/2; concatenated with its skip, twice the channels

    def discriminator(self, inputs, targets, reuse=False):
        """D: the PatchGAN, one logit per patch of the input and target images side by side on
        the channel axis (pix2pix stage)."""
        df = self.df_dim
        with tf.variable_scope("discriminator", reuse=reuse):
            h = tf.concat([inputs, targets], axis=3)
            # state size. (c_dim*2) x s x s
            for i in range(self.patch_layers + 1):
                stride = 2 if i < self.patch_layers else 1
                h = conv2d(h, df * min(8, 2 ** i), k_h=4, k_w=4, d_h=stride, d_w=stride,
                           name="d_h%d_conv" % i)
                if self.disc_bns[i] is not None:
                    h = self.disc_bns[i](h, self.is_training)
                h = lrelu(h)
                # state size. df_dim x s/2 x s/2, (df_dim*2) x s/4 x s/4, (df_dim*4) x s/8 x s/8,
                # then (df_dim*8) x s/8 x s/8 at stride 1 (at 256 px)
            logits = conv2d(h, 1, k_h=4, k_w=4, d_h=1, d_w=1,
                            name="d_h%d_conv" % (self.patch_layers + 1))
            # state size. 1 x s/8 x s/8 at 256 px: one logit per 70x70 patch
            return logits

    def optimizer(self, learning_rate, beta1):
        """One op that updates D and G with Adam, each running its own batch-norm updates and,
        with `loss_scale` (DynamicLossScale's arguments), dynamic loss scaling (pix2pix stage).

        Both updates use the one forward pass of the step (pix2pix trains D and G once each
        per image), which saves a second run of G and D. Also makes the training position
        (`position`).
        """
        t_vars = tf.trainable_variables()
        self.d_vars = [var for var in t_vars if has_prefix(var, "d_")]
        self.g_vars = [var for var in t_vars if has_prefix(var, "g_")]
        with tf.name_scope("optimizers"), training_state():
            self.position = position_variable()
            d_updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS, scope="discriminator")
            g_updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS, scope="generator")
            d_adam, g_adam = loss_scaled(
                [(Adam(learning_rate, beta1=beta1, name="d_adam"), self.d_vars),
                 (Adam(learning_rate, beta1=beta1, name="g_adam"), self.g_vars)],
                self.loss_scale)
            with tf.control_dependencies(d_updates):
                d_optim = d_adam.minimize(self.disc_loss, var_list=self.d_vars)
            with tf.control_dependencies(g_updates):
                g_optim = g_adam.minimize(self.gen_total_loss, var_list=self.g_vars)
            return tf.group(d_optim, g_optim, name="train_op")

    # ------------------------------------------------------------------------------------------
    # Training and use
    # ------------------------------------------------------------------------------------------

    def train_step(self, inputs, targets, writer=None, summary_step=None):
        """Update D and G once on a batch; return the losses as a dict of floats (pix2pix stage).

        With a `summary_step`, the same run also writes the TensorBoard scalars at that step.
        """
        fetches = {"train": self.train_op, "losses": self.losses}
        if summary_step is not None:
            fetches["summary"] = self.summaries
        results = self.sess.run(fetches, {self.inputs: inputs, self.targets: targets,
                                          self.is_training: True})
        if summary_step is not None:
            writer.add_summary(results["summary"], summary_step)
        return {name: float(value) for name, value in results["losses"].items()}

    def translate(self, inputs, chunk=16, generator=None):
        """G(inputs) in [-1, 1], in inference mode (no dropout, batch-norm moving averages), so
        the same input always gives the same output (pix2pix stage); `generator`: another
        tower of G (inference_generator), on other weights."""
        return np.concatenate([
            self.sess.run(self.G if generator is None else generator,
                          {self.inputs: inputs[start:start + chunk], self.is_training: False})
            for start in range(0, len(inputs), chunk)])

    def inference_generator(self, custom_getter):
        """G on the variables `custom_getter` gives, for inference only (pix2pix stage; see
        gantut_gan.inference_tower); the model's own bottleneck and skips stay G's."""
        kept = self.bottleneck, self.skips
        tower = inference_tower(lambda: self.generator(self.inputs), custom_getter)
        self.bottleneck, self.skips = kept
        return tower

    def mean_l1(self, inputs, targets, generator=None):
        """Mean absolute difference of G(inputs) and `targets`, in [0, 1] pixel units (pix2pix
        stage); `generator` as translate's."""
        return float(np.abs(self.translate(inputs, generator=generator) - targets).mean() / 2)

    def pairs_l1(self, pairs, rows, config, chunk=64, generator=None):
        """mean_l1 over the uint8 `pairs` of `rows`, oriented by the flags in `config` and read
        from the cache a chunk at a time, so a large test split never sits in memory (pix2pix
        stage); `generator` as translate's."""
        chunks = [rows[start:start + chunk] for start in range(0, len(rows), chunk)]
        return sum(self.mean_l1(*pair_views(pairs[part], config), generator=generator)
                   * len(part) for part in chunks) / len(rows)

    def train(self, config, pairs):
        """Train on the uint8 pair cache `pairs` with the trainer's flags `config` (pix2pix
        stage).

        `config` carries epoch, batch_size, c_dim, direction, flip_side, jitter, test_split,
        eval_pairs, sample_count, sample_dir, checkpoint_dir, logs_dir, sample_freq, ckpt_freq,
        summary_freq, max_to_keep, seed and learning_rate. Ctrl-C or SIGTERM saves a checkpoint
        after the step under way and returns; a later call with the same folders resumes.
        """
        train_rows, test_rows = split_holdout(len(pairs), config.test_split)
        eval_rows = test_rows[:config.eval_pairs]
        shown = test_rows if len(test_rows) else train_rows
        sample_pairs = pair_views(pairs[shown[:config.sample_count]], config)
        self.saver = new_saver(config.max_to_keep)
        # The grids and the test pairs' L1 are computed by the run's thread from a snapshot of
        # G's weights at their step, while training goes on.
        snapshot = WeightSnapshot("sample_snapshot")
        snapshot_g = self.inference_generator(snapshot.getter())
        run = TrainingRun(self, config, len(train_rows) // config.batch_size, config.batch_size)

        def batches(epoch, first):
            return feed_pairs(pairs, train_rows, config, run.start.data_seed, epoch, first)

        def sample_later(name):
            snapshot.take(self.sess, run.writes, self.sample, config.sample_dir, name,
                          sample_pairs, snapshot_g)

        def end_epoch(epoch, step):
            sample_later("epoch_%02d.png" % epoch)
            if len(eval_rows):
                snapshot.read_later(run.writes, self.log_test_l1, run.writer, pairs, eval_rows,
                                    config, epoch, step, snapshot_g)

        with run:
            for step, epoch, idx, (inputs, targets) in run.steps(batches, end_epoch):
                losses = self.train_step(inputs, targets, run.writer, step
                                         if step % config.summary_freq == 0 else None)
                run.record(step, epoch, idx, losses)
                if step % config.sample_freq == 0:
                    sample_later("train_%02d-%04d.png" % (epoch, idx))

    def save(self, checkpoint_dir, step):
        """Save the model's variables as checkpoint_dir/pix2pix.model-step; return its path
        (pix2pix stage; as DCGAN.save)."""
        return save_model(self, checkpoint_dir, step)

    def load(self, checkpoint_dir):
        """Restore the newest complete checkpoint; return whether one was found (pix2pix
        stage; as DCGAN.load)."""
        return load_model(self, checkpoint_dir) is not None

    def log_test_l1(self, writer, pairs, rows, config, epoch, step, generator=None):
        """The L1 on the test pairs `rows` at an epoch's end, printed and in TensorBoard as
        test_l1 (pix2pix stage); `generator` as translate's."""
        l1 = self.pairs_l1(pairs, rows, config, generator=generator)
        # One write, so that no line of the training loop's lands inside it.
        sys.stdout.write(" [*] epoch %d: L1 on %d test pairs %.4f (pixels in [0, 1])\n"
                         % (epoch, len(rows), l1))
        writer.add_summary(tf.Summary(value=[tf.Summary.Value(tag="test_l1", simple_value=l1)]),
                           step)
        writer.flush()

    def sample(self, sample_dir, name, sample_pairs, generator=None):
        """Write the fixed sample pairs as rows of input | generated | target (pix2pix stage);
        `generator`: another tower of G, as translate's."""
        inputs, targets = sample_pairs
        path = save_sample_grid(sample_rows(inputs, self.translate(inputs, generator=generator),
                                            targets), (len(inputs), 3), sample_dir, name)
        # One write, so that no line of the training loop's lands inside it.
        sys.stdout.write("[Sample] %s\n" % path)


def sample_rows(inputs, generated, targets):
    """The images of a grid whose rows are input | generated | target (pix2pix stage)."""
    return np.stack([inputs, generated, targets], axis=1).reshape((-1,) + inputs.shape[1:])


# ----------------------------------------------------------------------------------------------
# Paired data
# ----------------------------------------------------------------------------------------------

def find_pairs(root):
    """The pairs of folder `root`: ({name: (first file, second file or None)}, unpaired notes)
    (pix2pix stage).

    With sub-folders front/ and side/, front/NAME.* pairs with side/NAME.* (extensions may
    differ); a file without a partner is listed in the notes. Otherwise every image is one
    side-by-side pair, its second file None.
    """
    folders = [os.path.join(root, view) for view in ("front", "side")]
    if not all(os.path.isdir(folder) for folder in folders):
        return {name: (os.path.join(root, name), None) for name in image_files(root)}, []
    by_stem = [{os.path.splitext(name)[0]: os.path.join(folder, name)
                for name in image_files(folder)} for folder in folders]
    sources, unpaired = {}, []
    for stem in sorted(set(by_stem[0]) | set(by_stem[1])):
        paths = [files.get(stem) for files in by_stem]
        if None in paths:
            have, lack = ("front", "side") if paths[1] is None else ("side", "front")
            unpaired.append("%s: no %s/%s.* to pair it with"
                            % (os.path.relpath(paths[0] or paths[1], root), lack, stem))
        else:
            sources[stem] = tuple(paths)
    return sources, unpaired


def decode_pair(paths, image_size, c_dim):
    """One pair as an image_size square uint8 array of 2*c_dim channels, first image first;
    or (None, reason) (pix2pix stage).

    A side-by-side file is cut in half down the middle; each image is centre-cropped square and
    resized to image_size, as --is_crop does in the DCGAN stage.
    """
    images = []
    for path in paths:
        try:
            if path is not None:
                images.append(imread(path, c_dim))
        except UNREADABLE as err:
            return None, "%s is unreadable (%s)" % (path, error_line(err))
    if len(images) == 1:
        height, width = images[0].shape[:2]
        if width != 2 * height:
            return None, ("is %dx%d, not a side-by-side pair (it must be twice as wide as it "
                          "is high)" % (width, height))
        images = [images[0][:, :height], images[0][:, height:]]
    elif images[0].shape != images[1].shape:
        return None, "front is %dx%d but side is %dx%d" % (images[0].shape[1], images[0].shape[0],
                                                           images[1].shape[1], images[1].shape[0])
    squares = [center_crop(image, min(image.shape[:2]), resize_w=image_size) for image in images]
    return np.concatenate(squares, axis=2).astype(np.uint8), None


def load_pairs(root, image_size, c_dim=3, cache_dir=None, workers=1):
    """The pairs of folder `root` as an N x size x size x 2*c_dim uint8 array (pix2pix stage).

    Decoded once into the same cache as the DCGAN's images (memory-mapped on later runs, so a
    set larger than RAM still trains), rebuilt when the folder's files change. Unpaired,
    unreadable and mismatched files are skipped, counted and listed by name on stderr.
    Raises DatasetError, saying which layout is expected, for a folder without pairs.
    """
    if not os.path.isdir(root):
        raise DatasetError("dataset folder %s does not exist. %s" % (root, LAYOUT_HELP))
    sources, unpaired = find_pairs(root)
    if not sources:
        raise DatasetError("dataset folder %s holds no image pairs%s. %s" % (
            root, " (%d unpaired image(s))" % len(unpaired) if unpaired else "", LAYOUT_HELP))
    files = [path for paths in sources.values() for path in paths if path is not None]
    names = sorted(sources)
    # Named like the DCGAN's image cache (with 2*c_dim channels), so one clean-up serves both.
    pairs, skipped, info_path = cached_rows(
        root, cache_dir, dataset_fingerprint(files, image_size, 2 * c_dim, True), names,
        (image_size, image_size, 2 * c_dim),
        lambda name: decode_pair(sources[name], image_size, c_dim), workers, "pairs", unpaired)
    report_skipped(root, skipped, info_path)
    return pairs


def report_skipped(root, skipped, info_path, shown=20):
    """Count the skipped files on stderr and name the first `shown` of them (pix2pix stage)."""
    if not skipped:
        return
    print("%d file(s) in %s skipped, not used as pairs (all listed in %s):"
          % (len(skipped), root, info_path), file=sys.stderr)
    for note in skipped[:shown]:
        print("  " + note, file=sys.stderr)
    if len(skipped) > shown:
        print("  ... and %d more" % (len(skipped) - shown), file=sys.stderr)


def orient(pairs, c_dim, direction, flip_side):
    """uint8 pairs with the model's input image first: `flip_side` mirrors the side (second)
    image, and direction BtoA swaps the two (pix2pix stage)."""
    front, side = pairs[..., :c_dim], pairs[..., c_dim:]
    if flip_side:
        side = side[..., ::-1, :]
    halves = (side, front) if direction == "BtoA" else (front, side)
    return np.concatenate(halves, axis=-1)


def jitter_pairs(pairs, c_dim, rng):
    """pix2pix's random jitter, the same for both images of each pair: mirror with probability
    1/2, scale up 286/256 and crop back at a random offset (pix2pix stage).

    The DCGAN stage's augment_images does the work on each half with the same random draws
    (a copy of `rng`), so both halves get the same flip, scale and crop.
    """
    state = rng.bit_generator.state
    halves = []
    for half in (pairs[..., :c_dim], pairs[..., c_dim:]):
        rng.bit_generator.state = state
        halves.append(augment_images(np.ascontiguousarray(half), rng, JITTER_SCALE))
    return np.concatenate(halves, axis=-1)


def pair_views(pairs, config):
    """(inputs, targets) in [-1, 1] of uint8 pairs, oriented by the flags (pix2pix stage)."""
    pixels = transform(orient(pairs, config.c_dim, config.direction, config.flip_side),
                       is_crop=False)
    return pixels[..., :config.c_dim], pixels[..., config.c_dim:]


def feed_pairs(pairs, rows, config, seed, epoch, start=0):
    """Yield (index, (inputs, targets)) for one epoch's batches from batch `start`, prepared
    ahead in a background thread (pix2pix stage).

    The jitter draws depend only on (seed, epoch, batch), so a resumed run sees the same
    batches.
    """
    def batch_views(index, batch):
        chunk = orient(pairs[batch], config.c_dim, config.direction, config.flip_side)
        if config.jitter:
            chunk = jitter_pairs(chunk, config.c_dim, np.random.default_rng([seed, epoch, index]))
        pixels = transform(chunk, is_crop=False)
        return index, (pixels[..., :config.c_dim], pixels[..., config.c_dim:])
    return prefetch(batch_views(index, batch)
                    for index, batch in epoch_batches(rows, config.batch_size, seed, epoch, start))
