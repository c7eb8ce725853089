"""The model: sizes, serialization, masking semantics of attention, and the RTD objective."""

import numpy as np
import pytest
import tensorflow as tf
from pretraining_helpers import SPECIAL, build_trainer, random_features, tiny_configs

from electra_tf.model.config import generator_config, preset
from electra_tf.model.encoder import ElectraEncoder
from electra_tf.pretraining.model import ElectraPretrainer
from electra_tf.training import stateless_random
from electra_tf.training.trainer import accumulation_batches

# Discriminator encoder parameters with BERT's 30522-token vocabulary.
# Published: ELECTRA-Small 14M (with its ~0.07M head: "about 13.5M" encoder),
# Base 110M, Large 335M.
EXPECTED_ENCODER_PARAMETERS = {"small": 13_483_008, "base": 108_891_648, "large": 334_092_288}


@pytest.mark.parametrize("size", ["small", "base", "large"])
def test_parameter_counts_match_the_published_sizes(size):
    encoder = ElectraEncoder(preset(size))
    encoder.build()
    count = sum(int(np.prod(v.shape)) for v in encoder.weights)
    assert count == EXPECTED_ENCODER_PARAMETERS[size]
    published = {"small": 13.5e6, "base": 110e6, "large": 335e6}[size]
    assert abs(count - published) / published < 0.015


def test_small_generator_is_a_quarter_of_the_discriminator():
    generator = generator_config(preset("small"), 0.25, 1.0, untied_embeddings=False)
    assert (
        generator.hidden_size,
        generator.num_attention_heads,
        generator.intermediate_size,
        generator.num_hidden_layers,
        generator.embedding_dim,
    ) == (64, 1, 256, 12, 128)


def _features(batch=4, length=16, seed=0):
    return {k: tf.constant(v) for k, v in random_features(batch, length, seed=seed).items()}


def test_encoder_config_round_trip_and_save_load(tmp_path):
    discriminator, _ = tiny_configs()
    encoder = ElectraEncoder(discriminator)
    features = _features()
    expected = encoder(features).numpy()
    clone = ElectraEncoder.from_config(encoder.get_config())
    clone(features)
    clone.set_weights(encoder.get_weights())
    np.testing.assert_allclose(clone(features).numpy(), expected, atol=1e-6)
    encoder.save_pretrained(str(tmp_path / "disc"))
    restored = ElectraEncoder.from_pretrained(str(tmp_path / "disc"))
    np.testing.assert_allclose(restored(features).numpy(), expected, atol=1e-6)
    assert restored.config == discriminator


def test_missing_pretrained_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        ElectraEncoder.from_pretrained(str(tmp_path))


def test_pretrainer_config_round_trip():
    discriminator, generator = tiny_configs()
    model = ElectraPretrainer(discriminator, generator, SPECIAL, max_predictions_per_seq=5)
    clone = ElectraPretrainer.from_config(model.get_config())
    assert clone.get_config() == model.get_config()
    assert clone.generator.embeddings is clone.discriminator.embeddings


def test_padding_does_not_change_real_token_outputs():
    discriminator, _ = tiny_configs(dropout=0.0)
    encoder = ElectraEncoder(discriminator)
    features = _features(batch=1, length=10)
    padded = {k: tf.pad(v, [[0, 0], [0, 6]]) for k, v in features.items()}
    padded["input_ids"] = tf.tensor_scatter_nd_update(padded["input_ids"], [[0, 12]], [77])
    np.testing.assert_allclose(
        encoder(padded)[:, :10].numpy(), encoder(features).numpy(), atol=1e-5
    )


def _loss_parts(model, features, key=5):
    denominators = model.loss_denominators(features)
    return model.compute_loss_and_stats(
        features,
        denominators,
        stateless_random.key_from_seed([key, 0]),
        tf.range(features["input_ids"].shape[0]),
        training=False,
    )


def test_sample_equal_to_original_is_labelled_original():
    discriminator, generator = tiny_configs(dropout=0.0)
    model = ElectraPretrainer(discriminator, generator, SPECIAL, max_predictions_per_seq=5)
    model.build()
    # Every token is 50 and the generator is certain of 50: samples equal the
    # originals, so nothing counts as replaced although positions were masked.
    bias = np.zeros(discriminator.vocab_size, np.float32)
    bias[50] = 1e4
    model.generator_predictions.output_bias.assign(bias)
    ids = np.full((4, 16), 50, np.int32)
    ids[:, 0], ids[:, -1] = SPECIAL.cls, SPECIAL.sep
    features = {
        "input_ids": tf.constant(ids),
        "input_mask": tf.ones_like(ids),
        "segment_ids": tf.zeros_like(ids),
    }
    _, stats = _loss_parts(model, features)
    assert stats["masked_tokens"] > 0
    assert float(stats["sampled_correct"]) == float(stats["masked_tokens"])
    assert float(stats["disc_label_positives"]) == 0.0


