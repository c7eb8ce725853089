"""Runs one global batch on 1 device and on 2 logical CPU replicas; prints the weight gap.

A separate script because logical devices must be configured before
TensorFlow initializes, and the test process has already initialized it.
"""

import json
import sys

import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np  # noqa: E402

from electra_tf.training import accumulation_batches  # noqa: E402
from pretraining_helpers import build_trainer, random_features  # noqa: E402

features = random_features(32, 16, seed=11)
weights = {}
losses = {}
for name, strategy in [("one_device", tf.distribute.get_strategy()),
                       ("mirrored", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))]:
    trainer = build_trainer(strategy, dropout=0.0, jit_compile=sys.argv[1] == "xla")
    data = accumulation_batches(tf.data.Dataset.from_tensor_slices(features).batch(8, drop_remainder=True), 1)
    iterator = iter(strategy.experimental_distribute_dataset(data))
    sums = trainer.train(iterator, 3)
    losses[name] = float(sums["loss"])
    weights[name] = [v.numpy() for v in trainer.model.trainable_variables]
gap = max(float(np.max(np.abs(a - b))) for a, b in zip(weights["one_device"], weights["mirrored"]))
moved = max(float(np.max(np.abs(a))) for a in weights["one_device"])
print(json.dumps({"max_weight_gap": gap, "losses": losses, "max_weight": moved}))
