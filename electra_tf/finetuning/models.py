"""Fine-tuning models: a pre-trained ELECTRA discriminator plus a small task head.

Each model holds the discriminator as `encoder` (layer name "electra", so its
variables live under ".../electra/..." as in the pre-training model) and its
head under a "task_specific" block, the original's scope for task heads (the
layer-wise learning-rate decay treats everything there as the top).

Besides `call(features, training=False)` (logits for inference) each model
implements the `electra_tf.training.trainer.Trainer` task interface:
`loss_denominators`, `compute_loss_and_stats` and `trainable_variables`.
Dropout is driven by the step key, as in pre-training.

Losses follow the original heads: softmax cross-entropy summed over a
sequence's labelled (first-wordpiece) positions for tagging, cross-entropy
or squared error on [CLS] for sentence tasks, and the mean of start/end
cross-entropies (+ 0.5 x the answerability loss for SQuAD 2.0) for QA, each
averaged over the examples of the global batch.
"""

import keras
import tensorflow as tf

from electra_tf.data import tokenization
from electra_tf.model.config import ElectraConfig
from electra_tf.model.encoder import ElectraEncoder
from electra_tf.model.layers.dropout import example_keys, stateless_dropout
from electra_tf.model.layers.transformer import exact_gelu, truncated_normal_dense

_ENCODER_SALT, _HEAD_SALT = 0, 1


class EncoderMismatchError(ValueError):
    """A saved discriminator does not fit the model (or vocabulary) it is loaded into."""


class _TaskSpecific(keras.layers.Layer):
    """A named container so head variables sit under ".../task_specific/...".

    Sub-layers are attributes (not a list) so tf.train.Checkpoint sees them.
    """

    def __init__(self, layers, **kwargs):
        super().__init__(**kwargs)
        self._names = list(layers)
        for name, layer in layers.items():
            setattr(self, name, layer)

    def build_layers(self, shapes):
        with keras.name_scope(self.name):
            for name, shape in shapes.items():
                getattr(self, name).build(shape)
        self.built = True


class _FinetuningModel(keras.Model):
    """The discriminator encoder plus loading, dropout keys and config plumbing."""

    def __init__(self, config, **kwargs):
        super().__init__(**kwargs)
        self.config = (
            config if isinstance(config, ElectraConfig) else ElectraConfig.from_dict(config)
        )
        self.encoder = ElectraEncoder(self.config, dtype=self.dtype_policy, name="electra")

    def _head_shapes(self):
        raise NotImplementedError

    def _dense(self, units, name, **kwargs):
        return truncated_normal_dense(
            units, self.config.initializer_range, name, self.dtype_policy, **kwargs
        )

    def _set_head(self, layers):
        """The task head: `layers` ({name: layer}) under ".../task_specific/..."."""
        self.task_specific = _TaskSpecific(layers, dtype=self.dtype_policy, name="task_specific")

    def build(self, input_shape=None):
        self.encoder.build()
        self.task_specific.build_layers(self._head_shapes())
        self.built = True

    def _keys(self, key, example_index, training):
        """(encoder, head) dropout keys, one per example (see `example_keys`)."""
        if not training or key is None:
            return None, None
        return (
            example_keys(key, _ENCODER_SALT, example_index),
            example_keys(key, _HEAD_SALT, example_index),
        )

    def _dropout(self, x, key):
        return stateless_dropout(x, self.config.hidden_dropout_prob, key)

    def _encode(self, features, encoder_key):
        inputs = {k: features[k] for k in ("input_ids", "input_mask", "segment_ids")}
        if not self.encoder.trainable:  # a frozen encoder (--freeze_encoder) runs as at inference
            encoder_key = None
        return self.encoder(inputs, dropout_key=encoder_key)

    def get_config(self):
        return {**super().get_config(), "config": self.config.to_dict()}


def check_vocab_size(model_vocab_size, vocab_file, model_directory=None):
    """Raises EncoderMismatchError unless the vocabulary has the model's size."""
    size = len(tokenization.load_vocab(vocab_file))
    if size != model_vocab_size:
        where = f" (from {model_directory})" if model_directory else ""
        raise EncoderMismatchError(
            f"model vocab {model_vocab_size}{where} vs {vocab_file} {size}: the vocabulary "
            "must be the one the discriminator was pre-trained with"
        )


