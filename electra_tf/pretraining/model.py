"""The ELECTRA pre-training model: generator + discriminator and their joint loss.

One model and one train step cover the paper's ablations (see
docs/pretraining_variants.md and electra_tf.pretraining.variants); each is one
constructor argument (one flag of run_pretraining) away from the default.  The
step is one method per generator mode (`_uniform_generator_logits`,
`_cloze_generator_logits`, `_masked_generator_logits`, `_adversarial_loss`) and
per discriminator objective (`_bert_mlm_loss`, `_replaced_token_detection_loss`,
`_token_prediction_loss`).
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import keras
import tensorflow as tf

from electra_tf.data.tokenization import SpecialTokens
from electra_tf.model.config import ElectraConfig
from electra_tf.model.encoder import ElectraEncoder
from electra_tf.model.layers.dropout import example_keys, fold_seed
from electra_tf.model.layers.embeddings import ElectraEmbeddings
from electra_tf.model.layers.heads import DiscriminatorHead, MaskedLMHead
from electra_tf.pretraining import gdes, masking
from electra_tf.pretraining.metrics import AUC_BINS
from electra_tf.pretraining.two_tower import TwoTowerGenerator
from electra_tf.pretraining.variants import (
    EMBEDDING_SHARING,
    GENERATOR_TRAINING,
    OBJECTIVES,
    RTD_OBJECTIVES,
    TOKEN_OBJECTIVES,
    needs_same_size,
    resolve_embedding_sharing,
    validate_variant,
)

# run_pretraining's flags and experiments.compare read the variant names from here.
__all__ = [
    "EMBEDDING_SHARING",
    "GENERATOR_TRAINING",
    "OBJECTIVES",
    "ElectraPretrainer",
    "resolve_embedding_sharing",
]

# Salts that split one step key into independent streams.
_MASK_SALT, _SAMPLE_SALT, _GEN_DROPOUT_SALT, _DISC_DROPOUT_SALT = range(4)

# BERT's corruption of the chosen positions: 80% [MASK], 10% random, 10% kept.
BERT_MASK_TOKEN_RATIO, BERT_RANDOM_TOKEN_RATIO = 0.8, 0.1


class _Batch(NamedTuple):
    """One micro-batch as the step's pieces see it: inputs, masking and normalizers."""

    features: dict
    masked: masking.MaskedInputs
    denominators: dict
    masked_denominator: tf.Tensor
    real_denominator: tf.Tensor
    input_mask: tf.Tensor  # float32 [B, L]
    dropout_key: Callable


