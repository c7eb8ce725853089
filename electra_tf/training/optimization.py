"""The original ELECTRA optimizer: AdamW without bias correction, its schedule and LR decay.

Matches google-research/electra model/optimization.py: Adam moments without
bias correction, epsilon 1e-6, decoupled weight decay excluding LayerNorm and
bias parameters, global-norm clipping at 1.0, a linear (polynomial) decay to
zero with the linear warmup *multiplied* into it, and optional layer-wise
learning-rate decay for fine-tuning.
"""

import re

import tensorflow as tf

EXCLUDE_FROM_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias")


def learning_rate_at(
    step, base_learning_rate, num_train_steps, num_warmup_steps=0, decay_power=1.0
):
    """base * (1 - step/T)^power * min(1, step/warmup), as the original computes it."""
    step = tf.cast(step, tf.float32)
    decay_fraction = tf.minimum(step, float(num_train_steps)) / float(num_train_steps)
    lr = base_learning_rate * tf.pow(1.0 - decay_fraction, decay_power)
    if num_warmup_steps > 0:
        lr *= tf.minimum(1.0, step / float(num_warmup_steps))
    return lr


def layerwise_lr_multipliers(variable_paths, num_layers, decay, original_off_by_one=False):
    """Per-variable LR multipliers decaying by `decay` per layer below the task head.

    Depths: embeddings 0, transformer layer i -> i + 1, everything else (the
    task head) -> num_layers + 1, and multiplier = decay ** (top - depth)
    with top = num_layers + 1, so the top layer gets `decay` and the head 1.
    The original used top = num_layers + 2, which shifts every layer one step
    further down (top layer decay**2, head still 1 because its depth was
    num_layers + 2 as well); `original_off_by_one` reproduces that.
    """
    top = num_layers + 2 if original_off_by_one else num_layers + 1
    head_depth = top
    multipliers = {}
    for path in variable_paths:
        layer = re.search(r"(?:^|/)layer_(\d+)/", path)
        if layer:
            depth = int(layer.group(1)) + 1
        elif re.search(r"(?:^|/)(embeddings|embeddings_project)/", path):
            depth = 0
        else:
            depth = head_depth
        multipliers[path] = decay ** (top - depth)
    return multipliers


def _paths_below_root(paths):
    """The paths without their first component when every path shares it (the model's name)."""
    roots = {path.split("/", 1)[0] for path in paths}
    if len(roots) == 1 and all("/" in path for path in paths):
        return [path.split("/", 1)[1] for path in paths]
    return list(paths)