def _xent(labels, logits):
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


@keras.saving.register_keras_serializable(package="electra_tf")
class ElectraForTokenClassification(_FinetuningModel):
    """Per-token dense layer; the loss is on positions with `label_weights` > 0.

    Features: input_ids, input_mask, segment_ids and, for training,
    label_ids / label_weights ([batch, seq], weight 1 on each word's first
    wordpiece). `call` returns [batch, seq, num_labels] float32 logits.
    """

    def __init__(self, config, num_labels, **kwargs):
        super().__init__(config, **kwargs)
        self.num_labels = int(num_labels)
        self._set_head({"dense": self._dense(self.num_labels, "dense")})

    def _head_shapes(self):
        return {"dense": (None, None, self.config.hidden_size)}

    def _logits(self, features, encoder_key=None):
        hidden = self._encode(features, encoder_key)
        return tf.cast(self.task_specific.dense(hidden), tf.float32)

    def call(self, features, training=False):
        return self._logits(features)

    def loss_denominators(self, features):
        return {"examples": tf.cast(tf.shape(features["input_ids"])[0], tf.float32)}

    def compute_loss_and_stats(self, features, denominators, key, example_index, training=True):
        encoder_key, _ = self._keys(key, example_index, training)
        logits = self._logits(features, encoder_key)
        weights = tf.cast(features["label_weights"], tf.float32)
        token_loss = _xent(features["label_ids"], logits) * weights
        loss_sum = tf.reduce_sum(token_loss)
        loss = loss_sum / tf.maximum(denominators["examples"], 1.0)
        correct = tf.cast(
            tf.equal(
                tf.argmax(logits, -1, output_type=tf.int32),
                tf.cast(features["label_ids"], tf.int32),
            ),
            tf.float32,
        )
        return loss, {
            "loss": loss,
            "loss_sum": loss_sum,
            "examples": tf.cast(tf.shape(logits)[0], tf.float32),
            "labeled_tokens": tf.reduce_sum(weights),
            "correct": tf.reduce_sum(correct * weights),
        }

    def get_config(self):
        return {**super().get_config(), "num_labels": self.num_labels}


@keras.saving.register_keras_serializable(package="electra_tf")
class ElectraForSequenceClassification(_FinetuningModel):
    """[CLS] -> dropout -> dense: class logits, or one score for regression (MSE).

    Features: input_ids, input_mask, segment_ids and, for training, label_ids
    ([batch] int class index, or float score for regression). `call` returns
    [batch, num_labels] logits ([batch] scores for regression), float32.
    """

    def __init__(self, config, num_labels, is_regression=False, **kwargs):
        super().__init__(config, **kwargs)
        self.is_regression = bool(is_regression)
        self.num_labels = 1 if self.is_regression else int(num_labels)
        self._set_head({"dense": self._dense(self.num_labels, "dense")})

    def _head_shapes(self):
        return {"dense": (None, self.config.hidden_size)}

    def _logits(self, features, encoder_key=None, head_key=None):
        cls = self._encode(features, encoder_key)[:, 0]
        logits = tf.cast(self.task_specific.dense(self._dropout(cls, head_key)), tf.float32)
        return tf.squeeze(logits, -1) if self.is_regression else logits

    def call(self, features, training=False):
        return self._logits(features)

    def loss_denominators(self, features):
        return {"examples": tf.cast(tf.shape(features["input_ids"])[0], tf.float32)}

    def compute_loss_and_stats(self, features, denominators, key, example_index, training=True):
        encoder_key, head_key = self._keys(key, example_index, training)
        logits = self._logits(features, encoder_key, head_key)
        if self.is_regression:
            per_example = tf.square(logits - tf.cast(features["label_ids"], tf.float32))
            correct = tf.zeros([])
        else:
            labels = tf.cast(features["label_ids"], tf.int32)
            per_example = _xent(labels, logits)
            correct = tf.reduce_sum(
                tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
            )
        loss_sum = tf.reduce_sum(per_example)
        loss = loss_sum / tf.maximum(denominators["examples"], 1.0)
        return loss, {
            "loss": loss,
            "loss_sum": loss_sum,
            "examples": tf.cast(tf.shape(logits)[0], tf.float32),
            "correct": correct,
        }

    def get_config(self):
        return {
            **super().get_config(),
            "num_labels": self.num_labels,
            "is_regression": self.is_regression,
        }


