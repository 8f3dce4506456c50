"""The DCGAN class (Part 4 of "Generative Adversarial Network (GAN) in TensorFlow").

A generator G maps noise z to an image; a discriminator D says how likely an image is real.
They play the minimax game of Part 1,

    min_G max_D  V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))],

trained in turns: one D update, then two G updates per batch, so that D's loss does not fall to
zero before G has learnt anything. Graph code is TF1 style through `tf.compat.v1`: placeholders,
variable scopes, `get_variable`, a Session, Adam, Saver and FileWriter.

The layer count follows `image_size`: G starts at 4x4 and doubles up to the image size; D halves
the image down to 4x4. Channel widths are multiples of `gf_dim`/`df_dim`: 8, 4, 2, 1 for 64x64
images, as in the post, capped at 8 for bigger images.
"""
import contextlib
import csv
import glob
import io
import json
import os
import signal
import sys
import time

import numpy as np
import tensorflow.compat.v1 as tf
from tensorflow.core.protobuf import rewriter_config_pb2

from gantut_datafuncs import (batch_norm, conv2d, conv2d_transpose, dataset_files,  # noqa: F401
                              feed_batches, layer_norm, linear, load_dataset, lrelu)
import gantut_metrics
from gantut_imgfuncs import (grid_shape, inverse_transform, plot_losses, save_gif, save_images,
                             to_uint8, transform)
from gantut_utils import (FolderBusy, atomic_path, folder_lock, format_seconds, read_json,
                          remove_stale_temp_files)

# dataset_files is re-exported: the post defined it in this module.
__all__ = ["DCGAN", "dataset_files", "valid_image_size"]

# Beside the checkpoints: the flags that fix the model's variables.
SETTINGS_FILE = "model.json"


# Image sizes the model builds: s x 2^k with a first (G) / last (D) feature map of s x s,
# s in 4..7, so 28, 56 and 112 (the logo walkthrough's sizes) work as well as the posts' 64.
BASE_SIZES = range(4, 8)
MIN_IMAGE_SIZE = 16

# The losses the trainer offers: the posts' GAN loss, or WGAN-GP (Gulrajani et al. 2017).
LOSSES = ("gan", "wgan-gp")
WGAN_GP_SCALARS = ("gradient_penalty", "wasserstein_estimate")


def base_size(image_size):
    """The s of image_size = s x 2^k with s at most 7 (56 -> 7, 64 -> 4, 50 -> 25)."""
    size = image_size
    while size > max(BASE_SIZES) and size % 2 == 0:
        size //= 2
    return size


def valid_image_size(image_size):
    """True for the sizes the model can build (Part 4's check, widened).

    The post's check, a power of two of at least 8, still passes; from 16 on, s x 2^k with s in
    4..7 (16, 20, 24, 28, 32, 40, 48, 56, 64, ...) builds too.
    """
    power_of_two = image_size >= 8 and (image_size & (image_size - 1)) == 0
    return power_of_two or (image_size >= MIN_IMAGE_SIZE and base_size(image_size) in BASE_SIZES)


def image_size_error(image_size):
    """Why `image_size` is refused, with the valid sizes nearest to it."""
    valid = [size for size in range(8, 2 * max(image_size, 8) + 1) if valid_image_size(size)]
    below = [size for size in valid if size < image_size][-1:]
    above = [size for size in valid if size > image_size][:1]
    return ("image_size %d cannot be built: it must be a power of two of at least 8, or s x 2^k "
            "of at least %d with s in 4..7 (16, 28, 32, 48, 56, 64, 112, 128, 224, 256, ...). "
            "Nearest valid: %s" % (image_size, MIN_IMAGE_SIZE,
                                   " or ".join(str(size) for size in below + above)))


def layer_sizes(image_size):
    """Spatial sizes from G's first s x s map up to `image_size`: [4, 8, ..., 64] at 64,
    [7, 14, 28, 56] at 56."""
    sizes = [base_size(image_size)]
    while sizes[-1] < image_size:
        sizes.append(sizes[-1] * 2)
    return sizes


