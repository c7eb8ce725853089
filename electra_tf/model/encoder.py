"""The ELECTRA transformer encoder (used for both generator and discriminator)."""

import keras
import tensorflow as tf

from electra_tf.filenames import CONFIG_FILE, WEIGHTS_PREFIX
from electra_tf.model.config import ElectraConfig
from electra_tf.model.layers.dropout import fold_seed
from electra_tf.model.layers.embeddings import ElectraEmbeddings
from electra_tf.model.layers.transformer import (
    TransformerLayer,
    attention_bias_from_mask,
    truncated_normal_dense,
)


@keras.saving.register_keras_serializable(package="electra_tf")
class ElectraEncoder(keras.layers.Layer):
    """Embeddings (optionally shared) -> projection if E != H -> N transformer layers.

    Inputs are the original feature dict: `input_ids`, `input_mask`,
    `segment_ids` ([batch, seq] integers). Pass `embeddings=` to share an
    embedding block with another encoder (the generator reads the
    discriminator's). `dropout_key` turns dropout on; without it the encoder is
    deterministic (inference).
    """

    def __init__(self, config, embeddings=None, **kwargs):
        super().__init__(**kwargs)
        self.config = (
            config if isinstance(config, ElectraConfig) else ElectraConfig.from_dict(config)
        )
        c = self.config
        policy = self.dtype_policy
        if embeddings is None:
            embeddings = ElectraEmbeddings(
                c.vocab_size,
                c.embedding_dim,
                c.max_position_embeddings,
                c.type_vocab_size,
                c.initializer_range,
                c.layer_norm_eps,
                c.hidden_dropout_prob,
                dtype=policy,
                name="embeddings",
            )
        elif embeddings.vocab_size != c.vocab_size or embeddings.embedding_size != c.embedding_dim:
            raise ValueError(
                f"Shared embeddings are {embeddings.vocab_size}x{embeddings.embedding_size} but "
                f"this encoder expects {c.vocab_size}x{c.embedding_dim}"
            )
        self.embeddings = embeddings
        self.embeddings_project = (
            truncated_normal_dense(c.hidden_size, c.initializer_range, "embeddings_project", policy)
            if c.embedding_dim != c.hidden_size
            else None
        )
        # Attributes rather than a list: tf.train.Checkpoint does not see into
        # Keras 3's tracked lists, and checkpoints must hold every layer.
        for i in range(c.num_hidden_layers):
            setattr(
                self,
                f"layer_{i}",
                TransformerLayer(
                    c.hidden_size,
                    c.num_attention_heads,
                    c.intermediate_size,
                    c.hidden_dropout_prob,
                    c.attention_probs_dropout_prob,
                    c.initializer_range,
                    c.layer_norm_eps,
                    dtype=policy,
                    name=f"layer_{i}",
                ),
            )

    @property
    def transformer_layers(self):
        return [getattr(self, f"layer_{i}") for i in range(self.config.num_hidden_layers)]

    def build(self, input_shape=None):
        if not self.embeddings.built:
            self.embeddings.build()
        if self.embeddings_project is not None:
            self.embeddings_project.build((None, None, self.config.embedding_dim))
        for layer in self.transformer_layers:
            layer.build((None, None, self.config.hidden_size))
        self.built = True

    def call(self, inputs, dropout_key=None, return_all_layers=False):
        """[B, L, H] final hidden states, or the list of every layer's output."""
        keys = (
            None if dropout_key is None else fold_seed(dropout_key, i)
            for i in range(len(self.transformer_layers) + 1)
        )
        hidden = self.embeddings(inputs["input_ids"], inputs["segment_ids"], dropout_key=next(keys))
        if self.embeddings_project is not None:
            hidden = self.embeddings_project(hidden)
        bias = self.attention_bias(inputs["input_mask"])
        all_layers = []
        for layer in self.transformer_layers:
            hidden = layer(hidden, bias, dropout_key=next(keys))
            all_layers.append(hidden)
        return all_layers if return_all_layers else hidden

    def attention_bias(self, input_mask):
        """Additive attention bias; subclasses restrict which positions attend where."""
        return attention_bias_from_mask(input_mask, self.compute_dtype)

    def dummy_inputs(self, batch_size=1, seq_length=8):
        ids = tf.zeros([batch_size, seq_length], tf.int32)
        return {"input_ids": ids, "input_mask": tf.ones_like(ids), "segment_ids": ids}

    def get_config(self):
        return {**super().get_config(), "config": self.config.to_dict()}

    def save_pretrained(self, directory: str) -> None:
        """Writes `config.json` + the `encoder.ckpt` TF checkpoint: the encoder alone."""
        tf.io.gfile.makedirs(directory)
        self.config.save(f"{directory}/{CONFIG_FILE}")
        tf.train.Checkpoint(encoder=self).write(f"{directory}/{WEIGHTS_PREFIX}")

    @classmethod
    def from_pretrained(cls, directory: str, **kwargs) -> "ElectraEncoder":
        """Rebuilds an encoder written by `save_pretrained` (extra kwargs go to the layer)."""
        config_path = f"{directory}/{CONFIG_FILE}"
        weights_index = f"{directory}/{WEIGHTS_PREFIX}.index"
        for path in (config_path, weights_index):
            if not tf.io.gfile.exists(path):
                raise FileNotFoundError(
                    f"{path} does not exist; a saved encoder directory holds {CONFIG_FILE} "
                    f"and {WEIGHTS_PREFIX}.* (written by ElectraEncoder.save_pretrained). For "
                    "HF, original TF1 or tf-models checkpoints use electra_tf.load_encoder"
                )
        encoder = cls(ElectraConfig.load(config_path), **kwargs)
        encoder(encoder.dummy_inputs())
        status = tf.train.Checkpoint(encoder=encoder).read(f"{directory}/{WEIGHTS_PREFIX}")
        status.assert_consumed()
        return encoder
