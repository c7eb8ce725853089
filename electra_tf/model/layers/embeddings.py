"""Token + position + segment embeddings, as in BERT/ELECTRA."""

import keras
import tensorflow as tf

from electra_tf.model.layers.dropout import stateless_dropout
from electra_tf.model.layers.normalization import LayerNorm


@keras.saving.register_keras_serializable(package="electra_tf")
class ElectraEmbeddings(keras.layers.Layer):
    """Sum of word, position and token-type embeddings, then LayerNorm and dropout.

    The generator and discriminator share one instance of this layer by
    default (the original shares the whole `electra/embeddings` scope,
    LayerNorm included), and the generator's MLM head reads `word_embeddings`
    as its output projection.
    """

    def __init__(
        self,
        vocab_size,
        embedding_size,
        max_position_embeddings=512,
        type_vocab_size=2,
        initializer_range=0.02,
        layer_norm_eps=1e-12,
        dropout_rate=0.1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.embedding_size = embedding_size
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.dropout_rate = dropout_rate
        self.layer_norm = LayerNorm(
            epsilon=layer_norm_eps, dtype=self.dtype_policy, name="LayerNorm"
        )

    def build(self, input_shape=None):
        init = keras.initializers.TruncatedNormal(stddev=self.initializer_range)
        self.word_embeddings = self.add_weight(
            name="word_embeddings", shape=(self.vocab_size, self.embedding_size), initializer=init
        )
        self.token_type_embeddings = self.add_weight(
            name="token_type_embeddings",
            shape=(self.type_vocab_size, self.embedding_size),
            initializer=init,
        )
        self.position_embeddings = self.add_weight(
            name="position_embeddings",
            shape=(self.max_position_embeddings, self.embedding_size),
            initializer=init,
        )
        self.layer_norm.build((None, None, self.embedding_size))
        self.built = True

    def call(self, input_ids, token_type_ids, dropout_key=None):
        seq_length = tf.shape(input_ids)[1]
        x = tf.gather(self.word_embeddings, input_ids)
        x += tf.gather(self.token_type_embeddings, token_type_ids)
        x += self.position_embeddings[tf.newaxis, :seq_length]
        x = self.layer_norm(x)
        return stateless_dropout(tf.cast(x, self.compute_dtype), self.dropout_rate, dropout_key)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.embedding_size,)

    def get_config(self):
        return {
            **super().get_config(),
            "vocab_size": self.vocab_size,
            "embedding_size": self.embedding_size,
            "max_position_embeddings": self.max_position_embeddings,
            "type_vocab_size": self.type_vocab_size,
            "initializer_range": self.initializer_range,
            "layer_norm_eps": self.layer_norm_eps,
            "dropout_rate": self.dropout_rate,
        }
