"""Dynamic in-graph masking and generator sampling for replaced token detection.

Every random draw here is a pure function of (step key, global example
index): an example is corrupted the same way whether the global batch runs on
one device or is split across replicas, so a step's result does not depend on
the replica layout.
"""

import math
from typing import NamedTuple

import tensorflow as tf

from electra_tf.training import stateless_random


class MaskedInputs(NamedTuple):
    input_ids: tf.Tensor  # [B, L] with [MASK] (or kept) tokens at masked positions
    input_mask: tf.Tensor  # [B, L]
    segment_ids: tf.Tensor  # [B, L]
    masked_lm_positions: tf.Tensor  # [B, N] int32, 0 where unused
    masked_lm_ids: tf.Tensor  # [B, N] int32 original ids, 0 where unused
    masked_lm_weights: tf.Tensor  # [B, N] float32 1/0


def per_example_uniform(key, example_index, shape):
    """[B, *shape] uniforms in [0, 1); row b depends only on (key, example_index[b])."""
    row_keys = stateless_random.fold(key, example_index)
    return stateless_random.uniform([example_index.shape[0]] + list(shape), row_keys)


def masking_candidates(input_ids, input_mask, never_mask_ids):
    """Positions that may be masked: real tokens other than [CLS]/[SEP]/[MASK]/[PAD]."""
    candidates = tf.cast(input_mask, tf.bool)
    for token_id in never_mask_ids:
        candidates &= tf.not_equal(input_ids, token_id)
    return candidates


def num_to_mask(input_ids, input_mask, never_mask_ids, mask_prob, max_predictions):
    """Per-example count: max(1, min(N, round(len * mask_prob))), capped by the candidates.

    `len` counts every real token (the original's choice, [CLS]/[SEP]
    included); the candidate cap only bites on sequences that are almost all
    special tokens. This depends on the batch alone, so loss denominators can
    be all-reduced before the forward pass.
    """
    length = tf.reduce_sum(tf.cast(input_mask, tf.float32), axis=-1)
    count = tf.maximum(
        1, tf.minimum(max_predictions, tf.cast(tf.round(length * mask_prob), tf.int32))
    )
    candidates = tf.reduce_sum(
        tf.cast(masking_candidates(input_ids, input_mask, never_mask_ids), tf.int32), axis=-1
    )
    return tf.minimum(count, candidates)


def scatter_positions(values, positions, weights, seq_length):
    """Builds [B, L] tensors from per-position values: (scattered values, hit mask).

    Positions are distinct (sampled without replacement), so a one-hot
    contraction is an exact scatter and avoids scatter ops XLA handles poorly.
    """
    hits = tf.one_hot(positions, seq_length, dtype=tf.int32) * tf.cast(weights, tf.int32)[..., None]
    scattered = tf.reduce_sum(hits * tf.cast(values, tf.int32)[..., None], axis=1)
    return scattered, tf.reduce_max(hits, axis=1) > 0


def replace_at(input_ids, positions, weights, new_ids):
    """input_ids with new_ids written at the weighted positions."""
    scattered, hit = scatter_positions(new_ids, positions, weights, tf.shape(input_ids)[1])
    return tf.where(hit, scattered, input_ids)


