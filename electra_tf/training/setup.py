"""The set-up every training runner shares: strategy, precision, batch split, optimizer, Trainer.

Plain arguments (the runners pass their settings' values), no absl FLAGS:

    strategy = setup.create_strategy("default")
    setup.set_precision("none")
    micro_batch = setup.micro_batch_size(strategy, train_batch_size=32, accumulation_steps=2)
    with strategy.scope():
        model = ...
        optimizer = setup.build_optimizer(
            model.trainable_variables, learning_rate=1e-4, num_train_steps=1000,
            num_warmup_steps=100)
        trainer = setup.build_trainer(strategy, model, optimizer, seed=0)
"""

import functools
import logging as std_logging

import keras
import tensorflow as tf
from absl import logging

from electra_tf.training import distribute
from electra_tf.training.optimization import AdamWeightDecay, learning_rate_at
from electra_tf.training.trainer import Trainer


class SetupError(ValueError):
    """The strategy or the batch split cannot be set up as asked; the message names the flag."""


class _DropCheckpointTimings(std_logging.Filter):
    """Drops TensorFlow's "Sharding callback duration: N microseconds" lines.

    TF's checkpoint saver logs one at INFO through absl on every save, between
    the progress lines, and nothing in it is for users to act on.
    """

    def filter(self, record):
        return not str(record.msg).startswith("Sharding callback duration")


def quiet_checkpoint_timings():
    """Keeps TF's per-save timing lines out of the training log (idempotent)."""
    absl_logger = logging.get_absl_logger()
    if not any(isinstance(f, _DropCheckpointTimings) for f in absl_logger.filters):
        absl_logger.addFilter(_DropCheckpointTimings())


def create_strategy(distribution_strategy="default", tpu=None, num_gpus=None):
    """The tf.distribute strategy; the first TF work of a run.

    Multi-worker collectives must be configured before anything initializes
    the TF runtime, so call this before building data or models.
    """
    try:
        return distribute.create_strategy(distribution_strategy, tpu, num_gpus)
    except ValueError as e:
        raise SetupError(str(e)) from e
    except tf.errors.OpError as e:
        if distribution_strategy != "tpu":
            raise
        raise SetupError(_no_tpu_message(tpu, e)) from e


def _no_tpu_message(tpu, error):
    """One line: the TPU asked for, TensorFlow's reason, and the two ways forward."""
    reason = error.message.strip().splitlines()[0]
    return (
        f"--distribution_strategy=tpu --tpu={tpu}: TensorFlow {tf.__version__} finds no TPU "
        f"({reason}). Run on a TPU VM with TensorFlow's TPU build installed "
        f"(pip install tensorflow-tpu=={tf.__version__}, docs/tpu.md), or train on this "
        "machine with --distribution_strategy=default."
    )


def set_precision(mixed_precision="none"):
    """Sets Keras' global dtype policy ("none", "bfloat16", "float16") and logs the CPU's advice."""
    policy = "float32" if mixed_precision == "none" else f"mixed_{mixed_precision}"
    keras.mixed_precision.set_dtype_policy(policy)
    logging.info("%s", distribute.cpu_bf16_advice(mixed_precision))


def micro_batch_size(strategy, train_batch_size, accumulation_steps=1) -> int:
    """Examples per replica per micro-batch; SetupError unless the global batch splits exactly."""
    try:
        return distribute.per_replica_batch_size(
            train_batch_size, strategy.num_replicas_in_sync, accumulation_steps
        )
    except ValueError as e:
        raise SetupError(str(e)) from e


def build_optimizer(
    variables,
    *,
    learning_rate,
    num_train_steps,
    num_warmup_steps,
    lr_decay_power=1.0,
    weight_decay_rate=0.01,
    lr_multipliers=None,
) -> AdamWeightDecay:
    """AdamW with the original's schedule: linear warmup, then polynomial decay to 0.

    Call under `strategy.scope()`.
    """
    schedule = functools.partial(
        learning_rate_at,
        base_learning_rate=learning_rate,
        num_train_steps=num_train_steps,
        num_warmup_steps=num_warmup_steps,
        decay_power=lr_decay_power,
    )
    return AdamWeightDecay(
        variables, schedule, weight_decay_rate=weight_decay_rate, lr_multipliers=lr_multipliers
    )


def build_trainer(strategy, model, optimizer, *, seed=0, use_xla=None, mixed_precision="none"):
    """The Trainer of `model`: XLA as `use_xla` says (None: on with a GPU or TPU).

    float16 gets dynamic loss scaling. Call under `strategy.scope()`. A CPU-only
    step without XLA also turns Grappler off for the process (see
    distribute.configure_graph_optimizer): it halves the time to the first step.
    """
    trainer = Trainer(
        strategy,
        model,
        optimizer,
        jit_compile=distribute.use_xla(use_xla, strategy),
        seed=seed,
        dynamic_loss_scale=mixed_precision == "float16",
    )
    distribute.configure_graph_optimizer(strategy, trainer.jit_compile)
    return trainer
