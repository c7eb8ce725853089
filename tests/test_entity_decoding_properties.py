"""Property test: the in-graph entity decoder (electra_tf.serving.entity_decoding) against
seqeval's get_entities on arbitrary BIO and BIOES label sequences, batched as the exported
token classifier batches them (the words of several texts in one flat tensor)."""

import numpy as np
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st
from seqeval.metrics.sequence_labeling import get_entities

from electra_tf.serving import entity_decoding

TYPES = ("PER", "LOC", "ORG")
LABELS = {
    "BIO": ["O"] + [f"{prefix}-{kind}" for kind in TYPES for prefix in "BI"],
    "BIOES": ["O"] + [f"{prefix}-{kind}" for kind in TYPES for prefix in "BIES"],
}
TABLES = {scheme: entity_decoding.EntityTables(labels) for scheme, labels in LABELS.items()}


@st.composite
def labelled_batches(draw):
    """(scheme, per-text label-id lists, per-word scores): texts may be empty or one word."""
    scheme = draw(st.sampled_from(sorted(LABELS)))
    label_ids = st.integers(0, len(LABELS[scheme]) - 1)
    texts = draw(st.lists(st.lists(label_ids, max_size=12), min_size=1, max_size=5))
    words = sum(len(text) for text in texts)
    # TF on CPU flushes subnormal floats to zero; a probability that small is 0 anyway.
    scores = draw(
        st.lists(
            st.floats(0.0, 1.0, allow_nan=False, allow_subnormal=False, width=32),
            min_size=words,
            max_size=words,
        )
    )
    return scheme, texts, scores


def decoded(scheme, texts, scores):
    """The decoder's entities as (text, type, first word, last word, mean score) tuples."""
    lengths = [len(text) for text in texts]
    text_of_word = np.repeat(np.arange(len(texts)), lengths)
    starts = np.cumsum([0] + lengths[:-1]).astype(np.int64)
    word_index = np.arange(len(text_of_word), dtype=np.int64)
    first_word = starts[text_of_word] if len(text_of_word) else np.zeros([0], np.int64)
    last_word = first_word + np.asarray(lengths, np.int64)[text_of_word] - 1
    tables = TABLES[scheme]
    first, last, types, mean_scores = entity_decoding.decode_entities(
        tables,
        tf.constant([label for text in texts for label in text], tf.int32, [len(word_index)]),
        tf.constant(scores, tf.float32, [len(word_index)]),
        is_first=tf.constant(word_index == first_word),
        is_last=tf.constant(word_index == last_word),
        text_first_word=tf.constant(first_word),
    )
    names = tables.types.numpy()
    return [
        (
            int(text_of_word[f]),
            names[t].decode(),
            int(f - starts[text_of_word[f]]),
            int(last_index - starts[text_of_word[f]]),
            float(s),
        )
        for f, last_index, t, s in zip(
            first.numpy(), last.numpy(), types.numpy(), mean_scores.numpy()
        )
    ]


def expected(scheme, texts, scores):
    """seqeval's entities of each text on its own, with the mean score of their words."""
    out = []
    offset = 0
    for index, text in enumerate(texts):
        for kind, first, last in get_entities([LABELS[scheme][i] for i in text]):
            mean = float(np.mean(np.float32(scores[offset + first : offset + last + 1])))
            out.append((index, kind, first, last, mean))
        offset += len(text)
    return out


@settings(max_examples=200, deadline=None, derandomize=True)
@given(labelled_batches())
def test_entities_match_seqeval(batch):
    scheme, texts, scores = batch
    actual = decoded(scheme, texts, scores)
    reference = expected(scheme, texts, scores)
    assert [a[:4] for a in actual] == [r[:4] for r in reference]
    np.testing.assert_allclose([a[4] for a in actual], [r[4] for r in reference], rtol=1e-5)
