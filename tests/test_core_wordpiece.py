"""CoreBertTokenizer (core TF ops only) against tensorflow_text.BertTokenizer.

Reference definitions, per CoreBertTokenizer setting ("mode"):

* uncased (do_lower_case=True): ``tf_text.BertTokenizer(table, lower_case=True,
  token_out_type=tf.int32)`` -- ICU NFKC_Casefold, NFD, drop \\p{Mn}.
* lower_keep_accents (do_lower_case=True, strip_accents=False):
  ``tf_text.BertTokenizer(table, lower_case=True, token_out_type=tf.int32,
  basic_tokenizer_class=AccentPreservingBasicTokenizer)`` -- tensorflow_text's
  own "lower-case but keep accents" tokenizer: ICU full lower-casing of the
  whole text (``tf.strings.lower(encoding="utf-8")``, so final sigma is ς), no
  Unicode normalization.  This is what BERT's FullTokenizer gives with
  ``text.lower()`` and the accent-stripping step removed.
* cased (do_lower_case=False): ``tf_text.BertTokenizer(table,
  token_out_type=tf.int32)`` -- no normalization at all.

`table` is a StaticHashTable vocab -> index with default -1.  Ids must be equal.
Offsets: tensorflow_text reports byte offsets into its *normalized* text;
CoreBertTokenizer reports them into the *input*.  The reference offsets are
tensorflow_text's, mapped back through a per-character alignment computed with
tensorflow_text's own preprocessing (see `reference_tokenize`); where the
normalization keeps byte lengths (all ASCII text, say) that mapping is the
identity, so those offsets are tensorflow_text's exactly.  Two tensorflow_text
quirks are corrected in the reference: a word over max_bytes_per_word ends
``len("[UNK]")`` bytes after its start there, at the word's end here; and in
lower_keep_accents, NUL ends the text there (see `reference_input`).
"""

import base64
import bisect
import gzip
import itertools
import json
import subprocess
import sys
import textwrap

import pytest
import tensorflow as tf
import tensorflow_text as tf_text
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorflow_text.python.ops.bert_tokenizer import AccentPreservingBasicTokenizer, BasicTokenizer
from tensorflow_text.tools.wordpiece_vocab import bert_vocab_from_dataset

from electra_tf.serving.core_wordpiece import CoreBertTokenizer

RESERVED_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
UNK_ID = RESERVED_TOKENS.index("[UNK]")
MAX_BYTES_PER_WORD = 100  # tensorflow_text's default and CoreBertTokenizer's
MODES = {
    "uncased": dict(do_lower_case=True),
    "lower_keep_accents": dict(do_lower_case=True, strip_accents=False),
    "cased": dict(do_lower_case=False),
}

