"""Tiny ELECTRA configurations, trainers and random batches shared by the training tests."""

import functools

import keras
import numpy as np

from electra_tf.data.tokenization import SpecialTokens
from electra_tf.finetuning.models import ElectraForSequenceClassification
from electra_tf.model.config import ElectraConfig, generator_config
from electra_tf.pretraining.model import ElectraPretrainer
from electra_tf.training.optimization import AdamWeightDecay, learning_rate_at
from electra_tf.training.trainer import Trainer

SPECIAL = SpecialTokens(pad=0, unk=1, cls=2, sep=3, mask=4)
VOCAB_SIZE = 120


def tiny_configs(dropout=0.1, vocab_size=VOCAB_SIZE):
    discriminator = ElectraConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        embedding_size=16,
        max_position_embeddings=64,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    return discriminator, generator_config(discriminator, 0.5, 1.0, untied_embeddings=False)


def random_features(num_examples, seq_length, seed=0, min_length=6, vocab_size=VOCAB_SIZE):
    """[CLS] tokens [SEP] padded sequences of random lengths, as numpy int32 arrays."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((num_examples, seq_length), np.int32)
    for row in range(num_examples):
        length = int(rng.integers(min_length, seq_length + 1))
        ids[row, :length] = rng.integers(5, vocab_size, size=length)
        ids[row, 0], ids[row, length - 1] = SPECIAL.cls, SPECIAL.sep
    return {
        "input_ids": ids,
        "input_mask": (ids != 0).astype(np.int32),
        "segment_ids": np.zeros_like(ids),
    }


def build_trainer(
    strategy,
    dropout=0.1,
    learning_rate=1e-3,
    seed=0,
    max_predictions=5,
    jit_compile=True,
    dynamic_loss_scale=False,
    **model_kwargs,
):
    """A Trainer of the tiny ElectraPretrainer (user-default dropout 0.1 unless told)."""
    discriminator, generator = tiny_configs(dropout)

    def model_fn():
        return ElectraPretrainer(
            discriminator,
            generator,
            SPECIAL,
            max_predictions_per_seq=max_predictions,
            **model_kwargs,
        )

    return _trainer(strategy, model_fn, learning_rate, seed, jit_compile, dynamic_loss_scale)


def build_classifier_trainer(
    strategy, num_labels=3, dropout=0.1, learning_rate=1e-3, seed=0, jit_compile=True
):
    """A Trainer fine-tuning a tiny ElectraForSequenceClassification (dropout 0.1 unless told)."""
    discriminator, _ = tiny_configs(dropout)
    return _trainer(
        strategy,
        lambda: ElectraForSequenceClassification(discriminator, num_labels),
        learning_rate,
        seed,
        jit_compile,
        False,
    )


def _trainer(strategy, model_fn, learning_rate, seed, jit_compile, dynamic_loss_scale):
    with strategy.scope():
        keras.utils.set_random_seed(seed)
        model = model_fn()
        model.build()
        schedule = functools.partial(
            learning_rate_at,
            base_learning_rate=learning_rate,
            num_train_steps=1000,
            num_warmup_steps=0,
        )
        optimizer = AdamWeightDecay(model.trainable_variables, schedule)
        trainer = Trainer(
            strategy,
            model,
            optimizer,
            jit_compile=jit_compile,
            seed=seed,
            dynamic_loss_scale=dynamic_loss_scale,
        )
    return trainer
