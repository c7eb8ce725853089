"""Trains one global batch split every way; prints how far each split's weights are from one device's.

Splits: 1 device with gradient accumulation 1/2/4, and 2 Mirrored replicas
(logical CPU devices) with accumulation 1/2, all at the same global batch
and with the default dropout 0.1. Every random draw of a step depends on the
global example index, so all splits must give the same weights.

Usage: mirrored_equivalence.py {xla,graph,graph_runner} {pretraining,finetuning,adversarial}.
graph_runner: the graph step with Grappler set as run_pretraining sets it on a CPU
(`distribute.configure_graph_optimizer`: off), and also one device trained with
Grappler on, whose weights the others must match.
A separate script because logical devices must be configured before
TensorFlow initializes, and the test process has already initialized it.
"""

import functools
import json
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np  # noqa: E402
from pretraining_helpers import (  # noqa: E402
    build_classifier_trainer,
    build_trainer,
    random_features,
)

from electra_tf.training import distribute  # noqa: E402
from electra_tf.training.trainer import accumulation_batches  # noqa: E402

GLOBAL_BATCH, STEPS = 16, 3
SPLITS = [("one_device", 1), ("one_device", 2), ("one_device", 4), ("mirrored", 1), ("mirrored", 2)]


def features(task):
    examples = random_features(GLOBAL_BATCH * STEPS, 16, seed=11)
    if task == "finetuning":
        examples["label_ids"] = (
            np.random.default_rng(3).integers(0, 3, len(examples["input_ids"])).astype(np.int32)
        )
    return examples


def train(compiler, task, strategy_name, accumulation):
    strategy = (
        tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        if strategy_name == "mirrored"
        else tf.distribute.get_strategy()
    )
    build = {
        "pretraining": build_trainer,
        "finetuning": build_classifier_trainer,
        # REINFORCE: its reward baseline must be global, not per replica or micro-batch.
        "adversarial": functools.partial(
            build_trainer, generator_training="adversarial", disallow_correct=True
        ),
    }[task]
    trainer = build(strategy, jit_compile=compiler == "xla")
    if compiler == "graph_runner":
        assert distribute.configure_graph_optimizer(strategy, jit_compile=False)
    initial = [v.numpy() for v in trainer.model.trainable_variables]
    micro_batch = GLOBAL_BATCH // accumulation
    data = accumulation_batches(
        tf.data.Dataset.from_tensor_slices(features(task)).batch(micro_batch, drop_remainder=True),
        accumulation,
    )
    sums = trainer.train(iter(strategy.experimental_distribute_dataset(data)), STEPS)
    return float(sums["loss"]), initial, [v.numpy() for v in trainer.model.trainable_variables]


def max_gap(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(a, b))


def main(compiler, task):
    # Trained before the runner's setting turns Grappler off for the process.
    grappler_on = train("graph", task, "one_device", 1) if compiler == "graph_runner" else None
    runs = {
        f"{name}_x{accumulation}": train(compiler, task, name, accumulation)
        for name, accumulation in SPLITS
    }
    _, initial, reference = runs["one_device_x1"]
    print(
        json.dumps(
            {
                "losses": {name: loss for name, (loss, _, _) in runs.items()},
                "max_weight_gap": {
                    name: max_gap(weights, reference) for name, (_, _, weights) in runs.items()
                },
                # How far the reference moved from its initialization: a gap is small only against this.
                "max_weight_change": max_gap(reference, initial),
                "same_init": all(max_gap(init, initial) == 0.0 for _, init, _ in runs.values()),
                **(
                    {
                        "grappler_on_loss": grappler_on[0],
                        "max_weight_gap_grappler_on": max_gap(grappler_on[2], reference),
                    }
                    if grappler_on
                    else {}
                ),
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