class AdamWeightDecay(tf.Module):
    """Adam without bias correction + decoupled weight decay, updating Keras variables.

    Call `apply(grads)` in replica context with gradients already summed over
    replicas: the update itself runs through `merge_call` so each replica's
    copy of a mirrored variable gets the identical update (the pattern
    tf.distribute expects, and what runs on TPU).
    """

    def __init__(
        self,
        variables,
        learning_rate_fn,
        weight_decay_rate=0.01,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-6,
        clip_norm=1.0,
        exclude_from_weight_decay=EXCLUDE_FROM_WEIGHT_DECAY,
        lr_multipliers=None,
        name="adam_weight_decay",
    ):
        super().__init__(name=name)
        variables = list(variables)
        self._learning_rate_fn = learning_rate_fn
        self.weight_decay_rate = weight_decay_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.clip_norm = clip_norm
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations")
        self.paths = [v.path for v in variables]
        if len(set(self.paths)) != len(self.paths):
            raise ValueError("Trainable variables must have unique paths for the optimizer")
        # The variables and their slots are checkpointed under the variable's
        # path, so a checkpoint restores them by name: a change in the order of
        # the variables cannot hand one variable's values or moments to another
        # of the same shape. The path is taken below the model's own name,
        # which Keras numbers per process (electra_pretrainer_1/...).
        keys = _paths_below_root(self.paths)
        self.variables_by_path = dict(zip(keys, variables))
        self._decays = [
            weight_decay_rate > 0 and not any(re.search(p, path) for p in exclude_from_weight_decay)
            for path in self.paths
        ]
        lr_multipliers = lr_multipliers or {}
        self._lr_multipliers = [lr_multipliers.get(path, 1.0) for path in self.paths]
        self._keys = keys
        self.m_by_path = {
            key: tf.Variable(tf.zeros(v.shape, tf.float32), trainable=False)
            for key, v in zip(keys, variables)
        }
        self.v_by_path = {
            key: tf.Variable(tf.zeros(v.shape, tf.float32), trainable=False)
            for key, v in zip(keys, variables)
        }

    @property
    def _variables(self):
        return [self.variables_by_path[key] for key in self._keys]

    @property
    def m(self):
        """First moments, in the order of the variables."""
        return [self.m_by_path[key] for key in self._keys]

    @property
    def v(self):
        """Second moments, in the order of the variables."""
        return [self.v_by_path[key] for key in self._keys]

    @property
    def learning_rate(self):
        return self._learning_rate_fn(self.iterations)

    def clip(self, grads):
        """Global-norm clipping; returns (clipped grads, the norm before clipping)."""
        if self.clip_norm is None:
            return grads, tf.linalg.global_norm(grads)
        return tf.clip_by_global_norm(grads, self.clip_norm)

    def apply(self, grads, apply_if=None):
        """One update from gradients summed over replicas; returns the pre-clip norm.

        `apply_if` (a boolean tensor) skips the whole update, step counter
        included, when False: float16 loss scaling drops overflowed steps.
        """
        grads = [tf.cast(g, tf.float32) for g in grads]
        if apply_if is not None:
            grads = [tf.where(apply_if, g, tf.zeros_like(g)) for g in grads]
        grads, norm = self.clip(grads)
        replica_context = tf.distribute.get_replica_context()
        if replica_context is None:
            self._update(tf.distribute.get_strategy(), grads, apply_if)
        else:
            replica_context.merge_call(self._update, args=(grads, apply_if))
        return norm

    def _update(self, strategy, grads, apply_if):
        def update_all():
            # The update's scalars are made once, not per variable: 400
            # variables x 7 constant and multiply ops were a tenth of the
            # step's graph, and of its tracing time.
            constants = {
                "zero": tf.constant(0.0),
                "beta1": tf.constant(self.beta_1),
                "beta2": tf.constant(self.beta_2),
                "epsilon": tf.constant(self.epsilon),
            }
            base_lr = self.learning_rate
            learning_rates = {}
            for multiplier in sorted(set(self._lr_multipliers)):
                lr = base_lr * multiplier
                learning_rates[multiplier] = (lr, lr * self.weight_decay_rate)
            for index, (grad, variable) in enumerate(zip(grads, self._variables)):
                lr, decay = learning_rates[self._lr_multipliers[index]]
                strategy.extended.update(
                    variable.value,
                    self._update_one,
                    args=(grad, index, lr, decay, constants),
                    group=False,
                )
            strategy.extended.update(self.iterations, lambda it: it.assign_add(1), group=False)

        if apply_if is None:
            update_all()
        else:
            tf.cond(apply_if, update_all, lambda: None)

    def _update_one(self, variable, grad, index, lr, decay, constants):
        if self._decays[index]:
            # Decay first, from the same pre-update weights the original uses:
            # var - lr * wd * var - lr * adam == var - lr * (adam + wd * var).
            tf.raw_ops.ResourceApplyGradientDescent(
                var=variable.handle, alpha=decay, delta=variable.read_value()
            )
        # TF's fused Adam kernel (one pass instead of ~10 ops per variable,
        # 40% of the update's time on CPU); beta powers of 0 make its bias
        # correction a factor of 1, the original's uncorrected update. Its CPU
        # square root is vectorised to ~1e-5 relative error.
        return tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self.m_by_path[self._keys[index]].handle,
            v=self.v_by_path[self._keys[index]].handle,
            beta1_power=constants["zero"],
            beta2_power=constants["zero"],
            lr=lr,
            beta1=constants["beta1"],
            beta2=constants["beta2"],
            epsilon=constants["epsilon"],
            grad=grad,
        )
