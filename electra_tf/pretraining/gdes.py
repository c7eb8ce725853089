"""Gradient-disentangled embedding sharing (DeBERTaV3, He et al. 2021).

The discriminator reads E_D = stop_gradient(E_G) + E_delta for each embedding
table (word, position, token type). E_delta starts at zero and is trained only
by the discriminator's loss; E_G is trained only by the generator's MLM loss,
so the two objectives no longer pull the shared table in opposite directions
("tug of war"). The embedding LayerNorm is the discriminator's own.

For fine-tuning, `materialize_encoder` folds E_G + E_delta into a plain
ElectraEncoder with ordinary embedding tables.
"""

import keras
import tensorflow as tf

from electra_tf.model.encoder import ElectraEncoder
from electra_tf.model.layers.embeddings import ElectraEmbeddings

_TABLES = ("word_embeddings", "token_type_embeddings", "position_embeddings")


@keras.saving.register_keras_serializable(package="electra_tf")
class GDESEmbeddings(ElectraEmbeddings):
    """ElectraEmbeddings whose tables are stop_gradient(base tables) + zero-initialized deltas."""

    def __init__(self, base, **kwargs):
        super().__init__(
            base.vocab_size,
            base.embedding_size,
            base.max_position_embeddings,
            base.type_vocab_size,
            base.initializer_range,
            base.layer_norm_eps,
            base.dropout_rate,
            **kwargs,
        )
        self.base = base

    def build(self, input_shape=None):
        if not self.base.built:
            self.base.build()
        shapes = {
            "word_embeddings": (self.vocab_size, self.embedding_size),
            "token_type_embeddings": (self.type_vocab_size, self.embedding_size),
            "position_embeddings": (self.max_position_embeddings, self.embedding_size),
        }
        for table in _TABLES:
            setattr(
                self,
                f"{table}_delta",
                self.add_weight(name=f"{table}_delta", shape=shapes[table], initializer="zeros"),
            )
        self.layer_norm.build((None, None, self.embedding_size))
        self.built = True

    def _effective(self, table):
        shared = tf.stop_gradient(tf.convert_to_tensor(getattr(self.base, table)))
        return shared + tf.convert_to_tensor(getattr(self, f"{table}_delta"))

    # The parent's call and the MLM head read these names.
    @property
    def word_embeddings(self):
        return self._effective("word_embeddings")

    @property
    def token_type_embeddings(self):
        return self._effective("token_type_embeddings")

    @property
    def position_embeddings(self):
        return self._effective("position_embeddings")


def _non_embedding_weights(encoder):
    layers = [encoder.embeddings_project] if encoder.embeddings_project is not None else []
    layers += encoder.transformer_layers
    return [w for layer in layers for w in layer.weights]


def copy_encoder_weights(source, target, include_embeddings=True):
    """target <- source for two encoders of the same architecture (projection + layers)."""
    pairs = list(zip(_non_embedding_weights(source), _non_embedding_weights(target)))
    if include_embeddings and source.embeddings is not target.embeddings:
        pairs += list(
            zip(embedding_values(source.embeddings), _plain_embedding_variables(target.embeddings))
        )
    for value, variable in pairs:
        if tuple(variable.shape) != tuple(value.shape):
            raise ValueError(
                f"Cannot copy a {tuple(value.shape)} weight into {variable.path} "
                f"{tuple(variable.shape)}: the encoders differ in architecture"
            )
        variable.assign(value)


def _plain_embedding_variables(embeddings):
    if isinstance(embeddings, GDESEmbeddings):
        raise ValueError("Copying into GDES embeddings is not supported")
    return [
        embeddings.word_embeddings,
        embeddings.token_type_embeddings,
        embeddings.position_embeddings,
        embeddings.layer_norm.gamma,
        embeddings.layer_norm.beta,
    ]


def embedding_values(embeddings):
    """(word, token type, position, LayerNorm gamma, beta) as the layer effectively uses them."""
    return [
        tf.convert_to_tensor(embeddings.word_embeddings),
        tf.convert_to_tensor(embeddings.token_type_embeddings),
        tf.convert_to_tensor(embeddings.position_embeddings),
        tf.convert_to_tensor(embeddings.layer_norm.gamma),
        tf.convert_to_tensor(embeddings.layer_norm.beta),
    ]


def materialize_encoder(encoder, name="electra"):
    """A plain ElectraEncoder computing what `encoder` (with GDES embeddings) computes."""
    plain = ElectraEncoder(encoder.config, name=name)
    plain.build()
    for value, variable in zip(
        embedding_values(encoder.embeddings), _plain_embedding_variables(plain.embeddings)
    ):
        variable.assign(value)
    for source, variable in zip(_non_embedding_weights(encoder), _non_embedding_weights(plain)):
        variable.assign(source)
    return plain
