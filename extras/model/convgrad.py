"""Gradients of Part 4's layer ops that let a CPU run the step faster (project addition beside
`conv2d`, `conv2d_transpose` and `lrelu`); the values are TensorFlow's, the variables untouched.

`leaky_relu_gradient_from_output()`: LeakyRelu's gradient read from the op's output rather than
its input. TensorFlow's reads the input, the pre-activation, which grappler's remapper removes when
it fuses Conv2D + BiasAdd + LeakyRelu into one op: the fusion then fails, with an error line on
every run, and the step runs unfused. For a leak above 0 the output is positive exactly where the
input is, so LeakyReluGrad given the output computes the same gradient.

`patch_weight_gradients()`: a faster weight gradient for the convolutions whose output map is small.

On a CPU, oneDNN's weight-gradient kernel in TensorFlow 2.21 is at its slowest on D's last
convolution and G's first transposed one (8x8 <-> 4x4 at 64x64, 256 <-> 512 channels): about
twice PyTorch's time for the same call. There the same gradient as one matrix product of the
input's 5x5 patches with the output gradient takes a third of the time (bench/LEVERS.md).
`patch_weight_gradients()` gives the ops built inside it that gradient where the output map is
at most `PATCH_GRADIENT_MAX_SIDE` on a side and no GPU is visible; TensorFlow's own elsewhere.
The values are TensorFlow's up to the order of summation.
"""
import extras.machine.tfenv  # noqa: F401  (first: TensorFlow then loads without Keras; see it)

import contextlib

import numpy as np
import tensorflow.compat.v1 as tf

from extras.machine.device import gpu_visible

# The largest output side measured faster by patches (4x4; at 8x8 TensorFlow's kernel wins).
PATCH_GRADIENT_MAX_SIDE = 4
CONV2D_GRADIENT = "Conv2DPatchWeightGradient"
CONV2D_TRANSPOSE_GRADIENT = "Conv2DTransposePatchWeightGradient"
LEAKY_RELU_GRADIENT = "LeakyReluGradientFromOutput"


@contextlib.contextmanager
def leaky_relu_gradient_from_output():
    """Within: LeakyRelu ops built take their gradient from their output (see the module)."""
    with tf.get_default_graph().gradient_override_map({"LeakyRelu": LEAKY_RELU_GRADIENT}):
        yield


@tf.RegisterGradient(LEAKY_RELU_GRADIENT)
def leaky_relu_gradient(op, grad):
    """LeakyReluGrad on the output where that is exact (a leak above 0), else on the input."""
    alpha = op.get_attr("alpha")
    features = op.outputs[0] if alpha > 0 else op.inputs[0]
    return tf.raw_ops.LeakyReluGrad(gradients=grad, features=features, alpha=alpha)


@contextlib.contextmanager
def patch_weight_gradients():
    """Within: Conv2D and Conv2DBackpropInput (transposed convolution) ops built take the patch
    weight gradient where it wins (see the module)."""
    with tf.get_default_graph().gradient_override_map({
            "Conv2D": CONV2D_GRADIENT, "Conv2DBackpropInput": CONV2D_TRANSPOSE_GRADIENT}):
        yield


def weight_gradient(inputs, out_gradient, weight_shape, strides, padding):
    """d loss / d weights of conv2d(inputs, weights) given d loss / d output (NHWC, no dilation)."""
    side = out_gradient.shape[1]
    if (side is None or side > PATCH_GRADIENT_MAX_SIDE or padding != "SAME"
            or not inputs.shape[1:].is_fully_defined() or gpu_visible()):
        return tf.nn.conv2d_backprop_filter(inputs, weight_shape, out_gradient, strides, padding)
    k_h, k_w, in_channels, out_channels = weight_shape
    # Each output position's k_h x k_w x in_channels window, in the weights' own order, so one
    # product sums window x gradient over the batch and the positions.
    patches = windows(inputs, k_h, k_w, strides[1:3])
    gradient = tf.matmul(tf.reshape(patches, [-1, k_h * k_w * in_channels]),
                         tf.reshape(out_gradient, [-1, out_channels]), transpose_a=True)
    return tf.reshape(gradient, weight_shape)


def windows(inputs, k_h, k_w, strides):
    """The k_h x k_w windows of `inputs` (NHWC, static shape) a convolution of `strides` (rows,
    columns) with SAME padding reads, N x output positions x window: what ExtractImagePatches
    gives, as a gather of the padded input's pixels. A gather keeps the input's type, where the
    bfloat16 rewrite runs ExtractImagePatches in float32 with a cast each way
    (bench/LEVERS.md)."""
    height, width, channels = inputs.shape.as_list()[1:]
    tops, pad_top, padded_height = same_padding(height, k_h, strides[0])
    lefts, pad_left, padded_width = same_padding(width, k_w, strides[1])
    padded = tf.pad(inputs, [[0, 0], [pad_top, padded_height - height - pad_top],
                             [pad_left, padded_width - width - pad_left], [0, 0]])
    # Pixel numbers in the padded image, by output row, output column, window row, column.
    rows = tops[:, None, None, None] + np.arange(k_h)[:, None]
    cols = lefts[:, None, None] + np.arange(k_w)
    pixels = (rows * padded_width + cols).reshape(-1)
    flat = tf.reshape(padded, [-1, padded_height * padded_width, channels])
    return tf.gather(flat, pixels, axis=1)


def same_padding(size, kernel, stride):
    """Along one axis of a convolution, as TensorFlow pads for SAME: (each window's first pixel
    in the padded input, the padding before, the padded size)."""
    starts = np.arange(-(-size // stride)) * stride
    padded = max(starts[-1] + kernel, size)
    return starts, (padded - size) // 2, padded


def op_settings(op):
    """(strides, padding) of a convolution op."""
    return op.get_attr("strides"), op.get_attr("padding").decode()


@tf.RegisterGradient(CONV2D_GRADIENT)
def conv2d_gradient(op, grad):
    """Conv2D(inputs, weights): TensorFlow's input gradient, `weight_gradient`'s."""
    inputs, weights = op.inputs
    strides, padding = op_settings(op)
    return (tf.nn.conv2d_backprop_input(tf.shape(inputs), weights, grad, strides, padding),
            weight_gradient(inputs, grad, weights.shape.as_list(), strides, padding))


@tf.RegisterGradient(CONV2D_TRANSPOSE_GRADIENT)
def conv2d_transpose_gradient(op, grad):
    """Conv2DBackpropInput(output shape, weights, value), the transposed convolution: none for
    the shape, `weight_gradient`'s (the transposed op's output is the convolution's input), and
    TensorFlow's for the value."""
    _, weights, value = op.inputs
    strides, padding = op_settings(op)
    return (None, weight_gradient(grad, value, weights.shape.as_list(), strides, padding),
            tf.nn.conv2d(grad, weights, strides, padding))