ADVERSARIAL_TEXTS = [
    "",
    " ",
    "   \t\n\r\x0b\x0c ",
    "\u00a0\u3000\u2028\u2029",
    "x",
    "Hello, World!",
    "The QUICK brown fox; jumped--over `the` lazy dog's back?",
    "price: $5.00 ^ 2 = 25 % off #hash @user ~tilde |pipe| \\back/ {curly} [square] <angle> _under_",
    "naïve café résumé Ångström façade coöperate jalapeño ÉCOLE Øresund Łódź",
    "Straße İstanbul ΣΟΦΟΣ ΟΔΟΣ. ǅemal ﬁne ﬂow Ⅻ ① ｆｕｌｌｗｉｄｔｈ ²³ Å",
    "decomposed e\u0301 a\u0308 \u0301leading mark a\u0323\u0301 q\u0307\u0323",
    "中文分词测试，北京大学。𠀀𪜀𫝀𬺰 漢字 ＡＢＣ 丽 ⺀ ㄅ",
    "한국어 텍스트입니다. 서울특별시 ㅎㅏㄴ ㅤfiller 한\u1100\u1161",
    "日本語のテキスト、カタカナ ひらがな ｶﾀｶﾅ",
    "emoji 😀👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇰🇷 #️⃣ 1️⃣",
    "tabs\tand\nnewlines\r\nand\x00nul\x07bell\x1besc\x7fdel\u0085nel\u009fapc",
    "zero\u200bwidth\u200cnon\u200djoiner soft\u00adhyphen \ufeffbom \u2060wj \u202eRTL\u202c \u061calm",
    "a" * 99,
    "a" * 100,
    "a" * 101,
    "é" * 50,
    "é" * 51,
    "Σ" * 60,
    "x" * 300,
    "ǅ" * 40,
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
    "mixed Русский текст العربية עברית ελληνικά हिन्दी ภาษาไทย ქართული",
    "numbers 3.14159 1,000,000 12:30 2024-01-01 0xFF 1e-9 ٣٤٥ ½ ¹",
    "quotes “smart” ‘single’ «guillemets» „low“ — en–dash … ellipsis ¿¡ ・",
    "math ∑∫√∞ ≤ ≥ ± × ÷ → ← ©®™ § ¶ • ° ′ ″ ℃ ㎏",
    "\U0001f600\U000e0001\U000e0041 tag chars x\ufe0f\ufe0e variation",
    "private \ue000\U000f0000 noncharacter \ufffe\uffff replacement \ufffd",
    "ΣΑΣ.Σ σ ς Ϲ ΌΣΟΣ'Σ",
    "ﬀﬃ Ǳ ǲ ǳ ŉ ẞ ß ᾳ ᾼ ΐ",
    "unused [unused0] [UNK] [CLS] ##prefix ## #",
]


def nested_lists(ragged):
    """RaggedTensor.to_list() without its per-row eager slicing, which takes minutes here."""
    values = ragged.flat_values.numpy().tolist()
    for row_splits in reversed(ragged.nested_row_splits):
        bounds = row_splits.numpy().tolist()
        values = [values[start:limit] for start, limit in zip(bounds[:-1], bounds[1:])]
    return values


def read_lines(path, count):
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        return [
            line.rstrip("\n")
            for line in itertools.islice((text for text in lines if text.strip()), count)
        ]


@pytest.fixture(scope="session")
def corpus_lines(shared_data):
    """~2000 real lines: English Wikipedia, Korean Wikipedia, modern and classical Chinese."""
    return (
        read_lines(shared_data / "pretrain_en_wikipedia" / "wiki_en_000.txt.gz", 800)
        + read_lines(shared_data / "multilingual_sample" / "ko_wikipedia.txt.gz", 500)
        + read_lines(shared_data / "multilingual_sample" / "zh_wikipedia.txt.gz", 400)
        + read_lines(shared_data / "multilingual_sample" / "zh_classical_xiyouji.txt.gz", 300)
    )


@pytest.fixture(scope="session")
def vocabs(corpus_lines):
    """A ~2000-piece vocabulary per mode, learned on a third of the corpus (speed)."""
    learning_lines = corpus_lines[::3]

    def learn(lines, lower_case):
        return bert_vocab_from_dataset.bert_vocab_from_dataset(
            tf.data.Dataset.from_tensor_slices(lines).batch(256),
            vocab_size=2000,
            reserved_tokens=RESERVED_TOKENS,
            bert_tokenizer_params=dict(lower_case=lower_case),
            learn_params=dict(num_iterations=1, lower_thresh=5),
        )

    return {
        "uncased": learn(learning_lines, lower_case=True),
        "lower_keep_accents": learn([line.lower() for line in learning_lines], lower_case=False),
        "cased": learn(learning_lines, lower_case=False),
    }


@pytest.fixture(scope="session")
def tokenizers(vocabs):
    return {mode: CoreBertTokenizer(vocabs[mode], **settings) for mode, settings in MODES.items()}


def reference_basic_tokenizer(mode):
    if mode == "lower_keep_accents":
        return AccentPreservingBasicTokenizer(lower_case=True)
    return BasicTokenizer(lower_case=MODES[mode]["do_lower_case"])


