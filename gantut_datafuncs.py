"""Data-related functions: the layer ops and the dataset file list (Part 4 of "Generative
Adversarial Network (GAN) in TensorFlow").

- the layer ops `batch_norm`, `conv2d`, `conv2d_transpose`, `lrelu`, `linear`, each weight named
  under its layer's variable scope (`discriminator/d_h0_conv/w`, ...);
- `dataset_files`: a dataset folder's images;
- our additions after the post's names: layer norm for the WGAN-GP critic, and the loss helpers
  both stages share.
"""
import extras.machine.tfenv  # noqa: F401  (first: TensorFlow then loads without Keras; see it)

import contextlib
import os

import tensorflow.compat.v1 as tf

from extras.model.convgrad import leaky_relu_gradient_from_output, patch_weight_gradients
from extras.utils import image_files

# TensorFlow 1's graph mode, where the posts' code runs: placeholders and a Session work outside
# a `tf.Graph()` block too, as in Part 5's own script.
tf.disable_eager_execution()


class batch_norm(object):
    """Batch normalisation, called as `bn(x, train)` (Part 4): the batch's statistics when
    `train` (a bool or bool tensor), else moving averages (decay `momentum`), whose update ops go
    into UPDATE_OPS; `fused` (ours): the same in TensorFlow's fused kernel."""

    def __init__(self, epsilon=1e-5, momentum=0.9, name="batch_norm", fused=False):
        self.epsilon = epsilon
        self.momentum = momentum
        self.name = name
        self.fused = fused

    def __call__(self, x, train=True):
        with tf.variable_scope(self.name):
            channels = x.shape[-1:]
            beta, gamma = offset_and_scale(channels)
            moving_mean = tf.get_variable("moving_mean", channels, trainable=False,
                                          initializer=tf.zeros_initializer())
            moving_variance = tf.get_variable("moving_variance", channels, trainable=False,
                                              initializer=tf.ones_initializer())
            if not isinstance(train, bool):  # a tensor: the mode is chosen at run time
                train = tf.convert_to_tensor(train, dtype=tf.bool)
            normalise = fused_normalisation if self.fused else plain_normalisation
            y, batch_mean, batch_variance = normalise(x, train, beta, gamma, moving_mean,
                                                      moving_variance, self.epsilon)
            for moving, batch in ((moving_mean, batch_mean), (moving_variance, batch_variance)):
                update = tf.assign_sub(moving, (moving - batch) * (1.0 - self.momentum))
                tf.add_to_collection(tf.GraphKeys.UPDATE_OPS, update)
            return y


def conv2d(input_, output_dim, k_h=5, k_w=5, d_h=2, d_w=2, stddev=0.02, name="conv2d"):
    """A strided convolution with SAME padding: weights `w`, then `biases` (Part 4)."""
    with tf.variable_scope(name):
        w = tf.get_variable("w", [k_h, k_w, input_.shape[-1], output_dim],
                            initializer=tf.truncated_normal_initializer(stddev=stddev))
        with patch_weight_gradients():  # ours: a faster weight gradient on small maps
            conv = tf.nn.conv2d(input_, w, strides=[1, d_h, d_w, 1], padding="SAME")
        biases = tf.get_variable("biases", [output_dim], initializer=tf.zeros_initializer())
        return tf.nn.bias_add(conv, biases)


def conv2d_transpose(input_, output_shape, k_h=5, k_w=5, d_h=2, d_w=2, stddev=0.02,
                     name="conv2d_transpose", with_w=False):
    """A transposed ("de-") convolution to `output_shape` [batch, h, w, channels] (Part 4); a
    batch of None is read from `input_` at run time."""
    with tf.variable_scope(name):
        w = tf.get_variable("w", [k_h, k_w, output_shape[-1], input_.shape[-1]],
                            initializer=tf.random_normal_initializer(stddev=stddev))
        # concat, not stack: grappler's float16 rewrite crashes on a stacked (Pack) shape.
        dynamic_shape = tf.concat([tf.shape(input_)[:1], list(output_shape[1:])], 0)
        with patch_weight_gradients():  # ours: a faster weight gradient on small maps
            deconv = tf.nn.conv2d_transpose(input_, w, output_shape=dynamic_shape,
                                            strides=[1, d_h, d_w, 1])
        deconv.set_shape([input_.shape[0]] + list(output_shape[1:]))
        biases = tf.get_variable("biases", [output_shape[-1]], initializer=tf.zeros_initializer())
        deconv = tf.nn.bias_add(deconv, biases)
        return (deconv, w, biases) if with_w else deconv


def lrelu(x, leak=0.2, name="lrelu"):
    """Leaky ReLU, max(x, leak * x) (Part 4)."""
    # One op and one gradient op: faster than tf.maximum in bfloat16 (bench/LEVERS.md); its
    # gradient read from its output lets grappler fuse it into the convolution before it (ours).
    with leaky_relu_gradient_from_output():
        return tf.nn.leaky_relu(x, alpha=leak, name=name)


def linear(input_, output_size, scope=None, stddev=0.02, bias_start=0.0, with_w=False):
    """A fully connected layer: variables `Matrix` and `bias` (Part 4)."""
    with tf.variable_scope(scope or "Linear"):
        matrix = tf.get_variable("Matrix", [input_.shape[-1], output_size], tf.float32,
                                 tf.random_normal_initializer(stddev=stddev))
        bias = tf.get_variable("bias", [output_size],
                               initializer=tf.constant_initializer(bias_start))
        out = tf.matmul(input_, matrix) + bias
        return (out, matrix, bias) if with_w else out


