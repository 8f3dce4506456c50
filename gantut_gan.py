"""The DCGAN class (Part 4 of "Generative Adversarial Network (GAN) in TensorFlow").
Follows Taehoon Kim's DCGAN-tensorflow (github.com/carpedm20/DCGAN-tensorflow, MIT License,
Copyright (c) 2016 Taehoon Kim), as the post does.

A generator G maps noise z to an image; a discriminator D says how likely an image is real.
They play the minimax game of Part 1,

    min_G max_D  V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))],

trained in turns: one D update, then two G updates per batch, so that D's loss does not fall to
zero before G has learnt anything. Graph code is TF1 style through `tf.compat.v1`: placeholders,
variable scopes, `get_variable`, a Session, Adam, Saver and FileWriter.

The layer count follows `image_size`: G starts at 4x4 and doubles up to the image size; D halves
the image down to 4x4. Channel widths are multiples of `gf_dim`/`df_dim`: 8, 4, 2, 1 for 64x64
images, as in the post, capped at 8 for bigger images.

The class holds the post's methods in the post's order (`build_model`, `generator`,
`discriminator`, `train`, `save`, `load`), then ours, marked as additions: the optimisers and
the training step, sample grids, generation and per-epoch evaluation; the posts' loss comes
before the class (GANLoss), our loss kinds after it. `train` holds the post's loop, whose D and
G updates run as one op every step; the run machinery it owns (checkpoints, stop requests,
logs) is extras.run.training.TrainingRun, the image data extras/data/dataset.py, and image
completion gantut_complete.py.
"""
import extras.machine.tfenv  # noqa: F401  (first: TensorFlow then loads without Keras; see it)

import collections
import os
import sys

import numpy as np
import tensorflow.compat.v1 as tf

from gantut_datafuncs import (batch_norm, conv2d, conv2d_transpose, dataset_files,  # noqa: F401
                              has_prefix, layer_norm, linear, lrelu, shared_reads,
                              sigmoid_loss)
from extras.run.config import DEFAULTS, TrainingConfig
from extras.data.dataset import feed_batches, load_dataset, split_holdout
from gantut_imgfuncs import grid_shape, inverse_transform, save_images, to_uint8, transform
from extras.run.plots import write_progress_gif
from extras.model.adam import Adam
from extras.model.precision import loss_scaled
from extras.run.checkpoints import (AVERAGE_SCOPE, WeightSnapshot, load_model, new_saver,
                                    position_variable, save_model, training_state)
from extras.run.training import TrainingRun, save_sample_grid

# dataset_files is re-exported: the post defined it in this module.
__all__ = ["DCGAN", "dataset_files", "valid_image_size"]

# What a loss kind's terms are made of: D's logits on real images and on G's, those images, and
# D as a function of images (its logits), for terms that run D on other images.
Towers = collections.namedtuple("Towers", "real_logits fake_logits real fake critic")


class GANLoss(object):
    """The posts' loss (Part 4), one of the loss kinds `DCGAN(loss=...)` names (the others are
    ours, after the class: LOSSES). A kind holds all that differs between losses: D's
    normalisation and output, the loss terms, G updates per D update, what is reported, Adam's
    defaults and completion's perceptual term."""

    name = "gan"
    help = "the posts' loss"
    # The post's flags' values (Part 5).
    adam = {"learning_rate": DEFAULTS.learning_rate, "beta1": DEFAULTS.beta1,
            "beta2": DEFAULTS.beta2}
    reported = ("d_loss", "g_loss")  # the progress line's and the loss log's
    d_summaries = ("d_loss_real", "d_loss")  # the other terms go with G's summaries
    g_update_counts = (2,)  # the G updates a step may make

    def __init__(self, **options):
        """Options of other kinds (WGAN-GP's gp_lambda, n_critic) change nothing here."""

    def d_norm(self, layer, fused_bn):
        """D's normalisation of hidden layer `layer`."""
        return batch_norm(name="d_bn%d" % layer, fused=fused_bn)

    def d_output(self, logit):
        """D's output from its logit: the probability that the image is real."""
        return tf.nn.sigmoid(logit)

    def terms(self, towers):
        """The loss terms by name, of `towers` (Towers): D's error on real (label 1) and fake
        (label 0) images; G wants D to say 1 on its fakes."""
        d_loss_real = self.error(towers.real_logits, 1.0, "d_loss_real")
        d_loss_fake = self.error(towers.fake_logits, 0.0, "d_loss_fake")
        return {"d_loss_real": d_loss_real, "d_loss_fake": d_loss_fake,
                "g_loss": self.g_loss(towers.fake_logits),
                "d_loss": tf.add(d_loss_real, d_loss_fake, name="d_loss")}

    def error(self, logits, label, name):
        """The mean error of D's logits against `label`: sigmoid cross-entropy."""
        return sigmoid_loss(logits, label, name)

    def g_loss(self, fake_logits, name="g_loss"):
        """G's loss from D's logits on its images."""
        return self.error(fake_logits, 1.0, name)

    def perceptual_loss(self, fake_logits):
        """Completion's perceptual term (Part 1), per image: G's loss on that image."""
        return tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(
            logits=fake_logits, labels=tf.ones_like(fake_logits)), axis=1)

    def g_updates_after(self, step):
        """G updates after the D update of `step`: two, "to make sure that d_loss does not go
        to zero"."""
        return 2