def reference_input(mode, texts):
    """The texts as the reference sees them.

    tf.strings.lower(encoding="utf-8"), which AccentPreservingBasicTokenizer
    uses, ends a text at its first NUL; CoreBertTokenizer treats NUL as the
    control character (so space) it is, so the reference gets a space there.
    """
    if mode == "lower_keep_accents":
        return [text.replace("\x00", " ") for text in texts]
    return texts


def reference_preprocess(mode, texts):
    """tensorflow_text BasicTokenizer.tokenize_with_offsets up to its regex split."""
    texts = reference_input(mode, texts)
    if MODES[mode]["do_lower_case"]:
        texts = reference_basic_tokenizer(mode).lower_case(texts)
    return tf.strings.regex_replace(texts, r"\p{Cc}|\p{Cf}", " ")


def reference_bert_tokenizer(vocab, mode):
    table = tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(vocab, tf.range(len(vocab), dtype=tf.int64)),
        default_value=-1,
    )
    extra = (
        {"basic_tokenizer_class": AccentPreservingBasicTokenizer}
        if mode == "lower_keep_accents"
        else {}
    )
    return tf_text.BertTokenizer(
        table, lower_case=MODES[mode]["do_lower_case"], token_out_type=tf.int32, **extra
    )


def reference_tokenize(texts, vocab, mode):
    """tensorflow_text's ids, and its offsets mapped from its normalized text to the input.

    Each input character is preprocessed alone (tensorflow_text's ops) to learn
    how many normalized bytes it became; a normalized byte maps to the input
    character it came from.  A piece starts where the input character holding
    its first byte starts and ends where the one holding its last byte ends.
    """
    reference_texts = reference_input(mode, texts)
    ids, starts, ends = (
        nested_lists(t)
        for t in reference_bert_tokenizer(vocab, mode).tokenize_with_offsets(reference_texts)
    )
    _, word_starts, word_ends = (
        nested_lists(t)
        for t in reference_basic_tokenizer(mode).tokenize_with_offsets(reference_texts)
    )
    characters = [character for text in texts for character in text]
    character_lengths = iter(
        tf.strings.length(reference_preprocess(mode, characters)).numpy().tolist()
        if characters
        else []
    )
    text_lengths = (
        tf.strings.length(reference_preprocess(mode, texts)).numpy().tolist() if texts else []
    )
    mapped_starts, mapped_ends = [], []
    for text, text_length, text_starts, text_ends, text_word_starts, text_word_ends in zip(
        texts, text_lengths, starts, ends, word_starts, word_ends
    ):
        input_bounds = [0]
        normalized_starts = []
        normalized_length = 0
        for character in text:
            input_bounds.append(input_bounds[-1] + len(character.encode("utf-8")))
            normalized_starts.append(normalized_length)
            normalized_length += next(character_lengths)
        # Lower-casing in context (final sigma) keeps byte lengths, so the
        # per-character lengths must add up to the whole text's.
        assert normalized_length == text_length, text

        def source(normalized_byte, normalized_starts=normalized_starts):
            # The last character starting at or before the byte: characters that
            # normalized to nothing share their start with the next one.
            return bisect.bisect_right(normalized_starts, normalized_byte) - 1

        mapped_starts.append([])
        mapped_ends.append([])
        for piece_starts, piece_ends, word_start, word_end in zip(
            text_starts, text_ends, text_word_starts, text_word_ends
        ):
            if word_end - word_start > MAX_BYTES_PER_WORD:
                piece_ends = [word_end]
            mapped_starts[-1].append([input_bounds[source(b)] for b in piece_starts])
            mapped_ends[-1].append([input_bounds[source(e - 1) + 1] for e in piece_ends])
    return ids, mapped_starts, mapped_ends


def tokenize(tokenizer, texts):
    return tuple(
        nested_lists(t) for t in tokenizer.tokenize_with_offsets(tf.constant(texts, tf.string))
    )