@keras.saving.register_keras_serializable(package="electra_tf")
class ElectraForQuestionAnswering(_FinetuningModel):
    """Start / end logits over the passage; SQuAD 2.0 adds the answerable classifier.

    Positions outside the passage (segment 0 other than [CLS], and padding)
    get -1000, as in the original. The 2.0 classifier reads [CLS] together
    with the start-probability-weighted hidden state through a 512-unit GELU
    layer (the original's answerable_uses_start_logits), and its loss is
    weighted 0.5. Start and end are predicted independently (the original's
    joint beam-search end prediction is not reproduced).

    `call` returns a dict: start_logits, end_logits [batch, seq] and, for
    2.0, answerable_logit [batch] (positive: impossible).
    """

    answerable_weight = 0.5

    def __init__(self, config, version_2=False, **kwargs):
        super().__init__(config, **kwargs)
        self.version_2 = bool(version_2)
        layers = {
            "start_logits": self._dense(1, "start_logits"),
            "end_logits": self._dense(1, "end_logits"),
        }
        if self.version_2:
            layers["answerable_hidden"] = self._dense(
                512, "answerable_hidden", activation=exact_gelu
            )
            layers["answerable_logit"] = self._dense(1, "answerable_logit")
        self._set_head(layers)

    def _head_shapes(self):
        h = self.config.hidden_size
        shapes = {"start_logits": (None, None, h), "end_logits": (None, None, h)}
        if self.version_2:
            shapes["answerable_hidden"] = (None, 2 * h)
            shapes["answerable_logit"] = (None, 512)
        return shapes

    def _outputs(self, features, encoder_key=None):
        hidden = self._encode(features, encoder_key)
        seq_length = tf.shape(hidden)[1]
        answer_mask = tf.cast(features["input_mask"], tf.float32) * tf.cast(
            features["segment_ids"], tf.float32
        ) + tf.one_hot(0, seq_length)
        penalty = 1000.0 * (answer_mask - 1.0)
        head = self.task_specific
        start = tf.cast(tf.squeeze(head.start_logits(hidden), -1), tf.float32) + penalty
        end = tf.cast(tf.squeeze(head.end_logits(hidden), -1), tf.float32) + penalty
        outputs = {"start_logits": start, "end_logits": end}
        if self.version_2:
            start_p = tf.cast(tf.nn.softmax(start), hidden.dtype)
            start_feature = tf.reduce_sum(start_p[..., None] * hidden, axis=1)
            rep = tf.concat([hidden[:, 0], start_feature], -1)
            outputs["answerable_logit"] = tf.cast(
                tf.squeeze(head.answerable_logit(head.answerable_hidden(rep)), -1), tf.float32
            )
        return outputs

    def call(self, features, training=False):
        return self._outputs(features)

    def loss_denominators(self, features):
        return {"examples": tf.cast(tf.shape(features["input_ids"])[0], tf.float32)}

    def compute_loss_and_stats(self, features, denominators, key, example_index, training=True):
        encoder_key, _ = self._keys(key, example_index, training)
        out = self._outputs(features, encoder_key)
        per_example = 0.5 * (
            _xent(features["start_positions"], out["start_logits"])
            + _xent(features["end_positions"], out["end_logits"])
        )
        if self.version_2:
            per_example += self.answerable_weight * tf.nn.sigmoid_cross_entropy_with_logits(
                labels=tf.cast(features["is_impossible"], tf.float32),
                logits=out["answerable_logit"],
            )
        loss_sum = tf.reduce_sum(per_example)
        loss = loss_sum / tf.maximum(denominators["examples"], 1.0)
        return loss, {
            "loss": loss,
            "loss_sum": loss_sum,
            "examples": tf.cast(tf.shape(per_example)[0], tf.float32),
        }

    def get_config(self):
        return {**super().get_config(), "version_2": self.version_2}
