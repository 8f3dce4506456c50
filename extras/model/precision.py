"""float16 mixed precision on NVIDIA GPUs (ours): what --mixed_precision does on this machine,
and Adam with dynamic loss scaling."""
import extras.machine.tfenv  # noqa: F401  (first: TensorFlow then loads without Keras; see it)

import collections
import os

import tensorflow.compat.v1 as tf

# A test switch: loss scaling on the CPU, in float32 (TensorFlow 2.21's float16 emulation for
# CPUs, auto_mixed_precision_cpu, crashes on this graph: docs/gpu-and-cluster.md).
LOSS_SCALE_ON_CPU = "GANTUT_LOSS_SCALE_ON_CPU"


# What --mixed_precision does here: the float16 rewrite on or off, the loss scale's settings
# (DynamicLossScale's arguments; None: no loss scaling), the words for the start-up line.
MixedPrecision = collections.namedtuple("MixedPrecision", "float16 loss_scale words")


def mixed_precision_plan(asked, gpu):
    """What --mixed_precision (`asked`) does where a GPU is (`gpu`) or is not visible."""
    if not asked:
        return MixedPrecision(False, None, "float16 off")
    if gpu:
        return MixedPrecision(True, {}, "float16 on, with dynamic loss scaling")
    if os.environ.get(LOSS_SCALE_ON_CPU) == "1":
        return MixedPrecision(False, {}, "float16 off, loss scaling on (%s=1)" % LOSS_SCALE_ON_CPU)
    return MixedPrecision(False, None, "float16 off (--mixed_precision is for NVIDIA GPUs; on a "
                                       "CPU, --bf16)")


def loss_scaled(adams, settings):
    """Each (Adam, its var_list) of `adams`, in the order they minimize, wrapped in dynamic loss
    scaling with `settings` (tf's DynamicLossScale arguments); the Adams alone if None."""
    if settings is None:
        return [adam for adam, _ in adams]
    scaled = []
    for adam, var_list in adams:
        # Adam's variables made here, as float32 training makes them: inside the loss scaler's
        # cond they would lose their name scope, and checkpoints would not fit across the flag.
        adam._create_slots(var_list)  # pylint: disable=protected-access
        with tf.name_scope("loss_scale/" + adam.get_name()):
            scale = tf.mixed_precision.DynamicLossScale(**settings)
        scaled.append(tf.mixed_precision.MixedPrecisionLossScaleOptimizer(adam, scale))
    return scaled
