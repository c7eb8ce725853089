"""Dynamic masking, generator sampling and the counter-based RNG behind them."""

import numpy as np
import pytest
import tensorflow as tf
from pretraining_helpers import SPECIAL, random_features

from electra_tf.pretraining import masking
from electra_tf.training import stateless_random

SEQ_LENGTH, MAX_PREDICTIONS, NUM_EXAMPLES = 64, 10, 4000


@pytest.fixture(scope="module")
def masked():
    features = random_features(NUM_EXAMPLES, SEQ_LENGTH, seed=1, min_length=3)
    # Some [MASK] tokens in the input must never be chosen either.
    features["input_ids"][::7, 2] = SPECIAL.mask
    result = masking.mask_inputs(
        {k: tf.constant(v) for k, v in features.items()},
        SPECIAL,
        mask_prob=0.15,
        max_predictions=MAX_PREDICTIONS,
        key=stateless_random.key_from_seed([3, 4]),
        example_index=tf.range(NUM_EXAMPLES),
    )
    return features, {k: v.numpy() for k, v in result._asdict().items()}


def test_exact_count_per_sequence(masked):
    features, out = masked
    lengths = features["input_mask"].sum(1)
    candidates = (features["input_mask"] == 1) & ~np.isin(
        features["input_ids"], [SPECIAL.cls, SPECIAL.sep, SPECIAL.mask]
    )
    expected = np.minimum(
        np.maximum(1, np.minimum(MAX_PREDICTIONS, np.round(lengths * 0.15))), candidates.sum(1)
    )
    np.testing.assert_array_equal(out["masked_lm_weights"].sum(1), expected)


def test_positions_distinct_and_never_special(masked):
    features, out = masked
    for row in range(NUM_EXAMPLES):
        used = out["masked_lm_positions"][row][out["masked_lm_weights"][row] > 0]
        assert len(set(used)) == len(used)
        original = features["input_ids"][row, used]
        assert not np.isin(original, [SPECIAL.cls, SPECIAL.sep, SPECIAL.mask, SPECIAL.pad]).any()
        np.testing.assert_array_equal(out["masked_lm_ids"][row][: len(used)], original)


def test_85_percent_mask_15_percent_kept(masked):
    features, out = masked
    weights = out["masked_lm_weights"] > 0
    positions = out["masked_lm_positions"]
    corrupted = np.take_along_axis(out["input_ids"], positions, axis=1)[weights]
    original = out["masked_lm_ids"][weights]
    mask_fraction = np.mean(corrupted == SPECIAL.mask)
    n = weights.sum()
    # Five standard deviations of a binomial proportion.
    assert abs(mask_fraction - 0.85) < 5 * np.sqrt(0.85 * 0.15 / n)
    np.testing.assert_array_equal(
        corrupted[corrupted != SPECIAL.mask], original[corrupted != SPECIAL.mask]
    )
    # Nothing outside the chosen positions changed.
    untouched = np.ones_like(features["input_ids"], bool)
    np.put_along_axis(untouched, np.where(weights, positions, 0), False, axis=1)
    untouched[:, 0] = True
    np.testing.assert_array_equal(out["input_ids"][untouched], features["input_ids"][untouched])


def test_positions_uniform_over_candidates():
    # Full-length sequences: every inner position is a candidate equally often.
    features = random_features(3000, 32, seed=2, min_length=32)
    out = masking.mask_inputs(
        {k: tf.constant(v) for k, v in features.items()},
        SPECIAL,
        mask_prob=0.15,
        max_predictions=5,
        key=stateless_random.key_from_seed([5, 6]),
        example_index=tf.range(3000),
    )
    counts = np.bincount(out.masked_lm_positions.numpy().ravel(), minlength=32)[1:31]
    expected = counts.sum() / 30
    chi_square = ((counts - expected) ** 2 / expected).sum()
    assert chi_square < 70  # 29 degrees of freedom; p < 1e-4 above 66