def width_multiple(image_size, size):
    """Channel multiple of gf_dim/df_dim for a feature map of `size` (8, 4, 2, 1 at 64x64)."""
    return min(8, image_size // (2 * size))


class Resumable(object):
    """What every stage's model needs to be stopped and resumed (Part 4; shared with the pix2pix
    stage): the training position in the checkpoint, and save/load/resume.

    A subclass sets `sess`, `model_name` and `settings_text` (the flags that fix its shape, for
    the message when a checkpoint does not fit), calls `build_position()` while building its
    graph, and makes its `saver` after that.
    """

    def build_position(self):
        """The variable holding step, epoch, batch within the epoch and the seed of the epochs'
        shuffles: in the checkpoint, so a resumed run carries on at the same batch of the same
        order."""
        with tf.variable_scope("state"):
            self.counters = tf.get_variable("counters", [4], tf.int64, tf.zeros_initializer(),
                                            trainable=False)
            self.new_counters = tf.placeholder(tf.int64, [4], name="new_counters")
            self.set_counters = tf.assign(self.counters, self.new_counters)

    def resume(self, config):
        """Restore the newest checkpoint, if any; return (step, epoch, batch) to go on from, and
        fix the seed of the epochs' shuffles (from the checkpoint, else --seed, else random)."""
        if self.load(config.checkpoint_dir):
            print(" [*] An existing model was found: carrying on from it")
            step, epoch, batch, self.data_seed = map(int, self.sess.run(self.counters))
        else:
            step, epoch, batch = 0, 0, 0
            self.data_seed = np.random.randint(2**31) if config.seed is None else config.seed
        return step, epoch, batch

    def checkpoint_due(self, stop, config, step, position):
        """Save a checkpoint every --ckpt_freq steps and when a stop was requested; return True
        (after saying how to resume) if training should stop now (Part 5)."""
        if stop.requested or step % config.ckpt_freq == 0:
            self.checkpoint(config, step, position)
        if stop.requested:
            print(" [*] Stopped at step %d; saved a checkpoint in %s. Run the same command "
                  "again to resume." % (step, config.checkpoint_dir))
        return stop.requested

    def checkpoint(self, config, step, position):
        """The checkpoint at (step, epoch, batch) `position` in --checkpoint_dir (Part 4), and
        TensorBoard's pointer to it in --logs_dir (see point_tensorboard_at)."""
        point_tensorboard_at(config.logs_dir, self.save(config.checkpoint_dir, step, position))

    def save(self, checkpoint_dir, step, position=None):
        """Save the variables, and the (step, epoch, batch) `position` if given, to
        `checkpoint_dir` (Part 4); return the checkpoint's path."""
        if position is not None:
            self.sess.run(self.set_counters, {self.new_counters: list(position) + [self.data_seed]})
        return save_checkpoint(self.sess, self.saver, checkpoint_dir, self.model_name, step)

    def load(self, checkpoint_dir):
        """Restore the newest complete checkpoint in `checkpoint_dir`; return whether one was
        found (Part 4). See restore_checkpoint."""
        return restore_checkpoint(self.sess, self.saver, checkpoint_dir, self.model_name,
                                  self.settings_text)


class DCGAN(Resumable):
    """Deep convolutional GAN of the posts (Part 4).

    Build it inside a Session: `DCGAN(sess, image_size=64, batch_size=64, checkpoint_dir=...)`
    builds the graph at once (`build_model`); `train(config)` runs the training loop.
    `lam` weighs the perceptual loss of image completion (Part 1's goal).

    `loss` is "gan" (the posts' loss: D says how likely an image is real) or "wgan-gp"
    (Gulrajani et al. 2017): D becomes a critic whose unbounded score estimates the
    Wasserstein distance, kept 1-Lipschitz by a gradient penalty weighted `gp_lambda`, and
    trained `n_critic` times per generator update. The critic has layer norm where D has batch
    norm: batch norm would make each image's score depend on the others in its batch, which
    the per-image penalty forbids.
    """

    model_name = "DCGAN.model"
    settings_text = "image_size, c_dim, z_dim, gf_dim, df_dim, loss"

    def __init__(self, sess, image_size=64, is_crop=False, batch_size=64, sample_size=64,
                 z_dim=100, gf_dim=64, df_dim=64, gfc_dim=1024, dfc_dim=1024, c_dim=3,
                 checkpoint_dir=None, lam=0.1, loss="gan", gp_lambda=10.0, n_critic=5):
        if not valid_image_size(image_size):
            raise ValueError(image_size_error(image_size))
        if c_dim not in (1, 3):
            raise ValueError("c_dim must be 1 (grayscale) or 3 (RGB), not %r" % (c_dim,))
        if loss not in LOSSES:
            raise ValueError("loss must be one of %s, not %r" % (", ".join(LOSSES), loss))
        self.sess = sess
        self.image_size = image_size
        self.is_crop = is_crop
        self.batch_size = batch_size
        self.sample_size = sample_size
        self.z_dim = z_dim
        self.gf_dim = gf_dim
        self.df_dim = df_dim
        # gfc_dim/dfc_dim are kept for the post's signature; its DCGAN used them only for the
        # conditional (labelled) variant, which the posts do not train.
        self.gfc_dim = gfc_dim
        self.dfc_dim = dfc_dim
        self.c_dim = c_dim
        self.checkpoint_dir = checkpoint_dir
        self.lam = lam
        self.loss, self.gp_lambda, self.n_critic = loss, gp_lambda, n_critic
        self.sizes = layer_sizes(image_size)
        # One normalisation per layer that has one: all of G's but the output, all of D's but
        # the input layer. The WGAN-GP critic uses layer norm (see the class doc).
        self.g_bns = [batch_norm(name="g_bn%d" % i) for i in range(len(self.sizes) - 1)]
        d_norm, d_name = (layer_norm, "d_ln%d") if loss == "wgan-gp" else (batch_norm, "d_bn%d")
        self.d_bns = [None] + [d_norm(name=d_name % i) for i in range(1, len(self.sizes) - 1)]
        self.build_model()

    # ------------------------------------------------------------------------------------------
    # The graph
    # ------------------------------------------------------------------------------------------

    def build_model(self):
        """Placeholders, G and D, the losses, summaries, optimisers' inputs and the Saver (Part 4)."""
        size, channels = self.image_size, self.c_dim
        with tf.name_scope("inputs"):  # in a scope, so the summary tags `z` etc. stay free
            self.is_training = tf.placeholder(tf.bool, [], name="is_training")
            self.images = tf.placeholder(tf.float32, [None, size, size, channels],
                                         name="real_images")
            self.z = tf.placeholder(tf.float32, [None, self.z_dim], name="z")

        self.G = self.generator(self.z)
        self.D, self.D_logits = self.discriminator(self.images)
        self.D_, self.D_logits_ = self.discriminator(self.G, reuse=True)

        with tf.name_scope("losses"):
            if self.loss == "wgan-gp":
                d_scalars, g_scalars = self.wgan_gp_losses()
            else:
                d_scalars, g_scalars = self.gan_losses()
        # The losses train_step reports: the posts' two, and WGAN-GP's own.
        reported = ["d_loss", "g_loss"] + (list(WGAN_GP_SCALARS) if self.loss == "wgan-gp" else [])
        self.losses = {name: getattr(self, name) for name in reported}

        # No name scope here: it would prefix the tags, and TensorBoard should show the post's
        # names (z, d, d_, G, d_loss, ...).
        z_sum = tf.summary.histogram("z", self.z)
        d_sum = tf.summary.histogram("d", self.D)
        d__sum = tf.summary.histogram("d_", self.D_)
        G_sum = tf.summary.image("G", self.G)
        # Built here, not in an old-API fallback branch as in the post (where the G summary
        # was never created and training failed at its first G update).
        self.d_sum = tf.summary.merge([z_sum, d_sum] + [
            tf.summary.scalar(name, getattr(self, name)) for name in d_scalars])
        self.g_sum = tf.summary.merge([z_sum, d__sum, G_sum] + [
            tf.summary.scalar(name, getattr(self, name)) for name in g_scalars])

        t_vars = tf.trainable_variables()
        self.d_vars = [var for var in t_vars if has_prefix(var, "d_")]
        self.g_vars = [var for var in t_vars if has_prefix(var, "g_")]

        self.build_position()
        with tf.variable_scope("state"):
            # The fixed sample noise lives in the checkpoint too, so a resumed run's grids keep
            # showing the same faces.
            self.sample_z = tf.get_variable("sample_z", [self.sample_size, self.z_dim],
                                            initializer=tf.random_uniform_initializer(-1, 1),
                                            trainable=False)
        # Model weights only, enough to generate; train() makes one that also keeps Adam's state.
        self.saver = tf.train.Saver()

    def gan_losses(self):
        """The posts' losses: sigmoid cross-entropy of D on real (label 1) and fake (label 0)
        images; G wants D to say 1 on its fakes (Part 4). Returns the scalars' names for the
        D and the G summaries."""
        self.d_loss_real = sigmoid_loss(self.D_logits, 1.0, "d_loss_real")
        self.d_loss_fake = sigmoid_loss(self.D_logits_, 0.0, "d_loss_fake")
        self.g_loss = sigmoid_loss(self.D_logits_, 1.0, "g_loss")
        self.d_loss = tf.add(self.d_loss_real, self.d_loss_fake, name="d_loss")
        return ["d_loss_real", "d_loss"], ["d_loss_fake", "g_loss"]

    def wgan_gp_losses(self):
        """WGAN-GP losses (Gulrajani et al. 2017, algorithm 1).

        critic loss = mean critic(fake) - mean critic(real) + gp_lambda * gradient penalty;
        G loss = -mean critic(fake). Their difference of means, the `wasserstein_estimate`, is
        the critic's estimate of the distance between real and generated images: it should
        fall as G improves. All four scalars go with the critic update, which computes them.
        """
        self.wasserstein_estimate = tf.subtract(tf.reduce_mean(self.D_logits),
                                                tf.reduce_mean(self.D_logits_),
                                                name="wasserstein_estimate")
        self.gradient_penalty = gradient_penalty(
            lambda images: self.discriminator(images, reuse=True)[1], self.images, self.G)
        self.d_loss = tf.add(-self.wasserstein_estimate, self.gp_lambda * self.gradient_penalty,
                             name="d_loss")
        self.g_loss = tf.negative(tf.reduce_mean(self.D_logits_), name="g_loss")
        return ["d_loss", "g_loss"] + list(WGAN_GP_SCALARS), []

    def generator(self, z):
        """G: noise z -> image in [-1, 1], s x s (4x4 at 64) up to image_size by 5x5 stride-2
        deconvs (Part 4)."""
        s, gf = self.image_size, self.gf_dim
        with tf.variable_scope("generator"):
            first = self.sizes[0]
            channels = gf * width_multiple(s, first)
            h = linear(z, first * first * channels, "g_h0_lin")
            h = tf.reshape(h, [-1, first, first, channels])
            h = tf.nn.relu(self.g_bns[0](h, self.is_training))
            # state size. (gf_dim*8) x 4 x 4 at 64x64
            for i, size in enumerate(self.sizes[1:], start=1):
                last = size == s
                channels = self.c_dim if last else gf * width_multiple(s, size)
                h = conv2d_transpose(h, [None, size, size, channels], name="g_h%d" % i)
                if last:
                    # state size. c_dim x image_size x image_size
                    return tf.nn.tanh(h)
                # state size. (gf_dim*4) x 8 x 8, (gf_dim*2) x 16 x 16, gf_dim x 32 x 32 at 64x64
                h = tf.nn.relu(self.g_bns[i](h, self.is_training))

    def discriminator(self, image, reuse=False):
        """D: image -> (probability real, logit), by 5x5 stride-2 convs down to s x s, 4x4 at
        64 (Part 4). The WGAN-GP critic returns its unbounded score twice: no sigmoid.

        The final reshape takes its size from the graph, not from a hard-coded 64x64 (8192).
        """
        s, df = self.image_size, self.df_dim
        with tf.variable_scope("discriminator", reuse=reuse):
            h = image
            for i, size in enumerate(reversed(self.sizes[:-1])):
                h = conv2d(h, df * width_multiple(s, size), name="d_h%d_conv" % i)
                if self.d_bns[i] is not None:
                    h = self.d_bns[i](h, self.is_training)
                h = lrelu(h)
                # state size. df_dim x 32 x 32, (df_dim*2) x 16 x 16, ... (df_dim*8) x 4 x 4
            h = tf.reshape(h, [-1, int(np.prod(h.shape[1:]))])
            logit = linear(h, 1, "d_h%d_lin" % (len(self.sizes) - 1))
            return (logit if self.loss == "wgan-gp" else tf.nn.sigmoid(logit)), logit

    # ------------------------------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------------------------------

    def train(self, config, images=None):
        """Train on `config.dataset` (or on `images`, a uint8 array already loaded) (Part 4).

        `config` carries the trainer's flags: epoch, learning_rate, beta1, train_size,
        batch_size, dataset, sample_dir, checkpoint_dir, logs_dir, sample_freq, ckpt_freq,
        summary_freq, seed, max_to_keep, progress_gif, holdout, eval_every_epoch,
        eval_samples. Ctrl-C or SIGTERM saves a checkpoint after the step under way and
        returns; a later call with the same folders resumes.
        """
        if images is None:
            images = load_dataset(config.dataset, self.image_size, self.c_dim, self.is_crop,
                                  config.train_size, cache_dir=config.checkpoint_dir)
        train_rows, holdout_rows = split_holdout(len(images), config.holdout)
        self.holdout_images = images[holdout_rows[:config.eval_samples]]
        batches = len(train_rows) // self.batch_size
        d_optim, g_optim = self.optimizers(config.learning_rate, config.beta1, config.beta2)
        self.saver = tf.train.Saver(max_to_keep=config.max_to_keep)
        self.sess.run(tf.global_variables_initializer())
        self.writer = tf.summary.FileWriter(config.logs_dir, self.sess.graph)
        step, start_epoch, start_batch = self.resume(config)
        self.loss_log = LossLog(config.logs_dir, step)
        self.sample_images = transform(images[:self.sample_size], is_crop=False)
        save_images(self.sample_images, grid_shape(len(self.sample_images)),
                    os.path.join(config.sample_dir, "real_samples.png"))
        speed = Speedometer(step, config.epoch * batches, self.batch_size)
        try:
            with StopRequest() as stop:
                for epoch in range(start_epoch, config.epoch):
                    for idx, batch in feed_batches(images, self.batch_size, self.data_seed, epoch,
                                                   start_batch if epoch == start_epoch else 0,
                                                   train_rows, config.augment):
                        step += 1
                        batch_z = self.rng.uniform(-1, 1, [self.batch_size, self.z_dim])
                        losses = self.train_step(
                            d_optim, g_optim, batch, batch_z,
                            step if step % config.summary_freq == 0 else None,
                            self.g_updates(step))
                        print("Epoch [%2d] [%4d/%4d] time: %4.4f, %s, %s"
                              % (epoch, idx, batches, speed.elapsed(), ", ".join(
                                  "%s: %.8f" % item for item in losses.items()),
                                 speed.report(step)))
                        check_finite(step, epoch, idx, config, **losses)
                        self.loss_log.add(step, epoch, losses)
                        if step % config.sample_freq == 0:
                            self.sample(config.sample_dir, "train_%02d-%04d.png" % (epoch, idx))
                        if self.checkpoint_due(stop, config, step, (step, epoch, idx + 1)):
                            return
                    self.end_epoch(config, epoch, step)
        finally:
            self.writer.close()

    def resume(self, config):
        """Restore the newest checkpoint, if any; return (step, epoch, batch) to go on from
        (Part 4). Also seeds the noise generator from --seed and the step."""
        step, epoch, batch = super().resume(config)
        self.rng = np.random.default_rng(None if config.seed is None else [config.seed, step])
        return step, epoch, batch

    def end_epoch(self, config, epoch, step):
        """The epoch's grid (and the progress GIF), the quality figures on the held-out images,
        the loss curves in logs_dir/losses.png, then a checkpoint that starts the next epoch."""
        self.sample(config.sample_dir, "epoch_%02d.png" % epoch)
        if config.progress_gif:
            write_progress_gif(config.sample_dir, epoch + 1)
        if config.eval_every_epoch and len(self.holdout_images):
            self.log_metrics(config.logs_dir, epoch, step, self.evaluate(self.holdout_images))
        self.loss_log.plot()
        self.checkpoint(config, step, (step, epoch + 1, 0))

    def checkpoint(self, config, step, position):
        """Save the loss log, then the checkpoint at (step, epoch, batch) `position`: a resumed
        run then finds every loss up to its step."""
        self.loss_log.save()
        super().checkpoint(config, step, position)

    def evaluate(self, real, seed=0):
        """Quality figures of as many generated images as `real` ones (uint8), see gantut_metrics.

        The noise comes from `seed`, so figures of successive epochs compare like with like.
        """
        z = np.random.default_rng(seed).uniform(-1, 1, [len(real), self.z_dim])
        chunks = np.array_split(z, max(1, len(z) // self.batch_size))
        samples = np.concatenate([self.generate(chunk) for chunk in chunks])
        return gantut_metrics.evaluate(to_uint8(inverse_transform(samples)), real, seed)

    def log_metrics(self, logs_dir, epoch, step, figures):
        """Print the figures, write them as TensorBoard scalars `metrics/NAME` and add a row to
        logs_dir/metrics.csv."""
        print(" [*] epoch %d quality: %s" % (epoch, ", ".join(
            "%s %.4g" % item for item in figures.items())))
        self.writer.add_summary(tf.Summary(value=[
            tf.Summary.Value(tag="metrics/" + name, simple_value=value)
            for name, value in figures.items()]), step)
        self.writer.flush()
        append_csv_row(os.path.join(logs_dir, "metrics.csv"),
                       dict(epoch=epoch, step=step, **figures))

    def optimizers(self, learning_rate, beta1, beta2=0.999):
        """Adam for D and for G, each running its own batch-norm updates (Part 4)."""
        with tf.name_scope("optimizers"):
            d_updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS, scope="discriminator")
            g_updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS, scope="generator")
            with tf.control_dependencies(d_updates):
                d_optim = tf.train.AdamOptimizer(learning_rate, beta1, beta2, name="d_adam") \
                    .minimize(self.d_loss, var_list=self.d_vars)
            with tf.control_dependencies(g_updates):
                g_optim = tf.train.AdamOptimizer(learning_rate, beta1, beta2, name="g_adam") \
                    .minimize(self.g_loss, var_list=self.g_vars)
        return d_optim, g_optim

    def g_updates(self, step):
        """G updates after the D update of `step`: two with the posts' loss, "so that the
        discriminator loss does not converge to zero too quickly"; with WGAN-GP one after every
        n_critic critic updates, since the critic should be near optimal when G learns from it."""
        if self.loss == "wgan-gp":
            return int(step % self.n_critic == 0)
        return 2

    def train_step(self, d_optim, g_optim, batch_images, batch_z, summary_step=None,
                   g_updates=2):
        """One D update, then `g_updates` G updates on the same noise (Part 4).

        Returns the losses by name ({"d_loss": .., "g_loss": ..} and, with WGAN-GP,
        gradient_penalty and wasserstein_estimate). They come from the same `sess.run` calls
        that train (no extra forward pass); g_loss is the one of the last G update. With a
        `summary_step`, the same runs also fetch the summaries and write them at that step.
        """
        g_feed = {self.z: batch_z, self.is_training: True}  # G's loss needs no real images
        summaries = [self.d_sum] if summary_step is not None else []
        _, losses, *d_summary = self.sess.run([d_optim, self.losses] + summaries,
                                              {self.images: batch_images, **g_feed})
        g_summary = []
        for _ in range(g_updates):
            _, losses["g_loss"], *g_summary = self.sess.run(
                [g_optim, self.g_loss] + ([self.g_sum] if summaries else []), g_feed)
        for summary in d_summary + g_summary:
            self.writer.add_summary(summary, summary_step)
        return losses

    def sample(self, sample_dir, name):
        """Write the grid of G(sample noise) and print the losses on the fixed real batch (Part 4).

        The sample noise is drawn once and kept in the checkpoint. Batch norm runs in inference
        mode, so these grids show what a user of the trained model gets.
        """
        samples, d_loss, g_loss = self.sess.run(
            [self.G, self.d_loss, self.g_loss],
            {self.z: self.sess.run(self.sample_z), self.images: self.sample_images,
             self.is_training: False})
        path = save_sample_grid(samples, grid_shape(len(samples)), sample_dir, name)
        print("[Sample] d_loss: %.8f, g_loss: %.8f, grid: %s" % (d_loss, g_loss, path))

    # ------------------------------------------------------------------------------------------
    # Using the trained model
    # ------------------------------------------------------------------------------------------

    def generate(self, z):
        """G(z) in [-1, 1], batch norm in inference mode, as the training grids (Part 5)."""
        return self.sess.run(self.G, {self.z: z, self.is_training: False})

    def build_completion(self):
        """The in-painting losses of Part 1 (after B. Amos's "deep completion"), built once.

        `mask` is 1 where a pixel is known, 0 where it is missing. Per image:
        contextual loss = L1 distance between G(z) and the image on the known pixels;
        perceptual loss = the generator loss (how fake D finds G(z); `g_loss` is its batch mean;
        with WGAN-GP minus the critic's score);
        complete loss = contextual + lam * perceptual, and its gradient with respect to z.
        Everything runs in inference mode, so the images of a batch do not affect each other.
        """
        if hasattr(self, "complete_loss"):
            return
        with tf.name_scope("completion"):
            self.mask = tf.placeholder(tf.float32, self.images.shape, name="mask")
            self.contextual_loss = tf.reduce_sum(
                tf.abs(self.mask * self.G - self.mask * self.images), axis=[1, 2, 3])
            if self.loss == "wgan-gp":
                self.perceptual_loss = -self.D_logits_[:, 0]
            else:
                self.perceptual_loss = tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(
                    logits=self.D_logits_, labels=tf.ones_like(self.D_logits_)), axis=1)
            self.complete_loss = self.contextual_loss + self.lam * self.perceptual_loss
            self.grad_complete_loss = tf.gradients(self.complete_loss, self.z)[0]

    def complete(self, images, mask, n_iter=1000, lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8,
                 seed=None, report=None):
        """Fill the pixels where `mask` is 0 in `images` ([-1, 1]) with what G knows (Part 1).

        Adam steps on z (not on the weights), z clipped to [-1, 1] after each step, as in
        B. Amos's method. `report(i, G(z))` is called every 50 iterations and at the end.
        Returns (G(z), contextual loss per image and iteration: n_iter + 1 rows).
        """
        self.build_completion()
        z = np.random.default_rng(seed).uniform(-1, 1, [len(images), self.z_dim])
        feed = {self.images: images, self.mask: np.broadcast_to(mask, images.shape),
                self.is_training: False}
        m, v, history = 0.0, 0.0, []
        for i in range(n_iter + 1):
            feed[self.z] = z
            contextual, generated, grad = self.sess.run(
                [self.contextual_loss, self.G, self.grad_complete_loss], feed)
            history.append(contextual)
            if report is not None and (i % 50 == 0 or i == n_iter):
                report(i, generated)
            if i == n_iter:
                return generated, np.array(history)
            m = beta1 * m + (1 - beta1) * grad
            v = beta2 * v + (1 - beta2) * grad ** 2
            step = lr * (m / (1 - beta1 ** (i + 1))) / (np.sqrt(v / (1 - beta2 ** (i + 1))) + eps)
            z = np.clip(z - step, -1, 1)


