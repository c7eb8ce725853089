"""BIO / IOB1 / BIOES entity chunking in the graph, with conlleval's rules
(electra_tf.finetuning.metrics.get_entities), element-wise on per-word label ids."""

from __future__ import annotations

import tensorflow as tf

# Prefix codes for conlleval's chunk rules (metrics._split_tag reads the first letter).
O, B, I, E, S, DOT, OTHER = range(7)  # noqa: E741
PREFIX_CODES = {"O": O, "B": B, "I": I, "E": E, "S": S, ".": DOT}


def split_tag(tag: str):
    """(prefix letter, entity type) as electra_tf.finetuning.metrics reads a tag."""
    prefix, rest = tag[:1], tag[1:]
    entity_type = rest.split("-", 1)[-1] if rest else ""
    return prefix, (entity_type or "_")


def _isin(values, codes):
    out = tf.zeros_like(values, tf.bool)
    for code in codes:
        out |= tf.equal(values, code)
    return out


def _chunk_ends(prev_prefix, prefix, prev_type, entity_type):
    """metrics._chunk_ends, element-wise on prefix codes / type ids."""
    return (
        _isin(prev_prefix, (E, S))
        | (_isin(prev_prefix, (B, I)) & _isin(prefix, (B, S, O)))
        | (~_isin(prev_prefix, (O, DOT)) & tf.not_equal(prev_type, entity_type))
    )


def _chunk_starts(prev_prefix, prefix, prev_type, entity_type):
    """metrics._chunk_starts, element-wise on prefix codes / type ids."""
    return (
        _isin(prefix, (B, S))
        | (_isin(prefix, (I, E)) & _isin(prev_prefix, (E, S, O)))
        | (~_isin(prefix, (O, DOT)) & tf.not_equal(prev_type, entity_type))
    )


def _shift(values, fill, forward):
    """values moved one place later (forward) or earlier, `fill` in the gap; same length."""
    fill = tf.reshape(tf.cast(fill, values.dtype), [1])
    n = tf.size(values)
    if forward:
        return tf.concat([fill, values], 0)[:n]
    return tf.concat([values, fill], 0)[1 : n + 1]


class EntityTables:
    """Per label id: its prefix code and entity-type id, and the entity-type names."""

    def __init__(self, labels):
        types = sorted({split_tag(label)[1] for label in labels} | {"_"})
        self.types = tf.constant(types, tf.string)
        self.underscore_type = types.index("_")
        self.label_prefix = tf.constant(
            [PREFIX_CODES.get(split_tag(label)[0], OTHER) for label in labels], tf.int32
        )
        self.label_type = tf.constant(
            [types.index(split_tag(label)[1]) for label in labels], tf.int32
        )


def decode_entities(tables, label_ids, scores, is_first, is_last, text_first_word):
    """Entities of a flat batch of words, with conlleval's rules per text.

    `label_ids`, `scores` [words]: each word's label and its probability; `is_first` / `is_last`:
    whether the word starts / ends its text; `text_first_word`: the index of the first word of
    each word's text.  Returns (first word, last word, type id, mean score) per entity.
    """
    prefix = tf.gather(tables.label_prefix, label_ids)
    types = tf.gather(tables.label_type, label_ids)
    prev_prefix = tf.where(is_first, O, _shift(prefix, O, forward=True))
    prev_type = tf.where(is_first, -1, _shift(types, -1, forward=True))
    next_prefix = tf.where(is_last, O, _shift(prefix, O, forward=False))
    next_type = tf.where(is_last, tables.underscore_type, _shift(types, -1, forward=False))
    starts_chunk = _chunk_starts(prev_prefix, prefix, prev_type, types)
    ends_chunk = _chunk_ends(prefix, next_prefix, types, next_type)
    start_positions = tf.where(starts_chunk)[:, 0]
    starts_so_far = tf.cumsum(tf.cast(starts_chunk, tf.int64))
    last_start = tf.gather(tf.concat([[-1], start_positions], 0), starts_so_far)
    chunk_start = tf.where(
        (starts_so_far > 0) & (last_start >= text_first_word), last_start, text_first_word
    )
    entity_last = tf.where(ends_chunk)[:, 0]
    entity_first = tf.gather(chunk_start, entity_last)
    entity_of_word = tf.repeat(
        tf.range(tf.size(entity_first, out_type=tf.int64)), entity_last - entity_first + 1
    )
    entity_scores = tf.math.unsorted_segment_mean(
        tf.gather(scores, tf.ragged.range(entity_first, entity_last + 1).flat_values),
        entity_of_word,
        tf.size(entity_first),
    )
    return entity_first, entity_last, tf.gather(types, entity_last), entity_scores