def test_replaced_tokens_are_labelled_replaced():
    discriminator, generator = tiny_configs(dropout=0.0)
    model = ElectraPretrainer(
        discriminator, generator, SPECIAL, max_predictions_per_seq=5, disallow_correct=True
    )
    model.build()
    _, stats = _loss_parts(model, _features(batch=16, length=32))
    assert float(stats["disc_label_positives"]) == float(stats["masked_tokens"])


def test_no_gradient_from_the_discriminator_loss_reaches_the_generator():
    discriminator, generator = tiny_configs(dropout=0.0)
    model = ElectraPretrainer(
        discriminator,
        generator,
        SPECIAL,
        max_predictions_per_seq=5,
        gen_weight=0.0,
        disc_weight=50.0,
    )
    model.build()
    features = _features(batch=8, length=16)
    shared = {id(v) for v in model.discriminator.embeddings.trainable_variables}
    generator_only = [
        v
        for v in (
            model.generator.trainable_variables + model.generator_predictions.trainable_variables
        )
        if id(v) not in shared
    ]
    discriminator_side = model.discriminator.trainable_variables
    with tf.GradientTape(persistent=True) as tape:
        loss, _ = _loss_parts(model, features)
    assert generator_only
    for variable, grad in zip(generator_only, tape.gradient(loss, generator_only)):
        assert grad is None or float(tf.norm(tf.convert_to_tensor(grad))) == 0.0, variable.path
    # The discriminator, and the shared embeddings it reads, do learn from it.
    for variable, grad in zip(discriminator_side, tape.gradient(loss, discriminator_side)):
        if "token_type_embeddings" in variable.path:
            continue  # only segment 0 occurs in these features: one row moves, the norm is > 0
        assert grad is not None and float(tf.norm(tf.convert_to_tensor(grad))) > 0, variable.path


def test_total_loss_is_the_weighted_sum():
    discriminator, generator = tiny_configs(dropout=0.0)
    features = _features(batch=8, length=16)
    losses, reference = {}, None
    for gen_weight, disc_weight in [(1.0, 0.0), (0.0, 1.0), (1.0, 50.0)]:
        model = ElectraPretrainer(
            discriminator,
            generator,
            SPECIAL,
            max_predictions_per_seq=5,
            gen_weight=gen_weight,
            disc_weight=disc_weight,
        )
        model.build()
        if losses:
            model.set_weights(reference.get_weights())
        else:
            reference = model
        losses[gen_weight, disc_weight], stats = _loss_parts(model, features)
    np.testing.assert_allclose(
        float(losses[1.0, 50.0]), float(losses[1.0, 0.0]) + 50 * float(losses[0.0, 1.0]), rtol=1e-5
    )
    np.testing.assert_allclose(
        float(losses[1.0, 0.0]),
        float(stats["masked_lm_loss_sum"] / stats["masked_tokens"]),
        rtol=1e-5,
    )


def _dataset(features, batch, accumulation):
    data = tf.data.Dataset.from_tensor_slices(features).batch(batch, drop_remainder=True)
    return accumulation_batches(data, accumulation)


def test_gradient_accumulation_equals_the_large_batch():
    features = random_features(16, 16, seed=4)
    weights = []
    for batch, accumulation in [(16, 1), (8, 2), (4, 4)]:
        strategy = tf.distribute.get_strategy()
        trainer = build_trainer(strategy)
        trainer.train(iter(_dataset(features, batch, accumulation)), 1)
        weights.append([v.numpy() for v in trainer.model.trainable_variables])
    for other in weights[1:]:
        for a, b in zip(weights[0], other):
            np.testing.assert_allclose(a, b, atol=2e-6)


def test_train_step_compiles_with_xla():
    strategy = tf.distribute.get_strategy()
    trainer = build_trainer(strategy, jit_compile=True)
    features = {k: tf.constant(v) for k, v in random_features(4, 16).items()}
    denominators = trainer.model.loss_denominators(features)
    args = (features, denominators, stateless_random.key_from_seed([1, 2]), tf.range(4))
    hlo = trainer._compiled_gradients.experimental_get_compiler_ir(*args)(stage="hlo")
    assert "HloModule" in hlo and "dot(" in hlo
    trainer.train(iter(_dataset(random_features(8, 16), 4, 1).repeat()), 2)
    assert trainer.step == 2