# ----------------------------------------------------------------------------------------------
# Checkpoints and settings, shared by every stage
# ----------------------------------------------------------------------------------------------

def save_checkpoint(sess, saver, checkpoint_dir, model_name, step):
    """Save `saver`'s variables as `checkpoint_dir/model_name-step` and return that path (Part 4;
    shared by every stage).

    No .meta graph: the graph is this code (and in TensorBoard); it would triple the size of
    every checkpoint. A full disk or an unwritable folder raises TrainingError, naming it.
    """
    try:
        os.makedirs(checkpoint_dir, exist_ok=True)
        return saver.save(sess, os.path.join(checkpoint_dir, model_name), global_step=step,
                          write_meta_graph=False)
    except (OSError, tf.errors.OpError) as err:
        raise TrainingError(
            "could not write the step %d checkpoint to %s (%s). Free space there, or use "
            "another --checkpoint_dir; the complete checkpoints already there are kept, and "
            "a rerun resumes from the newest." % (step, checkpoint_dir, first_line(err)))


def restore_checkpoint(sess, saver, checkpoint_dir, model_name, settings):
    """Restore the newest complete `model_name` checkpoint in `checkpoint_dir`; return whether
    one was found (Part 4; shared by every stage).

    A checkpoint whose files are missing or truncated is reported by name and the one before
    it is used. One of another model shape stops with a message naming it and the flags that
    fix the shape (`settings`).
    """
    print(" [*] Reading checkpoints from %s" % checkpoint_dir)
    paths = checkpoint_paths(checkpoint_dir, model_name) if checkpoint_dir else []
    for path in paths:
        try:
            if not glob.glob(path + ".data-*"):
                raise tf.errors.DataLossError(None, None, "its .data file is missing")
            saver.restore(sess, path)
        except (tf.errors.DataLossError, tf.errors.OutOfRangeError) as err:
            print(" [!] checkpoint %s is damaged (%s); trying the one before it"
                  % (path, first_line(err)), file=sys.stderr)
            continue
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as err:
            raise SystemExit("error: checkpoint %s does not fit this model (%s). It was trained "
                             "with other settings (%s); use those, or a new --checkpoint_dir."
                             % (path, first_line(err), settings))
        # Let the Saver's max_to_keep also retire the checkpoints of earlier runs.
        saver.set_last_checkpoints_with_time(
            [(p, os.path.getmtime(p + ".index")) for p in reversed(paths)])
        print(" [*] Restored %s" % path)
        return True
    return False


