"""Pre-training heads: the generator's tied MLM head and the discriminator's RTD head."""

import keras
import tensorflow as tf

from electra_tf.model.layers.normalization import LayerNorm
from electra_tf.model.layers.transformer import exact_gelu, truncated_normal_dense


@keras.saving.register_keras_serializable(package="electra_tf")
class MaskedLMHead(keras.layers.Layer):
    """dense -> GELU -> LayerNorm -> logits against the (tied) word-embedding table.

    Applied only to the gathered masked positions, so the [batch, seq, vocab]
    tensor never exists. Logits come out in float32 for a stable softmax.
    """

    def __init__(self, embeddings, initializer_range=0.02, layer_norm_eps=1e-12, **kwargs):
        super().__init__(**kwargs)
        self.embeddings = embeddings
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.dense = truncated_normal_dense(
            embeddings.embedding_size,
            initializer_range,
            "dense",
            self.dtype_policy,
            activation=exact_gelu,
        )
        self.layer_norm = LayerNorm(
            epsilon=layer_norm_eps, dtype=self.dtype_policy, name="LayerNorm"
        )

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.layer_norm.build(tuple(input_shape[:-1]) + (self.embeddings.embedding_size,))
        self.output_bias = self.add_weight(
            name="output_bias", shape=(self.embeddings.vocab_size,), initializer="zeros"
        )
        self.built = True

    def call(self, hidden):
        hidden = tf.cast(self.layer_norm(self.dense(hidden)), tf.float32)
        table = tf.cast(tf.convert_to_tensor(self.embeddings.word_embeddings), tf.float32)
        # A 2-D matmul: broadcasting the table over a [batch, positions, ...]
        # input makes its gradient a [batch, vocab, embedding] tensor first.
        rows = tf.reshape(hidden, [-1, hidden.shape[-1]])
        logits = tf.matmul(rows, table, transpose_b=True) + self.output_bias
        return tf.reshape(
            logits, tf.concat([tf.shape(hidden)[:-1], [self.embeddings.vocab_size]], 0)
        )


@keras.saving.register_keras_serializable(package="electra_tf")
class DiscriminatorHead(keras.layers.Layer):
    """dense -> GELU -> dense(1): one replaced-token logit per position (float32)."""

    def __init__(self, hidden_size, initializer_range=0.02, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size
        self.initializer_range = initializer_range
        self.dense = truncated_normal_dense(
            hidden_size, initializer_range, "dense", self.dtype_policy, activation=exact_gelu
        )
        self.dense_1 = truncated_normal_dense(1, initializer_range, "dense_1", self.dtype_policy)

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.dense_1.build(tuple(input_shape[:-1]) + (self.hidden_size,))
        self.built = True

    def call(self, hidden):
        return tf.cast(tf.squeeze(self.dense_1(self.dense(hidden)), -1), tf.float32)

    def get_config(self):
        return {
            **super().get_config(),
            "hidden_size": self.hidden_size,
            "initializer_range": self.initializer_range,
        }
