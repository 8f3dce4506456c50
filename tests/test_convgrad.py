"""The layer ops' gradients of extras/model/convgrad.py are TensorFlow's own, in float32 real
sessions: conv2d's and conv2d_transpose's weight gradient by patches, used only on small output
maps, and lrelu's gradient from its output, which lets a training step fuse D's first layer into
one op."""
import os
import sys

import numpy as np
import pytest
import tensorflow.compat.v1 as tf

from conftest import REPO
from extras.model.convgrad import PATCH_GRADIENT_MAX_SIDE
from extras.machine.cpu import bf16_wins, fused_batch_norm_wins
from gantut_datafuncs import conv2d, conv2d_transpose, lrelu

sys.path.insert(0, os.path.join(REPO, "bench"))
import train_throughput  # noqa: E402

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
    assert ("GatherV2" in types) == (-(-side // 2) <= PATCH_GRADIENT_MAX_SIDE)


@pytest.mark.parametrize("side", [4, 8])
def test_conv2d_transpose_weight_gradient_is_tensorflows(side):
    out_shape = [4, 2 * side, 2 * side, 3]
    values, types = gradients_both_ways(
        lambda x: conv2d_transpose(x, [None] + out_shape[1:], name="d"),
        lambda x, w: tf.nn.conv2d_transpose(x, w, out_shape, [1, 2, 2, 1]), [4, side, side, 6])
    assert_close(values)
    assert ("GatherV2" in types) == (side <= PATCH_GRADIENT_MAX_SIDE)


@pytest.mark.parametrize("leak", [0.2, 0.01, 1.5, 0.0, -0.3])
def test_lrelu_gradient_is_tensorflows(leak):
    with tf.Graph().as_default(), tf.Session() as sess:
        x = tf.constant(np.random.default_rng(0).normal(size=[3, 5, 5, 4]), tf.float32)
        weighting = tf.constant(np.random.default_rng(1).normal(size=[3, 5, 5, 4]), tf.float32)
        ours = tf.gradients(tf.reduce_sum(lrelu(x, leak) * weighting), x)
        theirs = tf.gradients(tf.reduce_sum(tf.nn.leaky_relu(x, leak) * weighting), x)
        np.testing.assert_array_equal(*sess.run([ours, theirs]))


def test_a_training_step_fuses_ds_first_convolution_bias_and_lrelu():
    """At this machine's defaults, grappler's remapper fuses Conv2D + BiasAdd + LeakyRelu of D's
    first layer (no normalisation between) in each of the step's four passes of D."""
    with train_throughput.tf_training(2, bf16_wins(), 16, 4, fused_bn=fused_batch_norm_wins()) \
            as (dcgan, train):
        rng = np.random.default_rng(0)
        work = iter(lambda: (rng.uniform(-1, 1, [4, 16, 16, 3]), rng.uniform(-1, 1, [4, 100])),
                    None)
        traces, _ = train_throughput.traced_step(dcgan, train, work)
    first_layer = {node.node_name: train_throughput.op_type(node)
                   for stats in traces for device in stats.dev_stats
                   for node in device.node_stats if node.node_name.endswith("discriminator/lrelu")
                   or node.node_name.endswith("discriminator_1/lrelu")}
    assert len(first_layer) == 4, first_layer
    assert all(train_throughput.base_op_type(kind) == "FusedConv2D"
               for kind in first_layer.values()), first_layer
