"""The Session (ours): its thread limit and precision rewrites."""
import extras.machine.tfenv  # noqa: F401  (first: TensorFlow then loads without Keras; see it)

import contextlib

import tensorflow.compat.v1 as tf
from tensorflow.core.protobuf import rewriter_config_pb2


@contextlib.contextmanager
def new_session(threads, bf16, seed=None, float16=False):
    """A Session on a fresh graph, with session_config's settings and, if given, the graph's
    random seed."""
    with tf.Graph().as_default(), \
            tf.Session(config=session_config(threads, bf16, float16)) as sess:
        if seed is not None:
            tf.set_random_seed(seed)
        yield sess


def session_config(threads, bf16, float16=False):
    """The Session's settings: a thread limit (Part 5's advice) and, if asked, bfloat16 on
    oneDNN or float16 on NVIDIA GPUs (grappler's automatic mixed precision)."""
    config = tf.ConfigProto(intra_op_parallelism_threads=threads,
                            inter_op_parallelism_threads=threads)
    if bf16:
        config.graph_options.rewrite_options.auto_mixed_precision_onednn_bfloat16 = \
            rewriter_config_pb2.RewriterConfig.ON
    if float16:
        config.graph_options.rewrite_options.auto_mixed_precision = \
            rewriter_config_pb2.RewriterConfig.ON
    return config