@keras.saving.register_keras_serializable(package="electra_tf")
class ElectraPretrainer(keras.Model):
    """Replaced token detection: L = gen_weight * L_MLM(G) + disc_weight * L_Disc(D).

    The generator is a small masked LM whose output layer is the (shared)
    word-embedding table; its samples replace the masked tokens, with no
    gradient through the sampling; the discriminator labels every real token
    as original or replaced. Only `discriminator` is kept for fine-tuning
    (`discriminator_for_export()` gives it as a plain encoder).

    Variants (the module docstring lists them; the default reproduces the
    paper's ELECTRA exactly):
      - electra_15: the discriminator loss only counts the masked positions.
      - replace_mlm: D sees generator samples at the masked positions (never
        [MASK]) and predicts the original tokens there with an MLM head
        (weight 1, not disc_weight).
      - all_tokens_mlm: as replace_mlm, but D predicts every real token with
        a copy mechanism: p(x) = c * 1[x = input] + (1 - c) * softmax(x),
        c = sigmoid(copy logit) from the binary head.
      - mlm: BERT: 80/10/10 corruption, the full-size model is the masked LM,
        no generator network.
      - electric: two-tower cloze generator on the unmasked input, trained on
        every candidate position; D logits += stop_grad(log q(x_t)) +
        log(mask_prob / (1 - mask_prob)); label 1 at every masked position.
      - two_stage: G alone until `two_stage_switch_step`; then
        `start_second_stage()` freezes G (a non-trainable copy samples) and
        initializes D's encoder from G; D alone after that.
      - adversarial: G is trained with REINFORCE to maximize D's loss: reward
        of a sample = D's cross-entropy at its position, minus the batch mean
        reward (baseline); no MLM gradient reaches G.
      - uniform_generator: replacements uniform over the vocabulary.
      - embedding_sharing: none | embeddings (shared embedding block) | all
        (G is D's encoder, original untied_generator=False) | gdes.
    """

    def __init__(
        self,
        discriminator_config,
        generator_config,
        special_token_ids,
        *,
        mask_prob=0.15,
        max_predictions_per_seq=19,
        gen_weight=1.0,
        disc_weight=50.0,
        temperature=1.0,
        disallow_correct=False,
        untied_generator_embeddings=False,
        objective="electra",
        generator_training="mle",
        uniform_generator=False,
        untied_generator=True,
        embedding_sharing=None,
        two_stage_switch_step=0,
        **kwargs,
    ):
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
        self.embedding_sharing = resolve_embedding_sharing(
            embedding_sharing, untied_generator_embeddings, untied_generator
        )
        self.untied_generator_embeddings = self.embedding_sharing == "none"
        self.untied_generator = self.embedding_sharing != "all"
        self.objective = objective
        self.generator_training = generator_training
        self.uniform_generator = bool(uniform_generator)
        self.two_stage_switch_step = int(two_stage_switch_step)
        validate_variant(
            objective,
            generator_training,
            self.uniform_generator,
            self.embedding_sharing,
            self.discriminator_config,
            self.generator_config,
        )
        if needs_same_size(generator_training, self.embedding_sharing):
            self.generator_config = self.discriminator_config.replace(
                embedding_size=self.discriminator_config.embedding_dim
            )

        has_generator = objective != "mlm" and not self.uniform_generator
        self.generator = None
        self.two_tower = None
        self.generator_predictions = None
        self.discriminator_predictions = None
        self.mlm_predictions = None
        self._create_encoders(has_generator)
        self._create_heads(has_generator)
        if generator_training == "two_stage":
            self._create_frozen_generator()

    def _create_encoders(self, has_generator):
        """D's encoder and G's (an encoder, the two-tower cloze model, or D itself), with
        the embedding sharing asked for."""
        policy = self.dtype_policy
        d_config, g_config = self.discriminator_config, self.generator_config
        if self.embedding_sharing == "gdes":
            # G owns E_G; D reads stop_gradient(E_G) + E_delta.
            shared = ElectraEmbeddings(
                g_config.vocab_size,
                g_config.embedding_dim,
                g_config.max_position_embeddings,
                g_config.type_vocab_size,
                g_config.initializer_range,
                g_config.layer_norm_eps,
                g_config.hidden_dropout_prob,
                dtype=policy,
                name="embeddings",
            )
            self.discriminator = ElectraEncoder(
                d_config,
                embeddings=gdes.GDESEmbeddings(shared, dtype=policy, name="gdes_embeddings"),
                dtype=policy,
                name="electra",
            )
            self.generator = ElectraEncoder(
                g_config, embeddings=shared, dtype=policy, name="generator"
            )
        else:
            self.discriminator = ElectraEncoder(d_config, dtype=policy, name="electra")
            shared = None if self.embedding_sharing == "none" else self.discriminator.embeddings
            if has_generator and self.objective == "electric":
                self.two_tower = TwoTowerGenerator(
                    g_config, embeddings=shared, dtype=policy, name="generator"
                )
            elif has_generator and self.embedding_sharing == "all":
                self.generator = self.discriminator
            elif has_generator:
                self.generator = ElectraEncoder(
                    g_config, embeddings=shared, dtype=policy, name="generator"
                )

    def _create_heads(self, has_generator):
        """G's masked-LM head, and D's token (MLM) or binary head as the objective needs."""
        policy = self.dtype_policy
        d_config, g_config = self.discriminator_config, self.generator_config
        if has_generator:
            table = (self.two_tower or self.generator).embeddings
            self.generator_predictions = MaskedLMHead(
                table,
                g_config.initializer_range,
                g_config.layer_norm_eps,
                dtype=policy,
                name="generator_predictions",
            )
        if self.objective in TOKEN_OBJECTIVES:
            self.mlm_predictions = MaskedLMHead(
                self.discriminator.embeddings,
                d_config.initializer_range,
                d_config.layer_norm_eps,
                dtype=policy,
                name="mlm_predictions",
            )
        if self.objective in RTD_OBJECTIVES or self.objective == "all_tokens_mlm":
            # all_tokens_mlm uses it as the copy-probability head.
            self.discriminator_predictions = DiscriminatorHead(
                d_config.hidden_size,
                d_config.initializer_range,
                dtype=policy,
                name="discriminator_predictions",
            )

    def _create_frozen_generator(self):
        """two_stage's sampler for stage two."""
        policy = self.dtype_policy
        g_config = self.generator_config
        # The sampler of stage two: a frozen copy of G (its own embeddings),
        # so the optimizer's weight decay cannot move it.
        self.frozen_generator = ElectraEncoder(
            g_config.replace(embedding_size=g_config.embedding_dim),
            dtype=policy,
            name="frozen_generator",
        )
        self.frozen_generator_predictions = MaskedLMHead(
            self.frozen_generator.embeddings,
            g_config.initializer_range,
            g_config.layer_norm_eps,
            dtype=policy,
            name="frozen_generator_predictions",
        )

    def build(self, input_shape=None):
        g_hidden = self.generator_config.hidden_size
        # D first: the build order fixes the initial values drawn from the seed.
        self.discriminator.build()
        if self.generator is not None and self.generator is not self.discriminator:
            self.generator.build()
        if self.two_tower is not None:
            self.two_tower.build()
            g_hidden *= 2
        if self.generator_predictions is not None:
            self.generator_predictions.build((None, None, g_hidden))
        if self.mlm_predictions is not None:
            self.mlm_predictions.build((None, None, self.discriminator_config.hidden_size))
        if self.discriminator_predictions is not None:
            self.discriminator_predictions.build(
                (None, None, self.discriminator_config.hidden_size)
            )
        if self.generator_training == "two_stage":
            self.frozen_generator.build()
            self.frozen_generator_predictions.build((None, None, g_hidden))
            # The setter (unlike the constructor argument) reaches every sublayer.
            self.frozen_generator.trainable = False
            self.frozen_generator_predictions.trainable = False
            self.stage = self.add_weight(
                name="two_stage_stage",
                shape=(),
                dtype="int32",
                initializer="zeros",
                trainable=False,
            )
        if self.generator_training == "adversarial":
            # REINFORCE baseline: the previous step's mean reward over the global batch
            # (`after_step`), so every replica and micro-batch uses the same one.
            self.reward_baseline = self.add_weight(
                name="adversarial_reward_baseline", shape=(), initializer="zeros", trainable=False
            )
        self.built = True

    def after_step(self, stats):
        """Called by the Trainer with a step's stats summed over the global batch."""
        if self.generator_training == "adversarial":
            self.reward_baseline.assign(
                stats["adversarial_reward_sum"] / tf.maximum(stats["masked_tokens"], 1.0)
            )

    # ----------------------------------------------------------------- two_stage
    def start_second_stage(self):
        """Freezes G (copies it to the sampler) and initializes D's encoder from G."""
        if self.generator_training != "two_stage":
            raise ValueError("start_second_stage() is only for generator_training='two_stage'")
        gdes.copy_encoder_weights(self.generator, self.frozen_generator)
        for source, target in zip(
            self.generator_predictions.weights, self.frozen_generator_predictions.weights
        ):
            target.assign(source)
        gdes.copy_encoder_weights(self.generator, self.discriminator)
        self.stage.assign(1)

    def in_second_stage(self):
        return self.generator_training == "two_stage" and int(self.stage.numpy()) == 1

    def discriminator_for_export(self):
        """The discriminator as a plain ElectraEncoder (GDES tables folded in)."""
        if self.embedding_sharing == "gdes":
            return gdes.materialize_encoder(self.discriminator)
        return self.discriminator

    # ----------------------------------------------------------------- losses
    def loss_denominators(self, features):
        """Per-replica counts the losses are normalized by; all-reduced before the step."""
        never_mask = (self.special.cls, self.special.sep, self.special.mask, self.special.pad)
        masked = masking.num_to_mask(
            features["input_ids"],
            features["input_mask"],
            never_mask,
            self.mask_prob,
            self.max_predictions_per_seq,
        )
        denominators = {
            "masked_tokens": tf.cast(tf.reduce_sum(masked), tf.float32),
            "real_tokens": tf.reduce_sum(tf.cast(features["input_mask"], tf.float32)),
        }
        if self.objective == "electric":
            denominators["cloze_tokens"] = tf.reduce_sum(
                tf.cast(
                    masking.masking_candidates(
                        features["input_ids"], features["input_mask"], never_mask
                    ),
                    tf.float32,
                )
            )
        return denominators

    def compute_loss_and_stats(self, features, denominators, key, example_index, training=True):
        """The step's loss contribution from this replica and its metric sums.

        `denominators` are global (summed over replicas and accumulation
        micro-batches), so per-replica losses add up to the global loss.
        """

        def dropout_key(salt):
            return example_keys(key, salt, example_index) if training else None

        args = (features, denominators, key, example_index, dropout_key)
        if self.generator_training == "two_stage":
            # The stage is read when the step is traced (a tf.cond here does
            # not compile under XLA), so a step traced in stage one keeps
            # training G: after start_second_stage() the step must be traced
            # anew (run_pretraining restarts itself from the checkpoint).
            second = self.in_second_stage_at_trace()
            loss, stats = self._step(*args, generator_only=not second, frozen_generator=second)
            # Variables the stage leaves out get zero (not missing) gradients.
            return loss + _zero_gradient_anchor(self.trainable_variables), stats
        return self._step(*args)

    def in_second_stage_at_trace(self):
        with tf.init_scope():
            return bool(int(self.stage.numpy()))

    def _step(
        self,
        features,
        denominators,
        key,
        example_index,
        dropout_key,
        generator_only=False,
        frozen_generator=False,
    ):
        """One micro-batch: masking, the generator's logits and samples, the discriminator's
        objective and the generator's loss; (loss, stats)."""
        batch = self._mask(features, denominators, key, example_index, dropout_key)
        if self.objective == "mlm":
            return self._bert_mlm_loss(batch)
        masked = batch.masked
        mlm_logits, cloze_logits, cloze_loss = self._generator_logits(batch, frozen_generator)
        mlm_nll = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=masked.masked_lm_ids, logits=mlm_logits
        )
        disallow_ids = masked.masked_lm_ids if self.disallow_correct else None
        sampled_ids = masking.sample_tokens(
            mlm_logits,
            fold_seed(key, _SAMPLE_SALT),
            example_index,
            self.temperature,
            disallow_ids=disallow_ids,
        )
        mlm_loss_sum = tf.reduce_sum(mlm_nll * masked.masked_lm_weights)
        mlm_loss = mlm_loss_sum / batch.masked_denominator

        if generator_only:  # two_stage, stage one: the generator's MLM alone
            stats = _mlm_stats(mlm_loss, mlm_loss_sum, mlm_logits, sampled_ids, masked)
            stats.update(_zero_disc_stats(batch.input_mask))
            return mlm_loss, stats

        fake_ids = masking.replace_at(
            features["input_ids"], masked.masked_lm_positions, masked.masked_lm_weights, sampled_ids
        )
        disc_loss, disc_xent, disc_stats, extra_stats = self._discriminator_loss(
            batch, fake_ids, cloze_logits
        )
        if frozen_generator:
            gen_loss = 0.0
        elif self.objective == "electric":
            gen_loss = self.gen_weight * cloze_loss
        elif self.generator_training == "adversarial":
            gen_loss, extra_stats["adversarial_reward_sum"] = self._adversarial_loss(
                batch, disc_xent, mlm_logits, sampled_ids, disallow_ids
            )
        else:
            gen_loss = self.gen_weight * mlm_loss
        loss = gen_loss + disc_loss
        stats = _mlm_stats(loss, mlm_loss_sum, mlm_logits, sampled_ids, masked)
        stats.update(disc_stats)
        stats.update(extra_stats)
        return loss, stats

    def _mask(self, features, denominators, key, example_index, dropout_key):
        """The masked inputs (BERT's 80/10/10 corruption for objective 'mlm') and the
        step's normalizers."""
        bert_corruption = self.objective == "mlm"
        masked = masking.mask_inputs(
            features,
            self.special,
            mask_prob=self.mask_prob,
            max_predictions=self.max_predictions_per_seq,
            key=fold_seed(key, _MASK_SALT),
            example_index=example_index,
            **(
                dict(
                    mask_token_ratio=BERT_MASK_TOKEN_RATIO,
                    random_token_ratio=BERT_RANDOM_TOKEN_RATIO,
                    vocab_size=self.discriminator_config.vocab_size,
                )
                if bert_corruption
                else {}
            ),
        )
        return _Batch(
            features=features,
            masked=masked,
            denominators=denominators,
            masked_denominator=tf.maximum(denominators["masked_tokens"], 1.0),
            real_denominator=tf.maximum(denominators["real_tokens"], 1.0),
            input_mask=tf.cast(features["input_mask"], tf.float32),
            dropout_key=dropout_key,
        )

    # ----------------------------------------------------------------- objectives
    def _bert_mlm_loss(self, batch):
        """objective 'mlm' (BERT): the full-size model is the masked LM; nothing else."""
        masked = batch.masked
        hidden = self.discriminator(
            masked._asdict(), dropout_key=batch.dropout_key(_DISC_DROPOUT_SALT)
        )
        logits = self.mlm_predictions(tf.gather(hidden, masked.masked_lm_positions, batch_dims=1))
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=masked.masked_lm_ids, logits=logits
        )
        mlm_loss_sum = tf.reduce_sum(nll * masked.masked_lm_weights)
        loss = mlm_loss_sum / batch.masked_denominator
        stats = _mlm_stats(loss, mlm_loss_sum, logits, None, masked)
        stats.update(_zero_disc_stats(batch.input_mask))
        return loss, stats

    def _discriminator_loss(self, batch, fake_ids, cloze_logits):
        """D on the corrupted input, with the objective's loss: (loss, per-token binary
        cross-entropy or None, binary stats, token-prediction stats)."""
        features = batch.features
        disc_features = {
            "input_ids": fake_ids,
            "input_mask": features["input_mask"],
            "segment_ids": features["segment_ids"],
        }
        disc_hidden = self.discriminator(
            disc_features, dropout_key=batch.dropout_key(_DISC_DROPOUT_SALT)
        )
        if self.objective in RTD_OBJECTIVES:
            disc_loss, disc_xent, disc_stats = self._replaced_token_detection_loss(
                batch, disc_hidden, fake_ids, cloze_logits
            )
            return disc_loss, disc_xent, disc_stats, {}
        disc_loss, token_stats = self._token_prediction_loss(batch, disc_hidden, fake_ids)
        return disc_loss, None, _zero_disc_stats(batch.input_mask), token_stats

    def _replaced_token_detection_loss(self, batch, disc_hidden, fake_ids, cloze_logits):
        """electra / electra_15 / electric: D's binary loss, its cross-entropy per token (the
        adversarial generator's reward) and its stats."""
        masked, input_mask = batch.masked, batch.input_mask
        weights = masked.masked_lm_weights
        disc_logits = self.discriminator_predictions(disc_hidden)
        if self.objective == "electric":
            # Energy-based cloze: D's logit is an energy correction to q.
            log_q = -tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=fake_ids, logits=cloze_logits
            )
            disc_logits += tf.stop_gradient(log_q)
            disc_logits += math.log(self.mask_prob / (1.0 - self.mask_prob))
            _, hit = masking.scatter_positions(
                weights, masked.masked_lm_positions, weights, tf.shape(fake_ids)[1]
            )
            disc_labels = tf.cast(hit, tf.float32) * input_mask
        else:
            # A sample equal to the original is not a replacement.
            disc_labels = (
                tf.cast(tf.not_equal(fake_ids, batch.features["input_ids"]), tf.float32)
                * input_mask
            )
        disc_xent = tf.nn.sigmoid_cross_entropy_with_logits(labels=disc_labels, logits=disc_logits)
        if self.objective == "electra_15":
            _, hit = masking.scatter_positions(
                weights, masked.masked_lm_positions, weights, tf.shape(fake_ids)[1]
            )
            disc_weights = tf.cast(hit, tf.float32) * input_mask
            disc_denominator = batch.masked_denominator
        else:
            disc_weights, disc_denominator = input_mask, batch.real_denominator
        disc_loss_sum = tf.reduce_sum(disc_xent * disc_weights)
        disc_loss = self.disc_weight * disc_loss_sum / disc_denominator
        disc_stats = _disc_stats(disc_loss_sum, disc_logits, disc_labels, disc_weights)
        return disc_loss, disc_xent, disc_stats

    def _token_prediction_loss(self, batch, disc_hidden, fake_ids):
        """replace_mlm / all_tokens_mlm: D's token-prediction loss and its stats."""
        token_nll, token_weights, token_logits, token_labels = self._token_prediction(
            disc_hidden, fake_ids, batch.features, batch.masked, batch.input_mask
        )
        token_loss_sum = tf.reduce_sum(token_nll * token_weights)
        disc_loss = token_loss_sum / (
            batch.masked_denominator if self.objective == "replace_mlm" else batch.real_denominator
        )
        token_preds = tf.argmax(token_logits, axis=-1, output_type=tf.int32)
        return disc_loss, {
            "disc_mlm_loss_sum": token_loss_sum,
            "disc_mlm_tokens": tf.reduce_sum(token_weights),
            "disc_mlm_correct": tf.reduce_sum(
                tf.cast(tf.equal(token_preds, token_labels), tf.float32) * token_weights
            ),
        }

    def _token_prediction(self, disc_hidden, fake_ids, features, masked, input_mask):
        """(nll, weights, logits, labels) of replace_mlm / all_tokens_mlm's token predictions."""
        if self.objective == "replace_mlm":
            logits = self.mlm_predictions(
                tf.gather(disc_hidden, masked.masked_lm_positions, batch_dims=1)
            )
            nll = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=masked.masked_lm_ids, logits=logits
            )
            return nll, masked.masked_lm_weights, logits, masked.masked_lm_ids
        # all_tokens_mlm: every real token, with the copy mechanism
        # p(x_t) = c_t * 1[x_t == input_t] + (1 - c_t) * softmax(logits_t)[x_t].
        labels = features["input_ids"]
        logits = self.mlm_predictions(disc_hidden)  # [B, L, V]
        copy_logit = self.discriminator_predictions(disc_hidden)  # [B, L]
        log_softmax_label = -tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=logits
        )
        generate = tf.math.log_sigmoid(-copy_logit) + log_softmax_label
        copy = tf.math.log_sigmoid(copy_logit)
        log_p = tf.where(
            tf.equal(fake_ids, labels),
            tf.reduce_logsumexp(tf.stack([copy, generate], axis=-1), axis=-1),
            generate,
        )
        return -log_p, input_mask, logits, labels

    # ----------------------------------------------------------------- generator modes
    def _generator_logits(self, batch, frozen_generator):
        """(logits at the masked positions, the cloze logits or None, the cloze loss or None)."""
        if self.uniform_generator:
            return self._uniform_generator_logits(batch), None, None
        if self.objective == "electric":
            return self._cloze_generator_logits(batch)
        return self._masked_generator_logits(batch, frozen_generator), None, None

    def _uniform_generator_logits(self, batch):
        """uniform_generator: equal logits over the vocabulary, no network."""
        weights = batch.masked.masked_lm_weights
        return tf.zeros_like(weights)[..., None] + tf.zeros([self.discriminator_config.vocab_size])

    def _cloze_generator_logits(self, batch):
        """electric: the two-tower cloze generator on the unmasked input, trained on every
        masking candidate."""
        features = batch.features
        cloze_hidden = self.two_tower(features, dropout_key=batch.dropout_key(_GEN_DROPOUT_SALT))
        cloze_logits = self.generator_predictions(cloze_hidden)  # [B, L, V]
        never_mask = (self.special.cls, self.special.sep, self.special.mask, self.special.pad)
        candidates = tf.cast(
            masking.masking_candidates(features["input_ids"], features["input_mask"], never_mask),
            tf.float32,
        )
        cloze_nll = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=features["input_ids"], logits=cloze_logits
        )
        cloze_loss_sum = tf.reduce_sum(cloze_nll * candidates)
        cloze_loss = cloze_loss_sum / tf.maximum(batch.denominators["cloze_tokens"], 1.0)
        mlm_logits = tf.gather(cloze_logits, batch.masked.masked_lm_positions, batch_dims=1)
        return mlm_logits, cloze_logits, cloze_loss

    def _masked_generator_logits(self, batch, frozen_generator):
        """A masked-LM generator (mle, adversarial, two_stage); two_stage's second stage samples
        from the frozen copy, with no gradient."""
        generator, head = (
            (self.frozen_generator, self.frozen_generator_predictions)
            if frozen_generator
            else (self.generator, self.generator_predictions)
        )
        masked = batch.masked
        gen_hidden = generator(masked._asdict(), dropout_key=batch.dropout_key(_GEN_DROPOUT_SALT))
        gen_hidden = tf.gather(gen_hidden, masked.masked_lm_positions, batch_dims=1)
        mlm_logits = head(gen_hidden)
        if frozen_generator:
            mlm_logits = tf.stop_gradient(mlm_logits)
        return mlm_logits

    def _adversarial_loss(self, batch, disc_xent, mlm_logits, sampled_ids, disallow_ids):
        """generator_training='adversarial' (REINFORCE): the reward of a sampled token is D's
        loss at its position.  Returns (generator loss, reward sum)."""
        masked = batch.masked
        weights = masked.masked_lm_weights
        reward = tf.stop_gradient(tf.gather(disc_xent, masked.masked_lm_positions, batch_dims=1))
        baseline = tf.cast(self.reward_baseline, reward.dtype)
        # The policy is the distribution the tokens were drawn from.
        log_policy = tf.nn.log_softmax(
            masking.sampling_logits(mlm_logits, self.temperature, disallow_ids)
        )
        log_prob = tf.reduce_sum(
            log_policy * tf.one_hot(sampled_ids, tf.shape(mlm_logits)[-1], dtype=log_policy.dtype),
            axis=-1,
        )
        adversarial_sum = -tf.reduce_sum((reward - baseline) * log_prob * weights)
        gen_loss = self.gen_weight * adversarial_sum / batch.masked_denominator
        return gen_loss, tf.reduce_sum(reward * weights)

    def get_config(self):
        return {
            **super().get_config(),
            "discriminator_config": self.discriminator_config.to_dict(),
            "generator_config": self.generator_config.to_dict(),
            "special_token_ids": self.special._asdict(),
            "mask_prob": self.mask_prob,
            "max_predictions_per_seq": self.max_predictions_per_seq,
            "gen_weight": self.gen_weight,
            "disc_weight": self.disc_weight,
            "temperature": self.temperature,
            "disallow_correct": self.disallow_correct,
            "untied_generator_embeddings": self.untied_generator_embeddings,
            "objective": self.objective,
            "generator_training": self.generator_training,
            "uniform_generator": self.uniform_generator,
            "untied_generator": self.untied_generator,
            "embedding_sharing": self.embedding_sharing,
            "two_stage_switch_step": self.two_stage_switch_step,
        }