def assert_matches_reference(tokenizer, texts, vocab, mode):
    actual = tokenize(tokenizer, texts)
    expected = reference_tokenize(texts, vocab, mode)
    for name, actual_values, expected_values in zip(("ids", "starts", "ends"), actual, expected):
        mismatches = [i for i, (a, e) in enumerate(zip(actual_values, expected_values)) if a != e]
        assert len(actual_values) == len(expected_values)
        assert not mismatches, (
            f"{mode}: {name} differ for {len(mismatches)} texts; first {texts[mismatches[0]][:300]!r}:\n"
            f"actual   {actual_values[mismatches[0]]}\nexpected {expected_values[mismatches[0]]}"
        )
    return actual


@pytest.mark.parametrize("mode", MODES)
def test_matches_tensorflow_text_on_adversarial_texts(tokenizers, vocabs, mode):
    assert_matches_reference(tokenizers[mode], ADVERSARIAL_TEXTS, vocabs[mode], mode)


@pytest.mark.parametrize("mode", MODES)
def test_matches_tensorflow_text_on_real_multilingual_text(tokenizers, vocabs, corpus_lines, mode):
    ids, _, _ = assert_matches_reference(tokenizers[mode], corpus_lines, vocabs[mode], mode)
    pieces = [vocabs[mode][i] for text in ids for word in text for i in word]
    assert "[UNK]" in pieces and any(piece.startswith("##") for piece in pieces)


@pytest.mark.parametrize("mode", MODES)
def test_normalization_matches_tensorflow_text_for_every_code_point(tokenizers, mode):
    # Planes 0-3 hold every assigned character but the plane-14 tags and
    # variation selectors; planes 4-13 are unassigned, 15-16 private use.
    code_points = [
        c
        for c in itertools.chain(range(0x40000), range(0xE0000, 0xE1000))
        if not 0xD800 <= c <= 0xDFFF
    ]
    characters = [chr(c) for c in code_points]
    actual = tokenizers[mode].normalize(tf.constant(characters)).numpy()
    expected = reference_preprocess(mode, characters).numpy()
    mismatches = [
        f"U+{c:04X}: {a!r} != {e!r}" for c, a, e in zip(code_points, actual, expected) if a != e
    ]
    assert not mismatches, f"{len(mismatches)} code points differ: {mismatches[:20]}"


HAND_VOCAB = RESERVED_TOKENS + [
    "a",
    "##b",
    "ab",
    "ss",
    "s",
    "##s",
    "f",
    "##i",
    "caf",
    "##e",
    "x",
    "##x",
    "i",
    "##̇",
    "the",
]


@pytest.fixture(scope="session")
def hand_tokenizers():
    return {mode: CoreBertTokenizer(HAND_VOCAB, **settings) for mode, settings in MODES.items()}


@pytest.mark.parametrize(
    "text, mode, expected_ids, expected_starts, expected_ends",
    [
        # ß (2 bytes) becomes "ss"; both normalized characters span the input ß.
        ("ß ss", "uncased", [[3 + 5], [3 + 5]], [[0], [3]], [[2], [5]]),
        # ﬁ (3 bytes) becomes "fi", split into "f" "##i", each spanning the ligature.
        ("ﬁ", "uncased", [[11, 12]], [[0, 0]], [[3, 3]]),
        # Precomposed é (2 bytes) normalizes to "e": "caf" + "##e" ends after é.
        ("café x", "uncased", [[8 + 5, 9 + 5], [10 + 5]], [[0, 3], [6]], [[3, 5], [7]]),
        # A decomposed accent is dropped; the piece ends before it.
        ("cafe\u0301 x", "uncased", [[8 + 5, 9 + 5], [10 + 5]], [[0, 3], [7]], [[3, 4], [8]]),
        # İ (2 bytes) lower-cases to "i" + U+0307 (3 bytes) when accents are kept.
        ("İx", "lower_keep_accents", [[12 + 5, 13 + 5, 11 + 5]], [[0, 0, 2]], [[2, 2, 3]]),
        # Control and format characters separate words; offsets still skip them.
        ("ab\u200dab\x00x", "cased", [[7], [7], [15]], [[0], [5], [8]], [[2], [7], [9]]),
        # A word over 100 bytes is one [UNK] spanning it.
        (
            "x " + "a" * 101 + " x",
            "cased",
            [[15], [UNK_ID], [15]],
            [[0], [2], [104]],
            [[1], [103], [105]],
        ),
    ],
)
def test_offsets_index_the_input(
    hand_tokenizers, text, mode, expected_ids, expected_starts, expected_ends
):
    tokenizer = hand_tokenizers[mode]
    ids, starts, ends = tokenize(tokenizer, [text])
    assert (ids[0], starts[0], ends[0]) == (expected_ids, expected_starts, expected_ends)
    assert_matches_reference(tokenizer, [text], HAND_VOCAB, mode)


