"""Probe: the discriminator's output bias starts at the prior logit instead of 0."""

import math
import sys

from absl import flags

from electra_tf import run_pretraining
from electra_tf.pretraining import model as model_lib

orig_build = model_lib.ElectraPretrainer.build


def build(self, input_shape=None):
    orig_build(self, input_shape)
    p = self.mask_prob * 0.9
    self.discriminator_predictions.dense_1.bias.assign([math.log(p / (1 - p))])


model_lib.ElectraPretrainer.build = build
flags.FLAGS(
    [
        "x",
        "--flagfile=/work/main/configs/demo.flags",
        "--pretrain_tfrecords=/work/runs/kjv/tfr64/pretrain_data.tfrecord*",
        "--vocab_file=/work/runs/kjv/vocab.txt",
        "--model_dir=" + sys.argv[1],
        '--model_hparam_overrides={"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 2, "intermediate_size": 512}',
        "--mask_prob=0.15",
        "--num_train_steps=1500",
    ]
    + sys.argv[2:]
)
run_pretraining.main([])