def point_tensorboard_at(logs_dir, checkpoint):
    """Name `checkpoint` in a TF checkpoint state file in `logs_dir` (project addition; every
    stage).

    TensorBoard's projector looks for a state file named `checkpoint` in the log folder and, if
    there is none, in its parent: there it met the default --checkpoint_dir, a folder of that
    very name, and logged "FailedPreconditionError: checkpoint; Is a directory ... Checkpoint
    ignored" on every reload. With the state file in the log folder it never looks further (and
    its projector shows the checkpoint's 2-D variables). The path is relative to `logs_dir`, so
    the project folder can move; a `logs_dir` that is the checkpoint folder has the Saver's own.
    """
    logs_dir = os.path.abspath(logs_dir)
    if logs_dir != os.path.dirname(os.path.abspath(checkpoint)):
        tf.train.update_checkpoint_state(logs_dir,
                                         os.path.relpath(os.path.abspath(checkpoint), logs_dir))


def saved_settings(checkpoint_dir, defaults):
    """The settings recorded beside the checkpoints in model.json, over `defaults` (Part 5;
    shared by every stage). A later --train=False then needs no size flags repeated."""
    return {**defaults, **(read_json(os.path.join(checkpoint_dir, SETTINGS_FILE)) or {})}


def record_settings(checkpoint_dir, model_name, settings, legacy=None):
    """Write `settings` (the flags that fix the model) to model.json beside the checkpoints;
    stop, naming both values, if the checkpoints there were made with others (Part 5).

    `legacy` fills in settings that an older model.json did not record.
    """
    if checkpoint_paths(checkpoint_dir, model_name):
        saved = saved_settings(checkpoint_dir, legacy or {})
        changed = sorted(name for name in settings if saved.get(name, settings[name])
                         != settings[name])
        if changed:
            raise SystemExit(
                "error: %s holds a model trained with %s, but this run asks for %s. Use the "
                "same flags to resume, or a new --checkpoint_dir for a new model."
                % (checkpoint_dir, describe_flags(saved, changed),
                   describe_flags(settings, changed)))
    with atomic_path(os.path.join(checkpoint_dir, SETTINGS_FILE)) as tmp, open(tmp, "w") as out:
        json.dump(settings, out)