class DCGAN(object):
    """Deep convolutional GAN of the posts (Part 4), built at once inside the Session `sess`;
    `train(config)` runs the training loop. `loss` names a loss kind of LOSSES (addition): the
    posts' GANLoss, or ours (WGAN-GP's `gp_lambda` and `n_critic` go to it); `fused_bn`
    (addition) picks the kernel;
    `loss_scale` (addition: --mixed_precision) holds DynamicLossScale's arguments, or None;
    `g_average` (addition) is the decay of a moving average of G's weights that sampling uses,
    0 for none."""

    model_name = "DCGAN.model"
    # The flags that fix the model's variables: recorded beside the checkpoints (model.json),
    # named when a checkpoint does not fit.
    shape_flags = ("image_size", "c_dim", "z_dim", "gf_dim", "df_dim", "loss")

    def __init__(self, sess, image_size=64, is_crop=False, batch_size=64, sample_size=64,
                 z_dim=100, gf_dim=64, df_dim=64, gfc_dim=1024, dfc_dim=1024, c_dim=3,
                 checkpoint_dir=None, lam=0.1, loss=GANLoss.name, gp_lambda=10.0, n_critic=5,
                 fused_bn=False, loss_scale=None, g_average=0.0):
        if not valid_image_size(image_size):
            raise ValueError(image_size_error(image_size))
        if c_dim not in (1, 3):
            raise ValueError("c_dim must be 1 (grayscale) or 3 (RGB), not %r" % (c_dim,))
        if loss not in LOSSES:
            raise ValueError("loss must be one of %s, not %r" % (", ".join(LOSSES), loss))
        self.loss_kind = LOSSES[loss](gp_lambda=gp_lambda, n_critic=n_critic)
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
        self.loss = loss
        self.loss_scale = loss_scale
        self.g_average = g_average
        self.restored = None  # the path of the checkpoint `load` restored
        self.sizes = layer_sizes(image_size)
        # One normalisation per layer that has one: all of G's but the output, all of D's but
        # the input layer, D's as its loss kind has it. `fused_bn` runs batch norm in
        # TensorFlow's fused kernel (see gantut_datafuncs).
        self.g_bns = [batch_norm(name="g_bn%d" % i, fused=fused_bn)
                      for i in range(len(self.sizes) - 1)]
        self.d_bns = [None] + [self.loss_kind.d_norm(i, fused_bn)
                               for i in range(1, len(self.sizes) - 1)]
        self.build_model()

    def build_model(self):
        """Placeholders, G and D, the losses and summaries (Part 4)."""
        size, channels = self.image_size, self.c_dim
        with tf.name_scope("inputs"):  # in a scope, so the summary tags `z` etc. stay free
            self.is_training = tf.placeholder(tf.bool, [], name="is_training")
            # Ours: training feeds its batches as bytes (a quarter of the data, and no float
            # copy made on the host), scaled here by transform's own table of the 256 values,
            # so that they are bit for bit the floats the post feeds to `images`.
            self.image_bytes = tf.placeholder(tf.uint8, [None, size, size, channels],
                                              name="image_bytes")
            scaled = tf.gather(transform(np.arange(256), is_crop=False),
                               tf.cast(self.image_bytes, tf.int32))
            self.images = tf.placeholder_with_default(scaled, [None, size, size, channels],
                                                      name="real_images")
            self.z = tf.placeholder(tf.float32, [None, self.z_dim], name="z")

        self.G = self.generator(self.z)
        with shared_reads():  # ours: D's towers on real and fake images read its weights once
            self.D, self.D_logits = self.discriminator(self.images)
            self.D_, self.D_logits_ = self.discriminator(self.G, reuse=True)

            with tf.name_scope("losses"):
                terms = self.loss_kind.terms(Towers(
                    self.D_logits, self.D_logits_, self.images, self.G,
                    lambda images: self.discriminator(images, reuse=True)[1]))
        # The terms as attributes under their names: d_loss, g_loss and, with the posts'
        # loss, d_loss_real and d_loss_fake.
        vars(self).update(terms)
        # The losses a training step fetches.
        self.losses = {name: terms[name] for name in self.loss_kind.reported}

        # No name scope here: it would prefix the tags, and TensorBoard should show the post's
        # names (z, d, d_, G, d_loss, ...).
        z_sum = tf.summary.histogram("z", self.z)
        d_sum = tf.summary.histogram("d", self.D)
        d__sum = tf.summary.histogram("d_", self.D_)
        G_sum = tf.summary.image("G", self.G)
        # Built here, not in an old-API fallback branch as in the post (where the G summary
        # was never created and training failed at its first G update).
        scalars = {name: tf.summary.scalar(name, term) for name, term in terms.items()}
        self.d_sum = tf.summary.merge([z_sum, d_sum] + [
            scalars[name] for name in self.loss_kind.d_summaries])
        self.g_sum = tf.summary.merge([z_sum, d__sum, G_sum] + [
            scalar for name, scalar in scalars.items()
            if name not in self.loss_kind.d_summaries])

        t_vars = tf.trainable_variables()
        self.d_vars = [var for var in t_vars if has_prefix(var, "d_")]
        self.g_vars = [var for var in t_vars if has_prefix(var, "g_")]
        # Ours: G for sample grids, evaluation and generation; on G's averaged weights where
        # there are some, G itself otherwise; and the losses the grids report.
        averaged = self.averaged_getter() if self.g_average else None
        self.sampler, self.sample_losses = self.sample_towers(averaged)
        # Ours: the same on a snapshot of their weights, which training's grids are drawn from
        # in a thread while the steps go on (see sample_later).
        self.snapshot = WeightSnapshot("sample_snapshot")
        self.snapshot_towers = self.sample_towers(self.snapshot.getter(averaged))

        with tf.variable_scope("state"):
            # The fixed sample noise lives in the checkpoint too, so a resumed run's grids keep
            # showing the same faces.
            self.sample_z = tf.get_variable("sample_z", [self.sample_size, self.z_dim],
                                            initializer=tf.random_uniform_initializer(-1, 1),
                                            trainable=False)
        # The post's Saver is made by train, after the optimisers, so that checkpoints keep
        # Adam's state; a model used without training makes one of its weights (extras.run).
        self.saver = None

    def generator(self, z, train=True):
        """G: noise z -> image in [-1, 1], s x s (4x4 at 64) up to image_size by 5x5 stride-2
        deconvs (Part 4). `train` (ours): batch norm's mode, a bool for a tower built for one
        mode (the training step's, no switch in its graph), or the `is_training` tensor."""
        s, gf = self.image_size, self.gf_dim
        with tf.variable_scope("generator"):
            first = self.sizes[0]
            channels = gf * width_multiple(s, first)
            h = linear(z, first * first * channels, "g_h0_lin")
            h = tf.reshape(h, [-1, first, first, channels])
            h = tf.nn.relu(self.g_bns[0](h, train))
            # state size. (gf_dim*8) x 4 x 4 at 64x64
            for i, size in enumerate(self.sizes[1:], start=1):
                last = size == s
                channels = self.c_dim if last else gf * width_multiple(s, size)
                h = conv2d_transpose(h, [None, size, size, channels], name="g_h%d" % i)
                if last:
                    # state size. c_dim x image_size x image_size
                    return tf.nn.tanh(h)
                # state size. (gf_dim*4) x 8 x 8, (gf_dim*2) x 16 x 16, gf_dim x 32 x 32 at 64x64
                h = tf.nn.relu(self.g_bns[i](h, train))

    def discriminator(self, image, reuse=False, train=True):
        """D: image -> (probability real, logit), by 5x5 stride-2 convs down to s x s, 4x4 at
        64 (Part 4). The WGAN-GP critic returns its unbounded score twice: no sigmoid.

        The final reshape takes its size from the graph, not from a hard-coded 64x64 (8192).
        `train` (ours) as for the generator.
        """
        s, df = self.image_size, self.df_dim
        with tf.variable_scope("discriminator", reuse=reuse):
            h = image
            for i, size in enumerate(reversed(self.sizes[:-1])):
                h = conv2d(h, df * width_multiple(s, size), name="d_h%d_conv" % i)
                if self.d_bns[i] is not None:
                    h = self.d_bns[i](h, train)
                h = lrelu(h)
                # state size. df_dim x 32 x 32, (df_dim*2) x 16 x 16, ... (df_dim*8) x 4 x 4
            h = tf.reshape(h, [-1, int(np.prod(h.shape[1:]))])
            logit = linear(h, 1, "d_h%d_lin" % (len(self.sizes) - 1))
            return self.loss_kind.d_output(logit), logit

    def train(self, config, images=None):
        """Train on `config.dataset` (or on `images`, a uint8 array already loaded) (Part 4).

        `config` carries the trainer's flags (gantut_trainer.py), or only some of them, as the
        post's own script does: the others take the trainer's defaults (extras.run.config).
        Ctrl-C or SIGTERM saves a checkpoint after the step under way and returns; a later call
        with the same folders resumes there.
        """
        config = TrainingConfig.of(config)
        if images is None:
            images = load_dataset(config.dataset, self.image_size, self.c_dim, self.is_crop,
                                  config.train_size, cache_dir=config.checkpoint_dir)
        train_rows, holdout_rows = split_holdout(len(images), config.holdout)
        holdout_images = images[holdout_rows[:config.eval_samples]]
        batch_idxs = len(train_rows) // self.batch_size
        # Ours: the post's D and G updates (d_optim, g_optim) built into the training step, the
        # training position; then the post's Saver, of them all.
        _, _, step_ops = self.optimizers(config.learning_rate, config.beta1, config.beta2)
        self.saver = new_saver(config.max_to_keep)
        # Ours: the run machinery (extras.run): restores, then checkpoints, logs, speed, stops.
        run = TrainingRun(self, config, batch_idxs, self.batch_size)
        rng = np.random.default_rng(None if config.seed is None else [config.seed, run.start.step])
        sample_images = transform(images[:self.sample_size], is_crop=False)
        save_images(sample_images, grid_shape(len(sample_images)),
                    os.path.join(config.sample_dir, "real_samples.png"))

        def batches(epoch, first):
            return feed_batches(images, self.batch_size, run.start.data_seed, epoch, first,
                                train_rows, config.augment)

        def end_epoch(epoch, step):
            # Ours: the epoch's grid, then its GIF and the samples its quality figures score,
            # drawn and written by the run's thread; the figures computed in the background.
            self.sample_later(run.writes, config.sample_dir, "epoch_%02d.png" % epoch,
                              sample_images)
            if config.progress_gif:
                run.writes.submit(write_progress_gif, config.sample_dir, epoch + 1)
            if config.eval_every_epoch and len(holdout_images):
                run.evaluate_later(epoch, step, self.evaluation_samples_later(
                    run.writes, len(holdout_images)), holdout_images)

        with run:
            for step, epoch, idx, batch_images in run.steps(batches, end_epoch):
                batch_z = rng.uniform(-1, 1, [self.batch_size, self.z_dim])
                feed = {self.image_bytes: batch_images, self.z: batch_z, self.is_training: True}
                # Update D network, then G network twice "to make sure that d_loss does not go
                # to zero" (WGAN-GP: once every n_critic steps): d_optim and the G updates
                # chained into one op (one_run_step), run once; on summary steps the summaries
                # of its forward pass come with it.
                step_op = step_ops[self.loss_kind.g_updates_after(step)]
                if step % config.summary_freq == 0:
                    (_, losses), d_summary, g_summary = self.sess.run(
                        [step_op, self.d_sum, self.g_sum], feed)
                    run.writer.add_summary(d_summary, step)
                    run.writer.add_summary(g_summary, step)
                else:
                    _, losses = self.sess.run(step_op, feed)
                run.record(step, epoch, idx, losses)
                if step % config.sample_freq == 0:
                    self.sample_later(run.writes, config.sample_dir,
                                      "train_%02d-%04d.png" % (epoch, idx), sample_images)

    def save(self, checkpoint_dir, step):
        """Save the model's variables as `checkpoint_dir/DCGAN.model-step`; return the
        checkpoint's path (Part 4). In training these include Adam's state and the training
        position; a model used without training saves its weights alone."""
        return save_model(self, checkpoint_dir, step)

    def load(self, checkpoint_dir):
        """Restore the newest complete checkpoint in `checkpoint_dir`; return whether one was
        found (Part 4). Damaged ones are skipped, naming them (extras.run.checkpoints.load_model);
        `restored` names the one restored. G takes its averaged weights where the checkpoint
        holds them (--g_average)."""
        self.restored = load_model(self, checkpoint_dir, averaged=not self.g_average)
        return self.restored is not None

    # ------------------------------------------------------------------------------------------
    # Our additions (not in the post)
    # ------------------------------------------------------------------------------------------

    def optimizers(self, learning_rate, beta1, beta2=0.999):
        """Adam for D and for G, each running its own batch-norm updates and, with `loss_scale`,
        dynamic loss scaling (addition: train's optimisers, with WGAN-GP's beta2), and the
        training position (`position`). Returns (d_optim, g_optim, one_run_steps), the last the
        one-run steps by G update count."""
        with tf.name_scope("optimizers"), training_state():
            self.position = position_variable()
            d_norm_updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS, scope="discriminator")
            g_norm_updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS, scope="generator")
            d_adam, g_adam = loss_scaled(
                [(Adam(learning_rate, beta1, beta2, name="d_adam"), self.d_vars),
                 (Adam(learning_rate, beta1, beta2, name="g_adam"), self.g_vars)],
                self.loss_scale)
            with tf.control_dependencies(d_norm_updates):
                d_optim = d_adam.minimize(self.d_loss, var_list=self.d_vars)
            with tf.control_dependencies(g_norm_updates):
                g_optim = self.then_average_g(g_adam.minimize(self.g_loss, var_list=self.g_vars))
            # After the updates above: the copies' batch-norm ops (generator_1/...) would
            # match their scopes.
            one_run_steps = {
                g_updates: self.one_run_step(d_optim, g_adam, g_updates, g_norm_updates)
                for g_updates in self.loss_kind.g_update_counts}
        return d_optim, g_optim, one_run_steps

    def one_run_step(self, d_optim, g_adam, g_updates, g_norm_updates):
        """The training step as one op (addition): D's update, then `g_updates` G updates with
        `g_adam`, each reading the weights the update before it wrote; returns (op, losses to
        fetch with it). The first G update reuses D's pass of G (same weights, noise and batch
        statistics), whose batch-norm updates are `g_norm_updates` (bench/LEVERS.md)."""
        op, losses, fake = d_optim, dict(self.losses), self.G
        # D's weights, which the G updates leave as D's update wrote them, read once for all.
        with shared_reads():
            for update in range(g_updates):
                with tf.control_dependencies([op]), \
                        tf.variable_scope(tf.get_variable_scope(), reuse=True):
                    if update:
                        first = len(tf.get_collection(tf.GraphKeys.UPDATE_OPS))
                        fake = self.generator(self.z)
                        g_norm_updates = tf.get_collection(tf.GraphKeys.UPDATE_OPS)[first:]
                    losses["g_loss"] = self.loss_kind.g_loss(
                        self.discriminator(fake, reuse=True)[1])
                    with tf.control_dependencies(g_norm_updates):  # as g_optim runs them
                        op = self.then_average_g(g_adam.minimize(losses["g_loss"],
                                                                 var_list=self.g_vars))
        return op, losses

    def averaged_getter(self):
        """A variable getter that gives G's towers the moving averages of G's variables
        (addition: --g_average, after Yazici et al. 2019), for sampling only: the averages,
        batch-norm statistics included, are variables `average/<G's variable>`;
        `then_average_g` updates them."""
        g_variables = [var for var in tf.global_variables() if var.op.name.startswith("generator/")]
        with tf.variable_scope(AVERAGE_SCOPE):
            self.g_averages = {var: tf.get_variable(var.op.name, trainable=False,
                                                    initializer=var.initial_value)
                               for var in g_variables}
        by_name = {var.op.name: average for var, average in self.g_averages.items()}

        def averaged(getter, name, *args, **kwargs):
            return by_name[name] if name in by_name else getter(name, *args, **kwargs)
        return averaged

    def inference_d(self, images, custom_getter=None):
        """D's logits on `images` in an inference tower (addition)."""
        return inference_tower(
            lambda: self.discriminator(images, reuse=True, train=self.is_training)[1],
            custom_getter)

    def sample_towers(self, custom_getter=None):
        """The sampler (G in an inference tower) and the losses the sample grids report, of D
        in inference mode on the sample images and on the sampler's, as the post's grids
        (is_training False) had them (addition); on the variables `custom_getter` gives."""
        sampler = inference_tower(lambda: self.generator(self.z, self.is_training),
                                  custom_getter)
        with tf.name_scope("sample_losses"):
            losses = self.loss_kind.terms(Towers(
                self.inference_d(self.images, custom_getter),
                self.inference_d(sampler, custom_getter), self.images, sampler,
                lambda images: self.inference_d(images, custom_getter)))
        return sampler, losses

    def then_average_g(self, update):
        """`update` (a G update), then with --g_average each average a step towards its
        variable, average -= (average - variable) * (1 - decay) (addition)."""
        if not self.g_average:
            return update
        with tf.control_dependencies([update]):
            return tf.group(*[tf.assign_sub(average, (average - var.read_value())
                                            * (1.0 - self.g_average))
                              for var, average in self.g_averages.items()], name="average_g")

    def sample(self, sample_dir, name, sample_images, towers=None):
        """Write the grid of G(sample noise) and print the losses on `sample_images` (addition:
        the post's sample grids), batch norm in inference mode, as a user of the model gets;
        `towers`: the (sampler, sample losses) to run, by default the model's own."""
        sampler, losses = towers or (self.sampler, self.sample_losses)
        samples, d_loss, g_loss = self.sess.run(
            [sampler, losses["d_loss"], losses["g_loss"]],
            {self.z: self.sess.run(self.sample_z), self.images: sample_images,
             self.is_training: False})
        path = save_sample_grid(samples, grid_shape(len(samples)), sample_dir, name)
        # One write, so that no line of the training loop's lands inside it.
        sys.stdout.write("[Sample] d_loss: %.8f, g_loss: %.8f, grid: %s\n" % (d_loss, g_loss, path))

    def sample_later(self, writes, sample_dir, name, sample_images):
        """`sample` of the weights as they are now, drawn from their snapshot by the thread of
        `writes` (extras.utils.BackgroundWrites) while training goes on (addition)."""
        self.snapshot.take(self.sess, writes, self.sample, sample_dir, name, sample_images,
                           self.snapshot_towers)

    def generate(self, z, sampler=None):
        """G(z) in [-1, 1], batch norm in inference mode, as the training grids (addition:
        using the trained model, Part 5); `sampler`: another tower of G, as sample's `towers`."""
        return self.sess.run(self.sampler if sampler is None else sampler,
                             {self.z: z, self.is_training: False})

    def evaluate(self, real, seed=0):
        """Quality figures of as many generated images as `real` ones (uint8), see
        extras.run.metrics (addition)."""
        # Imported here, where figures are computed: it loads dlib and OpenCV, which nothing
        # else in the model needs.
        import extras.run.metrics
        return extras.run.metrics.evaluate(self.evaluation_samples(len(real), seed), real, seed)

    def evaluation_samples_later(self, writes, count):
        """A future of evaluation_samples(count) of the snapshot sample_later last took, drawn
        by the thread of `writes` while training goes on (addition)."""
        return self.snapshot.read_later(writes, self.evaluation_samples, count, 0,
                                        self.snapshot_towers[0])

    def evaluation_samples(self, count, seed=0, sampler=None):
        """`count` generated images (uint8) to score (addition), of `sampler` as generate's.
        The noise comes from `seed`, so figures of successive epochs compare like with like."""
        z = np.random.default_rng(seed).uniform(-1, 1, [count, self.z_dim])
        chunks = np.array_split(z, max(1, count // self.batch_size))
        return to_uint8(inverse_transform(np.concatenate([self.generate(c, sampler)
                                                          for c in chunks])))


# ----------------------------------------------------------------------------------------------
# Our additions (not in the post): loss kinds beside the posts', image sizes, the gradient penalty
# ----------------------------------------------------------------------------------------------

class WGANGPLoss(GANLoss):
    """WGAN-GP (Gulrajani et al. 2017, algorithm 1): a critic with layer norm scores images; its
    loss is -(the `wasserstein_estimate`, mean score of real minus mean score of fake) +
    gp_lambda * the gradient penalty; G's is minus the mean score of its images; G updates once
    every n_critic critic updates, so that it learns from a near-optimal critic."""

    name = "wgan-gp"
    help = "Wasserstein loss with gradient penalty"
    adam = {"learning_rate": 0.0001, "beta1": 0.5, "beta2": 0.9}
    reported = ("d_loss", "g_loss", "gradient_penalty", "wasserstein_estimate")
    d_summaries = reported
    g_update_counts = (0, 1)

    def __init__(self, gp_lambda=10.0, n_critic=5, **options):
        self.gp_lambda, self.n_critic = gp_lambda, n_critic

    def d_norm(self, layer, fused_bn):
        # Per image: the penalty takes the critic's gradient image by image.
        return layer_norm(name="d_ln%d" % layer)

    def d_output(self, logit):
        return logit  # a score, not a probability

    def terms(self, towers):
        estimate = tf.subtract(tf.reduce_mean(towers.real_logits),
                               tf.reduce_mean(towers.fake_logits), name="wasserstein_estimate")
        penalty = gradient_penalty(towers.critic, towers.real, towers.fake)
        return {"d_loss": tf.add(-estimate, self.gp_lambda * penalty, name="d_loss"),
                "g_loss": self.g_loss(towers.fake_logits), "gradient_penalty": penalty,
                "wasserstein_estimate": estimate}

    def g_loss(self, fake_logits, name="g_loss"):
        return tf.negative(tf.reduce_mean(fake_logits), name=name)

    def perceptual_loss(self, fake_logits):
        return -fake_logits[:, 0]

    def g_updates_after(self, step):
        return int(step % self.n_critic == 0)


class LSGANLoss(GANLoss):
    """The least-squares loss (Mao et al. 2017): D regresses its output to 1 on real images and
    0 on fakes, 0.5 * mean squared error each; G's loss is 0.5 * mean (D(G(z)) - 1)^2. The
    posts' D (batch norm), updates and Adam settings otherwise."""

    name = "lsgan"
    help = "least-squares loss"

    def d_output(self, logit):
        return logit  # D's regression output

    def error(self, logits, label, name):
        return tf.multiply(0.5, tf.reduce_mean(tf.square(logits - label)), name=name)

    def perceptual_loss(self, fake_logits):
        return 0.5 * tf.reduce_sum(tf.square(fake_logits - 1.0), axis=1)


# The loss kinds by name, for --loss: the posts' first.
LOSSES = {kind.name: kind for kind in (GANLoss, WGANGPLoss, LSGANLoss)}


# Image sizes the model builds: s x 2^k with a first (G) / last (D) feature map of s x s,
# s in 4..7, so 28, 56 and 112 (the logo walkthrough's sizes) work as well as the posts' 64.
BASE_SIZES = range(4, 8)
MIN_IMAGE_SIZE = 16


def base_size(image_size):
    """The s of image_size = s x 2^k with s at most 7 (56 -> 7, 64 -> 4, 50 -> 25)."""
    size = image_size
    while size > max(BASE_SIZES) and size % 2 == 0:
        size //= 2
    return size


def valid_image_size(image_size):
    """True for the sizes the model can build (addition: Part 4's check, widened).

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


def inference_tower(build, custom_getter=None):
    """What `build` makes on the model's variables (or those `custom_getter` gives), for
    inference only (addition): batch norm follows `is_training`, and the tower's batch-norm
    updates, which no step runs, are left out of UPDATE_OPS."""
    updates = tf.get_collection_ref(tf.GraphKeys.UPDATE_OPS)
    first = len(updates)
    with tf.variable_scope(tf.get_variable_scope(), reuse=True, custom_getter=custom_getter):
        tower = build()
    del updates[first:]
    return tower


def width_multiple(image_size, size):
    """Channel multiple of gf_dim/df_dim for a feature map of `size` (8, 4, 2, 1 at 64x64)."""
    return min(8, image_size // (2 * size))


def gradient_penalty(critic, real, fake, name="gradient_penalty"):
    """WGAN-GP's penalty: mean over images of (||d critic / d x|| - 1)^2 at random points x on
    the lines between real and fake images (addition: Gulrajani et al. 2017, equation 3).

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
