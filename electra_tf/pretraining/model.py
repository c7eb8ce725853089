"""The ELECTRA pre-training model: generator + discriminator and their joint loss."""

import keras
import tensorflow as tf

from electra_tf.config import ElectraConfig
from electra_tf.encoder import ElectraEncoder
from electra_tf.layers.dropout import fold_seed
from electra_tf.layers.heads import DiscriminatorHead, MaskedLMHead
from electra_tf.pretraining import masking
from electra_tf.pretraining.metrics import AUC_BINS
from electra_tf.tokenization import SpecialTokens

# Salts that split one step key into independent streams.
_MASK_SALT, _SAMPLE_SALT, _GEN_DROPOUT_SALT, _DISC_DROPOUT_SALT = range(4)


@keras.saving.register_keras_serializable(package="electra_tf")
class ElectraPretrainer(keras.Model):
    """Replaced token detection: L = gen_weight * L_MLM(G) + disc_weight * L_Disc(D).

    The generator is a small masked LM whose output layer is the (shared)
    word-embedding table; its samples replace the masked tokens, with no
    gradient through the sampling; the discriminator labels every real token
    as original or replaced. Only `discriminator` is kept for fine-tuning.
    """

    def __init__(self, discriminator_config, generator_config, special_token_ids, *,
                 mask_prob=0.15, max_predictions_per_seq=19, gen_weight=1.0, disc_weight=50.0,
                 temperature=1.0, disallow_correct=False, untied_generator_embeddings=False,
                 **kwargs):
        super().__init__(**kwargs)
        self.discriminator_config = _as_config(discriminator_config)
        self.generator_config = _as_config(generator_config)
        self.special = _as_special(special_token_ids)
        self.mask_prob = mask_prob
        self.max_predictions_per_seq = max_predictions_per_seq
        self.gen_weight = gen_weight
        self.disc_weight = disc_weight
        self.temperature = temperature
        self.disallow_correct = disallow_correct
        self.untied_generator_embeddings = untied_generator_embeddings

        policy = self.dtype_policy
        self.discriminator = ElectraEncoder(self.discriminator_config, dtype=policy, name="electra")
        shared = None if untied_generator_embeddings else self.discriminator.embeddings
        self.generator = ElectraEncoder(self.generator_config, embeddings=shared, dtype=policy,
                                        name="generator")
        self.generator_predictions = MaskedLMHead(
            self.generator.embeddings, self.generator_config.initializer_range,
            self.generator_config.layer_norm_eps, dtype=policy, name="generator_predictions")
        self.discriminator_predictions = DiscriminatorHead(
            self.discriminator_config.hidden_size, self.discriminator_config.initializer_range,
            dtype=policy, name="discriminator_predictions")

    def build(self, input_shape=None):
        self.discriminator.build()
        self.generator.build()
        self.generator_predictions.build((None, None, self.generator_config.hidden_size))
        self.discriminator_predictions.build((None, None, self.discriminator_config.hidden_size))
        self.built = True

    def loss_denominators(self, features):
        """Per-replica counts the losses are normalized by; all-reduced before the step."""
        never_mask = (self.special.cls, self.special.sep, self.special.mask, self.special.pad)
        masked = masking.num_to_mask(features["input_ids"], features["input_mask"], never_mask,
                                     self.mask_prob, self.max_predictions_per_seq)
        return {"masked_tokens": tf.cast(tf.reduce_sum(masked), tf.float32),
                "real_tokens": tf.reduce_sum(tf.cast(features["input_mask"], tf.float32))}

    def compute_loss_and_stats(self, features, denominators, key, example_index, replica_id=0,
                               training=True):
        """The step's loss contribution from this replica and its metric sums.

        `denominators` are global (summed over replicas and accumulation
        micro-batches), so per-replica losses add up to the global loss.
        """
        masked = masking.mask_inputs(
            features, self.special, mask_prob=self.mask_prob,
            max_predictions=self.max_predictions_per_seq,
            key=fold_seed(key, _MASK_SALT), example_index=example_index)

        def dropout_key(salt):
            return fold_seed(fold_seed(key, salt), replica_id) if training else None

        gen_hidden = self.generator(masked._asdict(), dropout_key=dropout_key(_GEN_DROPOUT_SALT))
        gen_hidden = tf.gather(gen_hidden, masked.masked_lm_positions, batch_dims=1)
        mlm_logits = self.generator_predictions(gen_hidden)
        weights = masked.masked_lm_weights
        mlm_nll = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=masked.masked_lm_ids, logits=mlm_logits)

        sampled_ids = masking.gumbel_sample(
            mlm_logits, fold_seed(key, _SAMPLE_SALT), example_index, self.temperature,
            disallow_ids=masked.masked_lm_ids if self.disallow_correct else None)
        fake_ids = masking.replace_at(features["input_ids"], masked.masked_lm_positions, weights,
                                      sampled_ids)
        input_mask = tf.cast(features["input_mask"], tf.float32)
        # A sample equal to the original is not a replacement.
        disc_labels = tf.cast(tf.not_equal(fake_ids, features["input_ids"]), tf.float32) * input_mask
        disc_features = {"input_ids": fake_ids, "input_mask": features["input_mask"],
                         "segment_ids": features["segment_ids"]}
        disc_hidden = self.discriminator(disc_features, dropout_key=dropout_key(_DISC_DROPOUT_SALT))
        disc_logits = self.discriminator_predictions(disc_hidden)
        disc_xent = tf.nn.sigmoid_cross_entropy_with_logits(labels=disc_labels, logits=disc_logits)

        mlm_loss_sum = tf.reduce_sum(mlm_nll * weights)
        disc_loss_sum = tf.reduce_sum(disc_xent * input_mask)
        loss = (self.gen_weight * mlm_loss_sum / tf.maximum(denominators["masked_tokens"], 1.0)
                + self.disc_weight * disc_loss_sum / tf.maximum(denominators["real_tokens"], 1.0))

        mlm_preds = tf.argmax(mlm_logits, axis=-1, output_type=tf.int32)
        disc_probs = tf.sigmoid(disc_logits)
        disc_preds = tf.cast(disc_logits > 0.0, tf.float32)
        prob_bins = tf.minimum(tf.cast(disc_probs * AUC_BINS, tf.int32), AUC_BINS - 1)
        stats = {
            "loss": loss,
            "masked_lm_loss_sum": mlm_loss_sum,
            "masked_tokens": tf.reduce_sum(weights),
            "masked_lm_correct": tf.reduce_sum(
                tf.cast(tf.equal(mlm_preds, masked.masked_lm_ids), tf.float32) * weights),
            "sampled_correct": tf.reduce_sum(
                tf.cast(tf.equal(sampled_ids, masked.masked_lm_ids), tf.float32) * weights),
            "disc_loss_sum": disc_loss_sum,
            "real_tokens": tf.reduce_sum(input_mask),
            "disc_correct": tf.reduce_sum(tf.cast(tf.equal(disc_preds, disc_labels), tf.float32)
                                          * input_mask),
            "disc_true_positives": tf.reduce_sum(disc_preds * disc_labels),
            "disc_predicted_positives": tf.reduce_sum(disc_preds * input_mask),
            "disc_label_positives": tf.reduce_sum(disc_labels),
            "disc_positive_histogram": _histogram(prob_bins, disc_labels),
            "disc_negative_histogram": _histogram(prob_bins, (1.0 - disc_labels) * input_mask),
        }
        return loss, stats

    def get_config(self):
        return {**super().get_config(),
                "discriminator_config": self.discriminator_config.to_dict(),
                "generator_config": self.generator_config.to_dict(),
                "special_token_ids": self.special._asdict(),
                "mask_prob": self.mask_prob,
                "max_predictions_per_seq": self.max_predictions_per_seq,
                "gen_weight": self.gen_weight, "disc_weight": self.disc_weight,
                "temperature": self.temperature, "disallow_correct": self.disallow_correct,
                "untied_generator_embeddings": self.untied_generator_embeddings}


def _as_config(config):
    return config if isinstance(config, ElectraConfig) else ElectraConfig.from_dict(config)


def _histogram(bins, weights):
    # A one-hot sum rather than tf.math.bincount, which XLA does not compile.
    return tf.reduce_sum(tf.one_hot(bins, AUC_BINS) * weights[..., None], axis=[0, 1])


def _as_special(special):
    return special if isinstance(special, SpecialTokens) else SpecialTokens(**special)