def mask_inputs(
    features,
    special,
    *,
    mask_prob,
    max_predictions,
    key,
    example_index,
    mask_token_ratio=0.85,
    random_token_ratio=0.0,
    vocab_size=None,
):
    """Chooses positions and corrupts them: the original's dynamic masking.

    Exactly `num_to_mask` positions per example, sampled without replacement
    from the candidates. Of those, `mask_token_ratio` become [MASK],
    `random_token_ratio` a uniformly random token (BERT's 80/10/10 uses 0.8
    and 0.1; ELECTRA uses 0.85/0.0 because the generator supplies the
    replacements), the rest keep the original token.
    """
    input_ids = features["input_ids"]
    input_mask = features["input_mask"]
    never_mask = (special.cls, special.sep, special.mask, special.pad)
    count = num_to_mask(input_ids, input_mask, never_mask, mask_prob, max_predictions)
    candidates = masking_candidates(input_ids, input_mask, never_mask)
    seq_length = input_ids.shape[1]

    # Top-k of uniform keys over the candidates is a uniform sample without
    # replacement; non-candidates get key -1 so they are never chosen.
    keys = tf.where(candidates, per_example_uniform(key, example_index, [seq_length]), -1.0)
    _, positions = tf.math.top_k(keys, k=max_predictions)
    weights = tf.sequence_mask(count, max_predictions, dtype=tf.float32)
    positions = positions * tf.cast(weights, tf.int32)
    original_ids = tf.gather(input_ids, positions, batch_dims=1) * tf.cast(weights, tf.int32)

    action = per_example_uniform(stateless_random.fold(key, 1), example_index, [max_predictions])
    corrupted = tf.where(action < mask_token_ratio, special.mask, original_ids)
    if random_token_ratio > 0.0:
        random_ids = tf.cast(
            tf.math.floor(
                per_example_uniform(stateless_random.fold(key, 2), example_index, [max_predictions])
                * vocab_size
            ),
            tf.int32,
        )
        use_random = (action >= mask_token_ratio) & (action < mask_token_ratio + random_token_ratio)
        corrupted = tf.where(use_random, random_ids, corrupted)

    return MaskedInputs(
        input_ids=tf.stop_gradient(replace_at(input_ids, positions, weights, corrupted)),
        input_mask=input_mask,
        segment_ids=features["segment_ids"],
        masked_lm_positions=positions,
        masked_lm_ids=original_ids,
        masked_lm_weights=weights,
    )


def sampling_logits(logits, temperature=1.0, disallow_ids=None):
    """The logits `sample_tokens` draws from: logits / temperature, disallowed ids - 1000."""
    if temperature != 1.0:
        logits = logits / temperature
    if disallow_ids is not None:
        logits -= 1000.0 * tf.one_hot(disallow_ids, tf.shape(logits)[-1], dtype=logits.dtype)
    return logits


def sample_tokens(logits, key, example_index, temperature=1.0, disallow_ids=None):
    """Samples token ids from softmax(logits / temperature): [B, N, V] -> [B, N].

    Exact inverse-CDF sampling in two levels (a block of ~sqrt(V) tokens,
    then a token inside it), so each draw needs two uniforms instead of the
    V Gumbel variates of the original's Gumbel-max: on CPU the [B, N, V]
    noise and its two logarithms cost as much as a transformer layer. The
    samples follow the same distribution. `disallow_ids` ([B, N]) removes
    those tokens from the support, as the original's `disallow_correct`
    (it subtracts 1000 from their logits).
    """
    probs = tf.nn.softmax(tf.cast(sampling_logits(logits, temperature, disallow_ids), tf.float32))
    vocab_size = probs.shape[-1]
    block_size = math.isqrt(vocab_size - 1) + 1
    num_blocks = -(-vocab_size // block_size)
    blocks = tf.pad(probs, [[0, 0], [0, 0], [0, num_blocks * block_size - vocab_size]])
    blocks = tf.reshape(blocks, probs.shape[:2] + [num_blocks, block_size])
    uniforms = per_example_uniform(key, example_index, [probs.shape[1], 2])
    block = _inverse_cdf(tf.reduce_sum(blocks, axis=-1), uniforms[..., 0])
    within = _inverse_cdf(tf.gather(blocks, block, batch_dims=2), uniforms[..., 1])
    return tf.stop_gradient(block * block_size + within)


def _inverse_cdf(weights, uniform):
    """Index i with probability weights[i] / sum(weights), along the last axis.

    The first index whose running sum exceeds uniform * total. With uniform
    in [0, 1) the float32 product stays below the total, so an index of zero
    weight is never returned.
    """
    cdf = tf.cumsum(weights, axis=-1)
    target = uniform[..., tf.newaxis] * cdf[..., -1:]
    return tf.reduce_sum(tf.cast(cdf <= target, tf.int32), axis=-1)
