"""Dropout driven by explicit stateless keys.

Keras' own Dropout keeps its RNG state in a variable that it updates inside
`call`; under tf.distribute that write happens in replica context and under
XLA it is extra state to thread through. Passing a key down from the train
step keeps every step a pure function of (weights, batch, key), which makes
runs reproducible and resumable, and identical on TPU.
"""

import tensorflow as tf

from electra_tf import stateless_random


def fold_seed(key, salt: int):
    """A new key derived from `key` for the sub-site `salt`."""
    return stateless_random.fold(key, salt)


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