@pytest.mark.parametrize("mode", MODES)
def test_invalid_utf8_reads_as_replacement_characters(tokenizers, mode):
    # "\xff" and the truncated "\xe2\x82" are ill-formed; each becomes U+FFFD
    # (a word character) spanning its own bytes.
    invalid = [b"ab\xffab x \xe2\x82 x\xc3", b"\xff", b"\xe2\x82\xac\xe2"]
    replaced = [text.decode("utf-8", errors="replace") for text in invalid]
    ids, starts, ends = tokenize(tokenizers[mode], invalid)
    replaced_ids, replaced_starts, _ = tokenize(tokenizers[mode], replaced)
    assert ids == replaced_ids
    assert [[len(word) for word in text] for text in starts] == [
        [len(word) for word in text] for text in replaced_starts
    ]
    # Word boundaries in input bytes: "ab\xffab", "x", "\xe2\x82", "x\xc3".
    assert [[word[0] for word in text] for text in starts][0] == [0, 6, 8, 11]
    assert [[word[-1] for word in text] for text in ends][0] == [5, 7, 10, 13]
    assert [[word[0] for word in text] for text in starts][1:] == [[0], [0]]
    assert [[word[-1] for word in text] for text in ends][1:] == [[1], [4]]


@pytest.mark.parametrize("mode", MODES)
def test_empty_batch(tokenizers, mode):
    ids, starts, ends = tokenizers[mode].tokenize_with_offsets(tf.constant([], tf.string))
    for output, dtype in ((ids, tf.int32), (starts, tf.int64), (ends, tf.int64)):
        assert output.dtype == dtype and output.shape.rank == 3 and output.to_list() == []
    assert tokenizers[mode].tokenize(tf.constant([], tf.string)).to_list() == []


@pytest.mark.parametrize("mode", MODES)
def test_100k_character_texts(tokenizers, vocabs, corpus_lines, mode):
    long_text = " ".join(corpus_lines)[:100_000]
    one_word = "ab" * 50_000
    ids, starts, ends = assert_matches_reference(
        tokenizers[mode], [long_text, one_word], vocabs[mode], mode
    )
    assert sum(len(word) for word in ids[0]) > 10_000
    assert (ids[1], starts[1], ends[1]) == ([[UNK_ID]], [[0]], [[100_000]])


LOAD_WITHOUT_TENSORFLOW_TEXT = textwrap.dedent("""
    import base64, json, sys
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import op_def_registry

    export_dir, texts_json = sys.argv[1:]
    saved_model = saved_model_pb2.SavedModel()
    with open(export_dir + "/saved_model.pb", "rb") as f:
        saved_model.ParseFromString(f.read())
    op_types, function_names = set(), set()
    for meta_graph in saved_model.meta_graphs:
        op_types.update(node.op for node in meta_graph.graph_def.node)
        for function in meta_graph.graph_def.library.function:
            function_names.add(function.signature.name)
            op_types.update(node.op for node in function.node_def)
    op_types -= function_names  # calls of library functions name them as the op
    loaded = tf.saved_model.load(export_dir)
    texts = tf.constant([base64.b64decode(t) for t in json.loads(texts_json)])
    print(json.dumps({
        "op_types": sorted(op_types),
        "unregistered_op_types": sorted(op for op in op_types if op_def_registry.get(op) is None),
        "foreign_modules": sorted(m for m in sys.modules if m.startswith(("tensorflow_text", "electra_tf"))),
        "outputs": {name: {key: value.numpy().tolist() for key, value in signature(texts=texts).items()}
                    for name, signature in loaded.signatures.items()},
    }))
""")