def describe_flags(settings, names):
    """`--name value` for each of `names`, as a user would type them."""
    return " ".join("--%s %s" % (name, settings.get(name)) for name in names)


@contextlib.contextmanager
def training_folders(checkpoint_dir, sample_dir, logs_dir):
    """Make a run's folders and hold checkpoint_dir's lock for the block, after clearing the
    temp files a killed run left; a busy folder or a TrainingError ends the program with a
    one-line message (Part 5; shared by every trainer)."""
    for folder in (checkpoint_dir, sample_dir, logs_dir):
        os.makedirs(folder, exist_ok=True)
    try:
        with folder_lock(checkpoint_dir):
            for folder in (checkpoint_dir, sample_dir):
                remove_stale_temp_files(folder)
            yield
    except (FolderBusy, TrainingError) as err:
        sys.exit("error: %s" % err)


@contextlib.contextmanager
def new_session(threads, bf16, seed=None):
    """A Session on a fresh graph, with session_config's settings and, if given, the graph's
    random seed (Part 5; shared by every trainer)."""
    with tf.Graph().as_default(), tf.Session(config=session_config(threads, bf16)) as sess:
        if seed is not None:
            tf.set_random_seed(seed)
        yield sess


def cpu_has_bf16():
    """True if this CPU computes in bfloat16 natively (AVX512-BF16 or AMX), as Linux reports."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags_line = next(line for line in cpuinfo if line.startswith("flags"))
    except (OSError, StopIteration):
        return False
    return bool({"avx512_bf16", "amx_bf16"} & set(flags_line.split()))


def session_config(threads, bf16):
    """The Session's settings: a thread limit (Part 5) and, if asked, bfloat16 on oneDNN."""
    config = tf.ConfigProto(intra_op_parallelism_threads=threads,
                            inter_op_parallelism_threads=threads)
    if bf16:
        config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = \
            rewriter_config_pb2.RewriterConfig.ON
    return config


