"""BERT's optimizer (Google BERT `optimization.py`) for TF 2.21 `tf.compat.v1` graph mode.

As Google's `create_optimizer`: linear warmup, then linear decay computed from step 0;
AdamWeightDecay without bias correction; global-norm clipping at 1.0; slots named
`<param>/adam_m`, `<param>/adam_v` so checkpoints match Google's.
Addition: optional dynamic loss scaling for float16 mixed precision (keyword-only).
"""
from __future__ import annotations

import re

import tensorflow as tf

tf1 = tf.compat.v1


def learning_rate_schedule(global_step: tf.Tensor, init_lr: float, num_train_steps: int,
                           num_warmup_steps: int) -> tf.Tensor:
    """Google's schedule: polynomial (power 1) decay to 0 at `num_train_steps`, replaced by
    `init_lr * step / num_warmup_steps` while `step < num_warmup_steps`. The decay is
    computed from step 0, so after warmup the rate resumes at the decayed value
    (faithful to the original), not at `init_lr`."""
    learning_rate = tf.constant(value=init_lr, shape=[], dtype=tf.float32)
    # FAITHFUL: decay from step 0; warm-up REPLACES it, so training resumes at the decayed rate
    learning_rate = tf1.train.polynomial_decay(learning_rate, global_step, num_train_steps,
                                               end_learning_rate=0.0, power=1.0, cycle=False)
    if num_warmup_steps:
        global_steps_int = tf.cast(global_step, tf.int32)
        warmup_steps_int = tf.constant(num_warmup_steps, dtype=tf.int32)
        global_steps_float = tf.cast(global_steps_int, tf.float32)
        warmup_steps_float = tf.cast(warmup_steps_int, tf.float32)
        warmup_percent_done = global_steps_float / warmup_steps_float
        warmup_learning_rate = init_lr * warmup_percent_done
        is_warmup = tf.cast(global_steps_int < warmup_steps_int, tf.float32)
        learning_rate = ((1.0 - is_warmup) * learning_rate + is_warmup * warmup_learning_rate)
    return learning_rate


def create_optimizer(loss: tf.Tensor, init_lr: float, num_train_steps: int,
                     num_warmup_steps: int, use_tpu: bool, *,
                     dynamic_loss_scale: bool = False) -> tf.Operation:
    """Build the training op: gradients, clip, AdamWeightDecay update, global_step += 1.

    `use_tpu` is accepted and ignored (no CrossShardOptimizer here). With
    `dynamic_loss_scale` (float16 training) the loss is multiplied by a scale variable
    `loss_scale` (start 2**15, halved on non-finite gradients, doubled after 2000 finite
    steps); a step with non-finite gradients changes no weight or slot but still counts.
    """
    del use_tpu
    tvars = tf1.trainable_variables()
    scaler = DynamicLossScale() if dynamic_loss_scale else None
    grads = tf.gradients(loss * scaler.scale if scaler else loss, tvars)
    return apply_gradients_step(grads, tvars, init_lr, num_train_steps, num_warmup_steps,
                                scaler=scaler)


def apply_gradients_step(grads: list, tvars: list, init_lr: float, num_train_steps: int,
                         num_warmup_steps: int, *,
                         scaler: "DynamicLossScale | None" = None) -> tf.Operation:
    """The update half of `create_optimizer`, for gradients computed elsewhere (summed over
    replicas): unscale (loss scaling), clip by global norm 1.0, AdamWeightDecay, step + 1.

    With `scaler`, `grads` are of the scaled loss; a step whose gradients are not all
    finite changes no weight or slot (but counts) and halves the scale.
    """
    global_step = tf1.train.get_or_create_global_step()
    learning_rate = learning_rate_schedule(global_step, init_lr, num_train_steps,
                                           num_warmup_steps)
    optimizer = AdamWeightDecayOptimizer(
        learning_rate=learning_rate, weight_decay_rate=0.01, beta_1=0.9, beta_2=0.999,
        epsilon=1e-6, exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"])
    finite = None
    if scaler is not None:
        grads = [None if g is None else g / scaler.scale for g in grads]
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads
                                if g is not None])

    # This is how the model was pre-trained.
    (grads, _) = tf.clip_by_global_norm(grads, clip_norm=1.0)
    train_op = optimizer.apply_gradients(zip(grads, tvars), global_step=global_step,
                                         apply_if=finite)
    if scaler is not None:
        train_op = tf.group(train_op, scaler.update(finite))

    # Google's code groups the increment without ordering it after the update; it is
    # ordered here so the update always reads the pre-increment step (the intended math).
    with tf.control_dependencies([train_op]):
        new_global_step = global_step + 1
        return tf.group(train_op, [global_step.assign(new_global_step)])


def _is_resource_variable(var) -> bool:
    """Resource variables have a `handle`; TF1 reference variables (RefVariable) do not."""
    return hasattr(var, "handle")


class DynamicLossScale:
    """Loss scale for float16: non-trainable variables `loss_scale` and `loss_scale_good_steps`."""

    def __init__(self, initial: float = 2.0 ** 15, period: int = 2000) -> None:
        self.period = period
        self.scale = tf1.get_variable("loss_scale", shape=[], dtype=tf.float32, trainable=False,
                                      initializer=tf1.constant_initializer(initial))
        self.good_steps = tf1.get_variable("loss_scale_good_steps", shape=[], dtype=tf.int64,
                                           trainable=False, initializer=tf1.zeros_initializer())

    def update(self, finite: tf.Tensor) -> tf.Operation:
        grow = tf.logical_and(finite, self.good_steps + 1 >= self.period)
        new_scale = tf.where(finite, tf.where(grow, self.scale * 2.0, self.scale),
                             tf.maximum(self.scale / 2.0, 1.0))
        new_good = tf.where(tf.logical_and(finite, tf.logical_not(grow)),
                            self.good_steps + 1, tf.zeros([], tf.int64))
        return tf.group(self.scale.assign(new_scale), self.good_steps.assign(new_good))


