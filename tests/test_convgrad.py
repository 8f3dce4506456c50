"""conv2d's and conv2d_transpose's weight gradient by patches (extras/convgrad.py) is TensorFlow's
own, in float32 real sessions, and is used only on small output maps."""
import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from extras.convgrad import PATCH_GRADIENT_MAX_SIDE
from gantut_datafuncs import conv2d, conv2d_transpose

RTOL = 1e-5


def gradients_both_ways(build, reference, in_shape):
    """(ours, TensorFlow's) gradients of a random weighting of the layer's output with respect to
    its input and its weights, and the op types of the graph."""
    with tf.Graph().as_default(), tf.Session() as sess:
        tf.set_random_seed(0)
        x = tf.constant(np.random.default_rng(0).normal(size=in_shape), tf.float32)
        out = build(x)
        w = tf.trainable_variables()[0]
        assert w.op.name.endswith("/w")
        expected_out = reference(x, w)
        weighting = tf.constant(np.random.default_rng(1).normal(size=out.shape), tf.float32)
        ours = tf.gradients(tf.reduce_sum(out * weighting), [x, w])
        theirs = tf.gradients(tf.reduce_sum(expected_out * weighting), [x, w])
        sess.run(tf.global_variables_initializer())
        values = sess.run([ours, theirs])
        types = {op.type for op in tf.get_default_graph().get_operations()}
    return values, types


def assert_close(values):
    for ours, theirs in zip(*values):
        scale = np.abs(theirs).max()
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=RTOL * scale)


@pytest.mark.parametrize("side", [8, 7, 16])
def test_conv2d_weight_gradient_is_tensorflows(side):
    values, types = gradients_both_ways(
        lambda x: conv2d(x, 6, name="c"),
        lambda x, w: tf.nn.conv2d(x, w, [1, 2, 2, 1], "SAME"), [4, side, side, 5])
    assert_close(values)
    assert ("ExtractImagePatches" in types) == (-(-side // 2) <= PATCH_GRADIENT_MAX_SIDE)


@pytest.mark.parametrize("side", [4, 8])
def test_conv2d_transpose_weight_gradient_is_tensorflows(side):
    out_shape = [4, 2 * side, 2 * side, 3]
    values, types = gradients_both_ways(
        lambda x: conv2d_transpose(x, [None] + out_shape[1:], name="d"),
        lambda x, w: tf.nn.conv2d_transpose(x, w, out_shape, [1, 2, 2, 1]), [4, side, side, 6])
    assert_close(values)
    assert ("ExtractImagePatches" in types) == (side <= PATCH_GRADIENT_MAX_SIDE)