def checkpoint_paths(checkpoint_dir, model_name):
    """Checkpoint prefixes (`.../DCGAN.model-STEP`) with an index file, newest first (Part 4).

    Found by their files rather than TF's `checkpoint` list, so a lost or stale list is no
    problem.
    """
    prefixes = [path[:-len(".index")]
                for path in glob.glob(os.path.join(checkpoint_dir, model_name + "-*.index"))]
    return sorted(prefixes, key=lambda prefix: int(prefix.rsplit("-", 1)[1]), reverse=True)


class TrainingError(Exception):
    """Training cannot go on; the message says why, what is kept and what to do."""


def check_finite(step, epoch, batch, config, **losses):
    """Stop at the first NaN or infinite loss, naming the step and the loss (project addition).

    Nothing is saved after it, so the newest checkpoint holds the last good weights.
    """
    for name, value in losses.items():
        if not np.isfinite(value):
            raise TrainingError(
                "%s became %s at step %d (epoch %d, batch %d). Nothing was saved after it: the "
                "newest checkpoint in %s holds the last good weights, and a rerun resumes from "
                "it. Try a lower --learning_rate (now %g)."
                % (name, value, step, epoch, batch, config.checkpoint_dir, config.learning_rate))


def save_sample_grid(images, size, sample_dir, name):
    """save_images to sample_dir/name during training; a failed write (a full disk) raises
    TrainingError naming the grid and the folder (Part 4; shared by every stage)."""
    try:
        return save_images(images, size, os.path.join(sample_dir, name))
    except OSError as err:
        raise TrainingError("could not write the sample grid %s to %s (%s). Free space there, "
                            "or use another --sample_dir; a rerun resumes from the newest "
                            "checkpoint." % (name, sample_dir, first_line(err)))


