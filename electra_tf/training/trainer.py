"""The distributed train step shared by pre-training and fine-tuning.

A model ("task") plugs in with three things:
  - `loss_denominators(features) -> dict` of per-replica counts its loss is
    normalized by (known before the forward pass: they are all-reduced first,
    so the step's result does not depend on how the global batch is split);
  - `compute_loss_and_stats(features, denominators, key, example_index)
    -> (loss, stats)`, with `stats` a dict of sums; all its randomness
    (masking, sampling, dropout) is drawn per example from (key,
    example_index), the example's position in the global batch, so neither
    the replica count nor the accumulation split changes a step;
  - `trainable_variables`;
  - optionally `after_step(stats)`, called with the step's stats summed
    over the global batch (for state that must be the same on every replica).

The whole step on one screen: per replica, for each accumulation micro-batch,
forward + backward under XLA; gradients summed over micro-batches and
replicas; one clipped AdamW update. Several steps run per host call
(`steps_per_loop`, the original's iterations_per_loop).
"""

import tensorflow as tf

from electra_tf.model.layers import transformer
from electra_tf.training import stateless_random


class NonFiniteLossError(RuntimeError):
    """Raised when a training loop produced a NaN or infinite loss."""


class Trainer:
    """Runs `steps_per_loop` train steps per call on a tf.distribute strategy.

    Create it, the model and the optimizer under `strategy.scope()`. Each
    element of the distributed dataset is a dict of [per_replica_batch,
    accumulation_steps, ...] tensors (see `accumulation_batches`).
    """

    def __init__(
        self, strategy, model, optimizer, *, jit_compile=True, seed=0, dynamic_loss_scale=False
    ):
        self.strategy = strategy
        self.model = model
        self.optimizer = optimizer
        self.jit_compile = jit_compile
        with strategy.scope():
            self.rng = tf.random.Generator.from_seed(seed)
            self.loss_scale = DynamicLossScale() if dynamic_loss_scale else None
        # No AutoGraph: the step has no data-dependent Python control flow,
        # and converting every function it calls took a third of the tracing.
        self._compiled_gradients = tf.function(
            self._gradients, jit_compile=jit_compile, autograph=False
        )
        self._train_step = tf.function(self._one_step, autograph=False)
        self._train_steps = tf.function(self._train_steps_fn, autograph=False)

    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    def checkpoint_objects(self) -> dict:
        """What a checkpoint must hold to resume exactly: weights, slots, step, RNG."""
        objects = {"model": self.model, "optimizer": self.optimizer, "rng": self.rng}
        if self.loss_scale is not None:
            objects["loss_scale"] = self.loss_scale
        return objects

    def train(self, iterator, num_steps: int) -> dict:
        """Runs `num_steps` steps; returns the summed stats as numpy values."""
        sums = self._train_steps(iterator, tf.constant(num_steps, tf.int32))
        sums = tf.nest.map_structure(lambda t: t.numpy(), sums)
        if not tf.math.is_finite(sums["loss"]):
            raise NonFiniteLossError(
                f"The loss became {sums['loss']} in the steps ending at step {self.step}. "
                "Nothing was saved from these steps; the last checkpoint is intact. Lower "
                "--learning_rate, check the data, or use --mixed_precision=none."
            )
        return sums

    def _train_steps_fn(self, iterator, num_steps):
        # The step is traced once and called in the loop: peeling a first
        # call off the loop (for the sums' structure) would put two copies
        # of it in the graph and double the time to the first step.
        step = self._train_step.get_concrete_function(iterator)
        zeros = tf.nest.map_structure(lambda t: tf.zeros(t.shape, t.dtype), step.structured_outputs)

        def accumulate(done, sums):
            return done + 1, tf.nest.map_structure(tf.add, sums, self._train_step(iterator))

        _, sums = tf.while_loop(lambda done, _: done < num_steps, accumulate, (0, zeros))
        return sums

    def _one_step(self, iterator):
        batches = next(iterator)
        key = stateless_random.key_from_seed(self.rng.make_seeds(1)[:, 0])
        # Stats travel as one flat vector: one collective per step, and
        # MultiWorkerMirroredStrategy cannot reduce nested structures in a tf.function.
        packed = self.strategy.run(self._packed_replica_step, args=(batches, key))
        total = self.strategy.reduce(tf.distribute.ReduceOp.SUM, packed, axis=None)
        sizes = [size for _, _, size in self._stats_layout]
        stats = {
            name: tf.reshape(part, shape)
            for (name, shape, _), part in zip(self._stats_layout, tf.split(total, sizes))
        }
        if hasattr(self.model, "after_step"):
            self.model.after_step(stats)
        return stats

    def _packed_replica_step(self, batches, key):
        stats = self._replica_step(batches, key)
        names = sorted(stats)
        self._stats_layout = [(n, stats[n].shape, stats[n].shape.num_elements()) for n in names]
        return tf.concat([tf.reshape(tf.cast(stats[n], tf.float32), [-1]) for n in names], 0)

    def _replica_step(self, batches, key):
        context = tf.distribute.get_replica_context()
        replica_id = context.replica_id_in_sync_group
        local_batch, accumulation_steps = batches["input_ids"].shape[:2]
        if accumulation_steps is None or local_batch is None:
            raise ValueError(
                "Training batches need static shapes (XLA and TPU compile one "
                "step): batch with drop_remainder=True, got "
                f"{batches['input_ids'].shape}"
            )
        micro_batches = [
            {k: v[:, i] for k, v in batches.items()} for i in range(accumulation_steps)
        ]
        flat = {k: tf.reshape(v, [-1] + v.shape[2:].as_list()) for k, v in batches.items()}
        denominators = context.all_reduce(
            tf.distribute.ReduceOp.SUM, self.model.loss_denominators(flat)
        )
        global_micro_batch = local_batch * context.num_replicas_in_sync
        grads, stats = None, None
        for i, features in enumerate(micro_batches):
            # Global position of each example, which seeds its masking, sampling and dropout.
            example_index = (
                i * global_micro_batch
                + replica_id * local_batch
                + tf.range(local_batch, dtype=tf.int32)
            )
            micro_grads, micro_stats = self._compiled_gradients(
                features, denominators, key, example_index
            )
            grads = micro_grads if grads is None else [a + b for a, b in zip(grads, micro_grads)]
            stats = (
                micro_stats if stats is None else tf.nest.map_structure(tf.add, stats, micro_stats)
            )
        grads = context.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        if self.loss_scale is None:
            grad_norm = self.optimizer.apply(grads)
        else:
            grads = [g / self.loss_scale.value for g in grads]
            finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
            # Overflowed steps are skipped, not applied: the scale halves instead.
            grad_norm = self.optimizer.apply(grads, apply_if=finite)
            self.loss_scale.update(finite)
            stats["loss_scale"] = self.loss_scale.value / tf.cast(
                context.num_replicas_in_sync, tf.float32
            )
        # Every replica reports the same norm; SUM-reducing the share gives it once.
        stats["grad_norm"] = grad_norm / tf.cast(context.num_replicas_in_sync, tf.float32)
        return stats

    def _gradients(self, features, denominators, key, example_index):
        variables = self.model.trainable_variables
        with tf.GradientTape() as tape, transformer.one_trace_per_shape(not self.jit_compile):
            loss, stats = self.model.compute_loss_and_stats(
                features, denominators, key, example_index
            )
            scaled_loss = loss if self.loss_scale is None else loss * self.loss_scale.value
        grads = tape.gradient(scaled_loss, variables)
        missing = [v.path for v, g in zip(variables, grads) if g is None]
        if missing:
            raise ValueError(f"No gradient reaches these variables: {missing}")
        # Embedding gathers give IndexedSlices; the dense sum is what gets all-reduced.
        return [tf.convert_to_tensor(g) for g in grads], stats