def dataset_files(root):
    """Every .png/.jpg/.jpeg file (any case) below `root`, searched recursively, sorted, hidden
    names left out (Part 4; see `extras.utils.image_files`)."""
    # Recursively: the post looked only at the top, missing the aligned images in sub-folders.
    return [os.path.join(root, path) for path in image_files(root)]


# ----------------------------------------------------------------------------------------------
# Our additions (not in the post)
# ----------------------------------------------------------------------------------------------

def plain_normalisation(x, train, beta, gamma, moving_mean, moving_variance, epsilon):
    """batch_norm's arithmetic in separate ops (addition: the post's batch norm, written out):
    (normalised x, the batch's mean, its variance)."""
    batch_mean, batch_variance = tf.nn.moments(x, list(range(x.shape.ndims - 1)))
    if isinstance(train, bool):  # a tower of one mode: nothing to choose at run time
        mean, variance = ((batch_mean, batch_variance) if train
                          else (moving_mean, moving_variance))
    else:
        # tf.where rather than tf.cond: both statistics are cheap, and no control flow keeps
        # the graph easy for grappler and oneDNN to fuse.
        mean = tf.where_v2(train, batch_mean, moving_mean)
        variance = tf.where_v2(train, batch_variance, moving_variance)
    return (tf.nn.batch_normalization(x, mean, variance, beta, gamma, epsilon), batch_mean,
            batch_variance)


def fused_normalisation(x, train, beta, gamma, moving_mean, moving_variance, epsilon):
    """batch_norm's arithmetic in TensorFlow's fused kernel (addition; the trainer's --fused_bn
    chooses it where it is faster): (normalised x, the statistics for the moving averages: the
    batch's in training, else the moving ones, which leaves them unchanged)."""
    def batch_statistics():
        y, mean, variance = tf.nn.fused_batch_norm(x, gamma, beta, epsilon=epsilon,
                                                   is_training=True)
        # The fused kernel returns the unbiased (n / (n - 1)) variance; moments' is biased. n
        # from x's shape: a Size of x would keep x in float32 under the bfloat16 rewrite, which
        # then casts the whole activation for it.
        n = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
        return y, mean, variance * ((n - 1.0) / n)

    def moving_statistics():
        mean, variance = tf.identity(moving_mean), tf.identity(moving_variance)
        y, _, _ = tf.nn.fused_batch_norm(x, gamma, beta, mean=mean, variance=variance,
                                         epsilon=epsilon, is_training=False)
        return y, mean, variance
    if isinstance(train, bool):  # a tower of one mode: no switch
        return batch_statistics() if train else moving_statistics()
    # The cond's gradient needs its intermediates as outputs, and a cond a Session has already
    # run cannot grow them (image completion takes gradients of a restored model): make them now.
    tf.experimental.output_all_intermediates(True)
    return tf.cond(train, batch_statistics, moving_statistics)


@contextlib.contextmanager
def shared_reads():
    """Within: the towers built read each trainable variable once, all of them the same read
    (addition). Towers that run on the same weights in one step then share one read, and under
    the bfloat16 rewrite one cast, instead of one each (bench/LEVERS.md)."""
    reads = {}

    def read_once(getter, name, *args, **kwargs):
        variable = getter(name, *args, **kwargs)
        if not kwargs.get("trainable", True):  # moving averages: assigned to, not only read
            return variable
        if name not in reads:
            reads[name] = variable.read_value()
        return reads[name]
    with tf.variable_scope(tf.get_variable_scope(), custom_getter=read_once):
        yield


def offset_and_scale(channels):
    """The learned `beta` (offset, from 0) and `gamma` (scale, from 1) of a normalisation, one
    per channel (addition: shared by batch_norm and layer_norm)."""
    beta = tf.get_variable("beta", channels, initializer=tf.zeros_initializer())
    gamma = tf.get_variable("gamma", channels, initializer=tf.ones_initializer())
    return beta, gamma


class layer_norm(object):
    """Layer normalisation, called as `ln(x, train)` like batch_norm (`train` changes nothing):
    each image over its own height, width and channels, then `gamma` and `beta` per channel
    (addition: the WGAN-GP critic's normalisation)."""
    # No image affects another: the gradient penalty takes the critic's gradient per image.

    def __init__(self, epsilon=1e-5, name="layer_norm"):
        self.epsilon = epsilon
        self.name = name

    def __call__(self, x, train=True):
        with tf.variable_scope(self.name):
            beta, gamma = offset_and_scale(x.shape[-1:])
            mean, variance = tf.nn.moments(x, list(range(1, x.shape.ndims)), keepdims=True)
            return tf.nn.batch_normalization(x, mean, variance, beta, gamma, self.epsilon)


def sigmoid_loss(logits, label, name):
    """Mean sigmoid cross-entropy of `logits` against a constant `label` (addition: the posts'
    losses, shared with the pix2pix stage)."""
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        logits=logits, labels=tf.fill(tf.shape(logits), label)), name=name)


def has_prefix(var, prefix):
    """True if a variable's own layer scope starts with `prefix` (addition: the
    posts' `d_`/`g_` split, shared with the pix2pix stage)."""
    return any(part.startswith(prefix) for part in var.op.name.split("/"))