def first_line(err):
    """The first line of an exception's message, for one-line error reports."""
    text = getattr(err, "message", None) or str(err)
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__


def split_holdout(n_images, share):
    """Row indices (train, held out): a fixed `share` of the images that training never sees.

    Drawn from a fixed seed, not --seed, so the split stays the same across runs and resumes.
    """
    return split_rows(n_images, int(n_images * share))


def split_rows(n_images, held_out_count, seed=0):
    """Sorted row indices (kept, held out), `held_out_count` of them drawn at random from `seed`."""
    order = np.random.default_rng(seed).permutation(n_images)
    return np.sort(order[held_out_count:]), np.sort(order[:held_out_count])


def append_csv_row(path, row):
    """Add `row` (a dict) to the CSV file `path`, header first if new; whole or not at all."""
    old = ""
    if os.path.exists(path):
        with open(path) as existing:
            old = existing.read()
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(row))
    if not old:
        writer.writeheader()
    writer.writerow(row)
    with atomic_path(path) as tmp, open(tmp, "w") as out:
        out.write(old + text.getvalue())


def write_progress_gif(sample_dir, epochs):
    """Animate the end-of-epoch grids epoch_00.png ... into sample_dir/progress.gif (Part 5)."""
    paths = [os.path.join(sample_dir, "epoch_%02d.png" % e) for e in range(epochs)]
    present = [(p, "epoch %d" % e) for e, p in enumerate(paths) if os.path.exists(p)]
    save_gif([p for p, _ in present], [label for _, label in present],
             os.path.join(sample_dir, "progress.gif"))