class AdamWeightDecayOptimizer(tf1.train.Optimizer):
    """Adam with decoupled L2 weight decay and no bias correction (Google BERT's)."""
    # FAITHFUL: no bias correction; decay 0.01 skips LayerNorm/layer_norm/bias (create_optimizer)

    def __init__(self, learning_rate, weight_decay_rate: float = 0.0, beta_1: float = 0.9,
                 beta_2: float = 0.999, epsilon: float = 1e-6,
                 exclude_from_weight_decay: list[str] | None = None,
                 name: str = "AdamWeightDecayOptimizer") -> None:
        super().__init__(False, name)
        self.learning_rate = learning_rate
        self.weight_decay_rate = weight_decay_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.exclude_from_weight_decay = exclude_from_weight_decay

    def apply_gradients(self, grads_and_vars, global_step=None, name=None,
                        apply_if: tf.Tensor | None = None) -> tf.Operation:
        """Create the slots and return the update op (does not touch `global_step`).

        `apply_if` (a boolean scalar, used by loss scaling) gates all assignments.
        """
        updates = []
        for (grad, param) in grads_and_vars:
            if grad is None or param is None:
                continue
            param_name = self._get_variable_name(param.name)
            m = tf1.get_variable(name=param_name + "/adam_m", shape=param.shape.as_list(),
                                 dtype=tf.float32, trainable=False,
                                 initializer=tf1.zeros_initializer())
            v = tf1.get_variable(name=param_name + "/adam_v", shape=param.shape.as_list(),
                                 dtype=tf.float32, trainable=False,
                                 initializer=tf1.zeros_initializer())
            updates.append((grad, param, param_name, m, v))

        def assignments() -> tf.Operation:
            ops = []
            for grad, param, param_name, m, v in updates:
                if isinstance(grad, tf.IndexedSlices):
                    grad = tf.convert_to_tensor(grad)  # the update is dense in Google's too
                ops.append(self._apply_dense(grad, param, param_name, m, v))
            return tf.group(*ops)

        if apply_if is None:
            return tf.group(assignments(), name=name)
        return tf.cond(apply_if, assignments, tf.no_op, name=name)

    def _apply_dense(self, grad, param, param_name, m, v) -> tf.Operation:
        """Google's update, `m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
        param -= lr * (m / (sqrt(v) + eps) + wd * param)`.

        Resource variables (TF2's default, also in `tf.compat.v1` graph mode): two fused
        kernels. Google built the update from ~12 elementwise ops, each a full pass over
        the variable (about a sixth of a BERT-Base CPU step). `ResourceApplyAdam` with
        beta1_power = beta2_power = 0 has lr_t = lr * sqrt(1 - 0) / (1 - 0) = lr, i.e. no
        bias correction, and computes exactly that m, v and Adam step in one pass; the
        decoupled decay `lr * wd * param_old` is applied just before it. Same math; float
        rounding differs in the last bits (golden test: < 1e-6).

        Reference variables (`tf.disable_v2_behavior()`, `use_resource=False`) have no
        handle for that kernel: they get Google's elementwise ops unchanged.
        """
        if not all(_is_resource_variable(x) for x in (param, m, v)):
            return self._apply_dense_elementwise(grad, param, param_name, m, v)
        lr = tf.cast(self.learning_rate, tf.float32)
        deps = []
        if self._do_use_weight_decay(param_name):
            deps.append(param.assign_sub(lr * self.weight_decay_rate * param.read_value()))
        with tf.control_dependencies(deps):
            zero = tf.constant(0.0, tf.float32)
            return tf.raw_ops.ResourceApplyAdam(
                var=param.handle, m=m.handle, v=v.handle, beta1_power=zero, beta2_power=zero,
                lr=lr, beta1=tf.constant(self.beta_1, tf.float32),
                beta2=tf.constant(self.beta_2, tf.float32),
                epsilon=tf.constant(self.epsilon, tf.float32), grad=grad)

    def _apply_dense_elementwise(self, grad, param, param_name, m, v) -> tf.Operation:
        """Google's original update op by op (for reference variables)."""
        # FAITHFUL: Google's AdamWeightDecayOptimizer.apply_gradients, verbatim math.
        next_m = tf.multiply(self.beta_1, m) + tf.multiply(1.0 - self.beta_1, grad)
        next_v = (tf.multiply(self.beta_2, v)
                  + tf.multiply(1.0 - self.beta_2, tf.square(grad)))
        update = next_m / (tf.sqrt(next_v) + self.epsilon)
        if self._do_use_weight_decay(param_name):
            update += self.weight_decay_rate * param
        next_param = param - self.learning_rate * update
        return tf.group(param.assign(next_param), m.assign(next_m), v.assign(next_v))

    def _do_use_weight_decay(self, param_name: str) -> bool:
        if not self.weight_decay_rate:
            return False
        if self.exclude_from_weight_decay:
            for r in self.exclude_from_weight_decay:
                if re.search(r, param_name) is not None:
                    return False
        return True

    @staticmethod
    def _get_variable_name(param_name: str) -> str:
        m = re.match("^(.*):\\d+$", param_name)
        if m is not None:
            param_name = m.group(1)
        return param_name
