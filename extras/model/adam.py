"""Adam as the posts use it, with fewer ops a step (project addition beside Part 4's optimisers).

compat.v1's `tf.train.AdamOptimizer` reads its two bias-correction accumulators, beta1^t and
beta2^t, once for every variable it updates: two ReadVariableOps a variable, 36 a G update of
the posts' model, each an op the host dispatches every step. `Adam` reads them once an update.
They change only in the optimiser's `_finish`, after every variable's update, so each read gave
the same value: the updates are the same to the bit (tests/test_step.py).
"""
import extras.machine.tfenv  # noqa: F401  (first: TensorFlow then loads without Keras; see it)

import tensorflow.compat.v1 as tf


class Adam(tf.train.AdamOptimizer):
    """`tf.train.AdamOptimizer`, its beta1^t and beta2^t read once an update, not once a
    variable; the same arguments, variables and checkpoints."""

    def _prepare(self):
        super()._prepare()
        # Read here, in the context (control dependencies) the variables' updates are built in.
        self._power_reads = [power.value() for power in self._get_beta_accumulators()]

    def _resource_apply_dense(self, grad, var):
        dtype = grad.dtype.base_dtype
        beta1_power, beta2_power = (tf.cast(power, dtype) for power in self._power_reads)
        return tf.raw_ops.ResourceApplyAdam(
            var=var.handle, m=self.get_slot(var, "m").handle, v=self.get_slot(var, "v").handle,
            beta1_power=beta1_power, beta2_power=beta2_power,
            lr=tf.cast(self._lr_t, dtype), beta1=tf.cast(self._beta1_t, dtype),
            beta2=tf.cast(self._beta2_t, dtype), epsilon=tf.cast(self._epsilon_t, dtype),
            grad=grad, use_locking=self._use_locking)