def _zero_gradient_anchor(variables):
    """0 * sum(variables): zero gradients for variables the loss does not use."""
    return 0.0 * tf.add_n([tf.reduce_sum(tf.cast(v, tf.float32)) for v in variables])


def _mlm_stats(loss, mlm_loss_sum, mlm_logits, sampled_ids, masked):
    weights = masked.masked_lm_weights
    mlm_preds = tf.argmax(mlm_logits, axis=-1, output_type=tf.int32)
    sampled_correct = (
        tf.zeros([])
        if sampled_ids is None
        else tf.reduce_sum(
            tf.cast(tf.equal(sampled_ids, masked.masked_lm_ids), tf.float32) * weights
        )
    )
    return {
        "loss": loss,
        "masked_lm_loss_sum": mlm_loss_sum,
        "masked_tokens": tf.reduce_sum(weights),
        "masked_lm_correct": tf.reduce_sum(
            tf.cast(tf.equal(mlm_preds, masked.masked_lm_ids), tf.float32) * weights
        ),
        "sampled_correct": sampled_correct,
    }


def _disc_stats(disc_loss_sum, disc_logits, disc_labels, disc_weights):
    disc_probs = tf.sigmoid(disc_logits)
    disc_preds = tf.cast(disc_logits > 0.0, tf.float32)
    prob_bins = tf.minimum(tf.cast(disc_probs * AUC_BINS, tf.int32), AUC_BINS - 1)
    return {
        "disc_loss_sum": disc_loss_sum,
        "real_tokens": tf.reduce_sum(disc_weights),
        "disc_correct": tf.reduce_sum(
            tf.cast(tf.equal(disc_preds, disc_labels), tf.float32) * disc_weights
        ),
        "disc_true_positives": tf.reduce_sum(disc_preds * disc_labels * disc_weights),
        "disc_predicted_positives": tf.reduce_sum(disc_preds * disc_weights),
        "disc_label_positives": tf.reduce_sum(disc_labels * disc_weights),
        "disc_positive_histogram": _histogram(prob_bins, disc_labels * disc_weights),
        "disc_negative_histogram": _histogram(prob_bins, (1.0 - disc_labels) * disc_weights),
    }


def _zero_disc_stats(input_mask):
    zero = tf.zeros([])
    return {
        "disc_loss_sum": zero,
        "real_tokens": tf.reduce_sum(input_mask),
        "disc_correct": zero,
        "disc_true_positives": zero,
        "disc_predicted_positives": zero,
        "disc_label_positives": zero,
        "disc_positive_histogram": tf.zeros([AUC_BINS]),
        "disc_negative_histogram": tf.zeros([AUC_BINS]),
    }


def _as_config(config):
    return config if isinstance(config, ElectraConfig) else ElectraConfig.from_dict(config)


def _histogram(bins, weights):
    # A one-hot sum rather than tf.math.bincount, which XLA does not compile.
    return tf.reduce_sum(tf.one_hot(bins, AUC_BINS) * weights[..., None], axis=[0, 1])


def _as_special(special):
    return special if isinstance(special, SpecialTokens) else SpecialTokens(**special)