class ServingExport(tf.Module):
    """A raw-text serving signature with flat outputs, as TF Serving needs them."""

    def __init__(self, tokenizer):
        super().__init__()
        self.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def serve(self, texts):
        ids, starts, ends = self.tokenizer.tokenize_with_offsets(texts)
        return {
            "wordpiece_ids": ids.flat_values,
            "word_row_splits": ids.row_splits,
            "piece_row_splits": ids.values.row_splits,
            "starts": starts.flat_values,
            "ends": ends.flat_values,
        }


def test_saved_model_runs_on_core_tensorflow_alone(tokenizers, corpus_lines, tmp_path):
    exports = {mode: ServingExport(tokenizer) for mode, tokenizer in tokenizers.items()}
    root = tf.Module()
    root.exports = list(exports.values())
    export_dir = str(tmp_path / "tokenizer")
    tf.saved_model.save(
        root,
        export_dir,
        signatures={mode: export.serve.get_concrete_function() for mode, export in exports.items()},
    )
    texts = [t.encode("utf-8") for t in ADVERSARIAL_TEXTS + corpus_lines[::20]] + [
        b"ab\xffcd \xe2\x82"
    ]

    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD_WITHOUT_TENSORFLOW_TEXT,
            export_dir,
            json.dumps([base64.b64encode(t).decode("ascii") for t in texts]),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    loaded = json.loads(completed.stdout.strip().splitlines()[-1])

    assert loaded["foreign_modules"] == []
    assert loaded["unregistered_op_types"] == [], loaded["op_types"]
    assert "StaticRegexFullMatch" in loaded["op_types"] and "While" in loaded["op_types"]
    for mode, export in exports.items():
        expected = {
            key: value.numpy().tolist() for key, value in export.serve(tf.constant(texts)).items()
        }
        assert loaded["outputs"][mode] == expected, mode


SPACES_AND_CONTROLS = (
    "\x00\t\n\r\x0b\x0c\x1b\x7f\x85\x9f\u00a0\u00ad\u1680\u2000\u200a\u200b\u200c\u200d"
    "\u2028\u2029\u202e\u2060\u3000\ufeff\U000e0001"
)
EMOJI_JOINERS = "\u200d\ufe0e\ufe0f\u20e3"


def unicode_fragments(vocab):
    """Pieces of text a property test joins: any code point, and the kinds that go wrong."""
    words = [token.removeprefix("##") for token in vocab if token not in RESERVED_TOKENS]
    return st.one_of(
        st.text(st.characters(exclude_categories=("Cs",)), max_size=6),
        st.text(st.sampled_from(SPACES_AND_CONTROLS), min_size=1, max_size=3),
        st.characters(categories=("Mn", "Mc", "Me")),
        st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), max_size=4),
        st.characters(min_codepoint=0x20000, max_codepoint=0x2A6DF),
        st.text(
            st.one_of(
                st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),
                st.sampled_from(EMOJI_JOINERS),
            ),
            max_size=5,
        ),
        # Words at the 100-byte limit, in 1-, 2- and 3-byte characters.
        st.integers(90, 110).map(lambda n: "a" * n),
        st.integers(45, 55).map(lambda n: "é" * n),
        st.integers(30, 37).map(lambda n: "字" * n),
        st.sampled_from(words),
        st.sampled_from(words).map(str.upper),
    )


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=80, deadline=None, derandomize=True)
@given(data=st.data())
def test_matches_tensorflow_text_on_arbitrary_unicode(tokenizers, vocabs, mode, data):
    fragments = unicode_fragments(vocabs[mode])
    texts = data.draw(
        st.lists(st.lists(fragments, max_size=10).map("".join), min_size=1, max_size=4)
    )
    assert_matches_reference(tokenizers[mode], texts, vocabs[mode], mode)
