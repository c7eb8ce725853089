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


def stateless_dropout(x, rate: float, key):
    """Inverted dropout; the identity when `key` is None (inference) or rate is 0."""
    if key is None or rate == 0.0:
        return x
    keep = stateless_random.uniform_like(x, key) >= rate
    return tf.where(keep, x / tf.cast(1.0 - rate, x.dtype), tf.zeros_like(x))
