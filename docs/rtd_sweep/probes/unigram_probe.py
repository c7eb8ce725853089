"""Probe: can the discriminator learn context? Replacements drawn from the corpus unigram."""

import sys

import numpy as np
import tensorflow as tf
from absl import flags

from electra_tf import run_pretraining
from electra_tf.pretraining import masking

V = sum(1 for _ in open("/work/runs/kjv/vocab.txt"))
counts = np.ones(V)
for r in tf.data.TFRecordDataset(tf.io.gfile.glob("/work/runs/kjv/tfr64/*.tfrecord*")).take(3000):
    ex = tf.train.Example.FromString(r.numpy())
    ids = np.array(ex.features.feature["input_ids"].int64_list.value)
    np.add.at(counts, ids[ids > 4], 1)
log_unigram = tf.constant(np.log(counts / counts.sum()), tf.float32)
orig = masking.sample_tokens


def unigram_sample(logits, key, example_index, temperature=1.0, disallow_ids=None):
    return orig(logits + log_unigram, key, example_index, temperature, disallow_ids)


masking.sample_tokens = unigram_sample
flags.FLAGS(
    [
        "x",
        "--flagfile=/work/main/configs/demo.flags",
        "--pretrain_tfrecords=/work/runs/kjv/tfr64/pretrain_data.tfrecord*",
        "--vocab_file=/work/runs/kjv/vocab.txt",
        "--model_dir=" + sys.argv[1],
        "--uniform_generator",
        "--max_seq_length=64",
        "--learning_rate=1e-3",
        "--num_train_steps=600",
        "--iterations_per_loop=50",
    ]
    + sys.argv[2:]
)
run_pretraining.main([])
