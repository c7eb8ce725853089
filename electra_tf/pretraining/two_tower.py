"""Electric's two-tower cloze generator: a left-to-right and a right-to-left encoder.

Position t's representation is [ltr(t-1); rtl(t+1)]: the left tower has seen
tokens < t, the right tower tokens > t, so the cloze distribution q(x_t |
context) never sees x_t itself and runs on the *unmasked* input in one pass
for every position (the original's TwoTowerClozeTransformer).
"""

import keras
import tensorflow as tf

from electra_tf.model.encoder import ElectraEncoder
from electra_tf.model.layers.dropout import fold_seed
from electra_tf.model.layers.transformer import attention_bias_from_mask


def directional_attention_bias(input_mask, direction, dtype):
    """[B, 1, L, L] additive bias: padding plus a causal ("ltr") or anti-causal ("rtl") mask."""
    padding = attention_bias_from_mask(input_mask, tf.float32)
    length = tf.shape(input_mask)[1]
    lower = tf.linalg.band_part(tf.ones([length, length], tf.float32), -1, 0)  # j <= i
    allowed = lower if direction == "ltr" else tf.transpose(lower)  # j >= i for rtl
    return tf.cast(padding + (1.0 - allowed)[tf.newaxis, tf.newaxis] * -10000.0, dtype)


@keras.saving.register_keras_serializable(package="electra_tf")
class DirectionalEncoder(ElectraEncoder):
    """An ElectraEncoder whose attention only looks left ("ltr") or right ("rtl")."""

    def __init__(self, config, direction, embeddings=None, **kwargs):
        if direction not in ("ltr", "rtl"):
            raise ValueError(f"direction must be 'ltr' or 'rtl', got {direction!r}")
        super().__init__(config, embeddings=embeddings, **kwargs)
        self.direction = direction

    def attention_bias(self, input_mask):
        return directional_attention_bias(input_mask, self.direction, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "direction": self.direction}


@keras.saving.register_keras_serializable(package="electra_tf")
class TwoTowerGenerator(keras.layers.Layer):
    """[B, L, 2H] cloze representations from two directional towers sharing one embedding."""

    def __init__(self, config, embeddings=None, **kwargs):
        super().__init__(**kwargs)
        policy = self.dtype_policy
        self.ltr = DirectionalEncoder(
            config, "ltr", embeddings=embeddings, dtype=policy, name="generator_ltr"
        )
        # Both towers read one table (the original's get_embedding_table is the ltr one).
        self.rtl = DirectionalEncoder(
            config, "rtl", embeddings=self.ltr.embeddings, dtype=policy, name="generator_rtl"
        )
        self.embeddings = self.ltr.embeddings
        self.config = config

    def build(self, input_shape=None):
        self.ltr.build()
        self.rtl.build()
        self.built = True

    def call(self, inputs, dropout_key=None):
        ltr = self.ltr(
            inputs, dropout_key=None if dropout_key is None else fold_seed(dropout_key, 0)
        )
        rtl = self.rtl(
            inputs, dropout_key=None if dropout_key is None else fold_seed(dropout_key, 1)
        )
        # Shift so position t holds ltr(t-1) and rtl(t+1) (rolled, as the original).
        ltr = tf.concat([ltr[:, -1:], ltr[:, :-1]], axis=1)
        rtl = tf.concat([rtl[:, 1:], rtl[:, :1]], axis=1)
        return tf.concat([ltr, rtl], axis=-1)