def test_masking_depends_only_on_example_index():
    features = {k: tf.constant(v) for k, v in random_features(8, 32, seed=3).items()}
    key = stateless_random.key_from_seed([1, 2])

    def mask(rows, index):
        return masking.mask_inputs(
            {k: tf.gather(v, rows) for k, v in features.items()},
            SPECIAL,
            mask_prob=0.15,
            max_predictions=5,
            key=key,
            example_index=tf.constant(index),
        ).input_ids.numpy()

    whole = mask(list(range(8)), list(range(8)))
    halves = np.concatenate([mask([0, 1, 2, 3], [0, 1, 2, 3]), mask([4, 5, 6, 7], [4, 5, 6, 7])])
    np.testing.assert_array_equal(whole, halves)


def _chi_square(samples, probs):
    expected = probs * samples.size
    observed = np.bincount(samples, minlength=probs.size)
    return ((observed - expected) ** 2 / expected).sum()


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_samples_follow_softmax(temperature):
    logits = tf.constant([[[2.0, 1.0, 0.0, -1.0, 0.5]]])
    draws = 20000
    samples = (
        masking.sample_tokens(
            tf.tile(logits, [draws, 1, 1]),
            stateless_random.key_from_seed([7, 8]),
            tf.range(draws),
            temperature=temperature,
        )
        .numpy()
        .ravel()
    )
    probs = tf.nn.softmax(logits[0, 0] / temperature).numpy()
    assert _chi_square(samples, probs) < 25  # 4 degrees of freedom; p < 1e-4 above 23.5


def test_samples_follow_softmax_across_blocks():
    # 50 tokens: 7 blocks of 8, the last one padded, and a second masked position.
    logits = tf.constant(np.random.default_rng(3).normal(0.0, 1.5, size=(1, 2, 50)), tf.float32)
    draws = 20000
    samples = masking.sample_tokens(
        tf.tile(logits, [draws, 1, 1]), stateless_random.key_from_seed([5, 6]), tf.range(draws)
    ).numpy()
    for position in range(2):
        probs = tf.nn.softmax(logits[0, position]).numpy()
        assert _chi_square(samples[:, position], probs) < 95  # 49 dof; p < 1e-4 above 93
    # Positions draw independently: their joint frequencies factorise.
    assert abs(np.corrcoef(samples[:, 0], samples[:, 1])[0, 1]) < 0.03


def test_inverse_cdf_never_lands_on_zero_weight():
    weights = tf.constant(
        [[0.0, 0.3, 0.7, 0.0, 0.0], [0.0, 1e-30, 0.0, 3e-30, 0.0], [0.0, 0.0, 1.5, 0.0, 0.0]] * 2
    )
    lowest, highest = 0.0, 1.0 - 2.0**-24  # the extremes a 24-bit uniform takes
    index = masking._inverse_cdf(weights, tf.constant([lowest] * 3 + [highest] * 3))
    np.testing.assert_array_equal(index.numpy(), [1, 1, 2, 2, 3, 2])


def test_disallow_correct_never_samples_the_original():
    logits = tf.constant(np.log(np.array([[[0.97, 0.01, 0.01, 0.01]]] * 500, np.float32)))
    samples = masking.sample_tokens(
        logits,
        stateless_random.key_from_seed([1, 1]),
        tf.range(500),
        disallow_ids=tf.zeros([500, 1], tf.int32),
    ).numpy()
    assert (samples != 0).all()


def test_counter_rng_is_uniform_and_streams_are_independent():
    keys = stateless_random.fold(stateless_random.key_from_seed([9, 9]), tf.range(256))
    u = stateless_random.uniform([256, 4096], keys).numpy()
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 1e-3 and abs(u.var() - 1 / 12) < 1e-3
    observed = np.histogram(u, bins=100, range=(0, 1))[0]
    expected = u.size / 100
    assert ((observed - expected) ** 2 / expected).sum() < 160  # 99 dof, p < 1e-4 above 153
    # Neighbouring example streams and neighbouring elements are uncorrelated.
    assert abs(np.corrcoef(u[:-1].ravel(), u[1:].ravel())[0, 1]) < 0.01
    assert abs(np.corrcoef(u[:, :-1].ravel(), u[:, 1:].ravel())[0, 1]) < 0.01
