"""Dropout driven by explicit stateless keys.

Keras' own Dropout keeps its RNG state in a variable that it updates inside
`call`; under tf.distribute that write happens in replica context and under
XLA it is extra state to thread through. Passing a key down from the train
step keeps every step a pure function of (weights, batch, key), which makes
runs reproducible and resumable, and identical on TPU. Keys may be [batch]
vectors (`example_keys`): each example then draws its own mask, and the
layers' per-site folds apply element-wise.
"""

import tensorflow as tf

from electra_tf.training import stateless_random


def fold_seed(key, salt: int):
    """A new key derived from `key` for the sub-site `salt`."""
    return stateless_random.fold(key, salt)


def example_keys(key, salt: int, example_index):
    """[batch] dropout keys for the site `salt`: one stream per global example index.

    A mask then depends on (step key, site, example) alone, not on the
    replica or accumulation micro-batch that runs the example.
    """
    return stateless_random.fold(fold_seed(key, salt), example_index)


def is_active(rate: float, key) -> bool:
    """Dropout applies: training (a key is given) and a positive rate."""
    return key is not None and rate > 0.0


def apply_dropout(x, keep, rate: float):
    """x scaled by 1 / (1 - rate) where `keep`, else 0."""
    return tf.where(keep, x * tf.cast(1.0 / (1.0 - rate), x.dtype), tf.zeros([], x.dtype))


def stateless_dropout(x, rate: float, key):
    """Inverted dropout; the identity when `key` is None (inference) or rate is 0."""
    if not is_active(rate, key):
        return x
    return apply_dropout(x, stateless_random.keep_mask(x, rate, key), rate)