def gradient_penalty(critic, real, fake, name="gradient_penalty"):
    """WGAN-GP's penalty: mean over images of (||d critic / d x|| - 1)^2 at random points x on
    the lines between real and fake images (Gulrajani et al. 2017, equation 3).

    `critic` maps a batch of images to scores. A 1-Lipschitz critic's gradient has norm at most
    1; the penalty pulls it to 1 where it matters, between the two distributions.
    """
    with tf.name_scope(name):
        # As many pairs as the smaller batch has images (the sample grid's batches may differ).
        count = tf.minimum(tf.shape(real)[0], tf.shape(fake)[0])
        real, fake = real[:count], fake[:count]
        epsilon = tf.random_uniform([count, 1, 1, 1], 0.0, 1.0)
        between = real + epsilon * (fake - real)
        grad = tf.gradients(critic(between), between)[0]
        # The small constant keeps the norm's own gradient finite at a zero gradient.
        norm = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=[1, 2, 3]) + 1e-10)
        return tf.reduce_mean(tf.square(norm - 1.0), name="value")


def sigmoid_loss(logits, label, name):
    """Mean sigmoid cross-entropy of `logits` against a constant `label` (Part 4 losses)."""
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        logits=logits, labels=tf.fill(tf.shape(logits), label)), name=name)


def has_prefix(var, prefix):
    """True if a variable's own layer scope starts with `prefix` (the post's `d_`/`g_` split)."""
    return any(part.startswith(prefix) for part in var.op.name.split("/"))


class LossLog(object):
    """Every training step's losses, for readers without TensorBoard (WGAN-GP addition, after
    the logo walkthrough's loss plots).

    Kept in logs_dir/losses.csv, rewritten whole with each checkpoint, so it always matches a
    checkpoint: a resumed run drops the rows after its step (they are trained again).
    `plot()` draws logs_dir/losses.png: each loss against step, smoothed, epochs marked.
    """

    def __init__(self, logs_dir, resume_step=0):
        self.csv_path = os.path.join(logs_dir, "losses.csv")
        self.png_path = os.path.join(logs_dir, "losses.png")
        self.rows = []
        if resume_step and os.path.exists(self.csv_path):
            with open(self.csv_path) as saved:
                self.rows = [row for row in csv.DictReader(saved)
                             if int(row["step"]) <= resume_step]

    def add(self, step, epoch, losses):
        self.rows.append(dict(step=step, epoch=epoch, **losses))

    def save(self):
        if not self.rows:
            return
        with atomic_path(self.csv_path) as tmp, open(tmp, "w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=list(self.rows[-1]))
            writer.writeheader()
            writer.writerows(self.rows)

    def plot(self):
        if not self.rows:
            return
        steps = np.array([int(row["step"]) for row in self.rows])
        epochs = np.array([int(row["epoch"]) for row in self.rows])
        names = [name for name in self.rows[-1] if name not in ("step", "epoch")]
        series = {name: (steps, np.array([float(row[name]) for row in self.rows]))
                  for name in names}
        # epoch_starts[e] is the first step of epoch e (the first logged one for epochs a
        # resumed run logged no step of).
        epoch_starts = [steps[np.argmax(epochs >= e)] for e in range(epochs.max() + 1)]
        plot_losses(series, self.png_path, epoch_starts, title="losses by step")


class Speedometer(object):
    """Images per second and time left, for the progress line (project addition)."""

    def __init__(self, start_step, total_steps, batch_size):
        self.started, self.start_step = time.time(), start_step
        self.total_steps, self.batch_size = total_steps, batch_size

    def elapsed(self):
        return time.time() - self.started

    def report(self, step):
        rate = (step - self.start_step) * self.batch_size / self.elapsed()
        eta = (self.total_steps - step) * self.batch_size / rate
        return "%.1f img/s, ETA %s" % (rate, format_seconds(eta))


class StopRequest(object):
    """While active, SIGINT (Ctrl-C) and SIGTERM only set `requested` (Part 5 behaviour).

    The training loop finishes the step under way, saves a checkpoint and returns, instead of
    dying mid-step. A second signal stops at once.
    """

    def __enter__(self):
        self.requested = False
        self.previous = {sig: signal.signal(sig, self.handle)
                         for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\n [*] %s received: saving a checkpoint after this step"
              % signal.Signals(signum).name, file=sys.stderr)

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        return False