class DynamicLossScale(tf.Module):
    """float16 loss scaling: halve on overflow, double after `period` finite steps."""

    def __init__(self, initial_scale=2.0**15, period=2000):
        super().__init__(name="dynamic_loss_scale")
        self.period = period
        self._scale = tf.Variable(
            initial_scale,
            dtype=tf.float32,
            trainable=False,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
        self._finite_steps = tf.Variable(
            0,
            dtype=tf.int64,
            trainable=False,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )

    @property
    def value(self):
        return tf.identity(self._scale)

    def update(self, finite):
        """Call in replica context with the same `finite` on every replica."""
        grown = self._finite_steps + 1 >= self.period
        new_scale = tf.where(
            finite,
            tf.where(grown, self._scale * 2.0, self._scale),
            tf.maximum(self._scale / 2.0, 1.0),
        )
        new_count = tf.where(
            finite & ~grown, self._finite_steps + 1, tf.zeros_like(self._finite_steps)
        )
        self._scale.assign(new_scale)
        self._finite_steps.assign(new_count)


def accumulation_batches(dataset, accumulation_steps: int):
    """Groups consecutive batches into [batch, accumulation_steps, ...] elements.

    Batch-major, so tf.distribute splitting a global batch along its first
    axis hands each replica its share of every micro-batch.
    """

    def batch_major(features):
        return {k: tf.experimental.numpy.swapaxes(v, 0, 1) for k, v in features.items()}

    return dataset.batch(accumulation_steps, drop_remainder=True).map(batch_major)
