"""BERT tokenization (basic split + WordPiece) from core TensorFlow ops only.

A stock TensorFlow Serving binary has no tensorflow-text kernels (TF Serving
issues #1490, #2064), so a SavedModel whose signature takes raw text cannot use
`tensorflow_text.BertTokenizer`.  `CoreBertTokenizer` reproduces that tokenizer
with `tf.strings`, `tf.lookup` and `tf.while_loop` alone:

* ``do_lower_case=True`` (accents stripped) equals
  ``tensorflow_text.BertTokenizer(vocab, lower_case=True)``: ICU NFKC_Casefold,
  NFD, removal of ``\\p{Mn}``.
* ``do_lower_case=True, strip_accents=False`` equals
  ``tensorflow_text.BertTokenizer(vocab, lower_case=True,
  basic_tokenizer_class=AccentPreservingBasicTokenizer)``: ICU full lower-casing
  (``tf.strings.lower(encoding="utf-8")``), no Unicode normalization.
* ``do_lower_case=False`` equals ``tensorflow_text.BertTokenizer(vocab)``: text
  is split as is.

In every mode control/format characters (``\\p{Cc}``, ``\\p{Cf}``) count as
whitespace, words are split on ASCII whitespace, each punctuation character
(BERT's definition: ``\\p{P}`` plus the ASCII symbols) and each CJK ideograph is
a word of its own, and each word is split into the longest vocabulary pieces
left to right; a word longer than ``max_bytes_per_word`` (UTF-8 bytes after
normalization) or with no complete split becomes one ``unk_token``.

Where this deliberately differs from tensorflow_text:

* Offsets are byte offsets into the original input, not into the normalized
  text tensorflow_text reports them for.  Each normalized character inherits
  the byte span of the input character it came from, so a piece made of part of
  an expansion (``ß`` -> ``ss``, ``ﬁ`` -> ``fi``) spans the whole input
  character, and stripped combining marks after a piece's last character lie
  outside it.
* A word over ``max_bytes_per_word`` ends where the word ends; tensorflow_text
  ends it ``len(unk_token)`` bytes after its start.
* With ``strip_accents=False``, NUL is a space like every other control
  character; tensorflow_text drops the rest of the text after it, because
  ``tf.strings.lower(encoding="utf-8")`` stops at NUL.
* Invalid UTF-8 never fails: each ill-formed byte sequence (as
  ``tf.strings.unicode_decode`` delimits it) is read as U+FFFD, a word
  character, whose span is the ill-formed bytes.

The NFKC_Casefold mapping is computed from Python's `unicodedata` when the
tokenizer is built, completed with the characters Unicode 15.0-16.0 added (what
tensorflow_text 2.20's ICU knows), and stored in the graph as a lookup table.
"""

import functools
import unicodedata
from collections.abc import Sequence

import tensorflow as tf

# The RE2 classes of tensorflow_text's BasicTokenizer (bert_tokenizer.py,
# _DELIM_REGEX without `\s+`): every character they match is a word by itself.
_ISOLATED_CHARACTER_PATTERN = "|".join(
    [
        r"[!-/]",
        r"[:-@]",
        r"[\[-`]",
        r"[{-~]",
        r"[\p{P}]",
        r"[\x{4E00}-\x{9FFF}]",
        r"[\x{3400}-\x{4DBF}]",
        r"[\x{20000}-\x{2A6DF}]",
        r"[\x{2A700}-\x{2B73F}]",
        r"[\x{2B740}-\x{2B81F}]",
        r"[\x{2B820}-\x{2CEAF}]",
        r"[\x{F900}-\x{FAFF}]",
        r"[\x{2F800}-\x{2FA1F}]",
    ]
)
# tensorflow_text replaces these with a space before splitting on RE2's `\s`,
# which is ASCII [\t\n\f\r ]; all of that but the space itself is \p{Cc}.
_CONTROL_CHARACTER_PATTERN = r"\p{Cc}|\p{Cf}"
_NONSPACING_MARK_PATTERN = r"\p{Mn}"
_SPACE = ord(" ")

# Default_Ignorable_Code_Point (Unicode DerivedCoreProperties.txt); NFKC_Casefold
# deletes these characters.
_DEFAULT_IGNORABLE_RANGES = (
    (0x00AD, 0x00AD),
    (0x034F, 0x034F),
    (0x061C, 0x061C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
# NFD(NFKC_Casefold(c)) of characters added in Unicode 15.0 and 16.0, which
# tensorflow_text's ICU knows and Python 3.11's unicodedata (Unicode 14.0) does
# not: runs (first, last, image of first) map with a constant shift, then
# single characters.
_NEWER_UNICODE_RUNS = (
    (0x10D50, 0x10D65, 0x10D70),
    (0x1CCD6, 0x1CCEF, 0x0061),
    (0x1CCF0, 0x1CCF9, 0x0030),
    (0x1E030, 0x1E038, 0x0430),
    (0x1E03C, 0x1E046, 0x043E),
    (0x1E051, 0x1E059, 0x0430),
    (0x1E05F, 0x1E064, 0x0443),
)
_NEWER_UNICODE_MAPPINGS = {
    0x1C89: (0x1C8A,),
    0xA7CB: (0x0264,),
    0xA7CC: (0xA7CD,),
    0xA7DA: (0xA7DB,),
    0xA7DC: (0x019B,),
    0x105C9: (0x105D2,),
    0x105E4: (0x105DA,),
    0x11383: (0x11382, 0x113C9),
    0x11385: (0x11384, 0x113BB),
    0x1138E: (0x1138B, 0x113C2),
    0x11391: (0x11390, 0x113C9),
    0x113C5: (0x113C2, 0x113C2),
    0x113C7: (0x113C2, 0x113B8),
    0x113C8: (0x113C2, 0x113C9),
    0x16121: (0x1611E, 0x1611E),
    0x16122: (0x1611E, 0x16129),
    0x16123: (0x1611E, 0x1611F),
    0x16124: (0x16129, 0x1611F),
    0x16125: (0x1611E, 0x16120),
    0x16126: (0x1611E, 0x1611E, 0x1611F),
    0x16127: (0x1611E, 0x16129, 0x1611F),
    0x16128: (0x1611E, 0x1611E, 0x16120),
    0x16D68: (0x16D67, 0x16D67),
    0x16D69: (0x16D63, 0x16D67),
    0x16D6A: (0x16D63, 0x16D67, 0x16D67),
    0x1E039: (0x043A,),
    0x1E03A: (0x043B,),
    0x1E03B: (0x043C,),
    0x1E047: (0x044B,),
    0x1E048: (0x044D,),
    0x1E049: (0x044E,),
    0x1E04A: (0xA689,),
    0x1E04B: (0x04D9,),
    0x1E04C: (0x0456,),
    0x1E04D: (0x0458,),
    0x1E04E: (0x04E9,),
    0x1E04F: (0x04AF,),
    0x1E050: (0x04CF,),
    0x1E05A: (0x043A,),
    0x1E05B: (0x043B,),
    0x1E05C: (0x043E,),
    0x1E05D: (0x043F,),
    0x1E05E: (0x0441,),
    0x1E065: (0x044A,),
    0x1E066: (0x044B,),
    0x1E067: (0x0491,),
    0x1E068: (0x0456,),
    0x1E069: (0x0455,),
    0x1E06A: (0x045F,),
    0x1E06B: (0x04AB,),
    0x1E06C: (0xA651,),
    0x1E06D: (0x04B1,),
}
# A mapped code point's table value packs (offset into the mapped code points,
# number of them); the longest NFKD expansion (U+FDFA) has 18 code points.
_EXPANSION_LIMIT = 64


def _is_default_ignorable(character: str) -> bool:
    code_point = ord(character)
    return any(low <= code_point <= high for low, high in _DEFAULT_IGNORABLE_RANGES)


def _nfkc_casefold(text: str) -> str:
    """Unicode's NFKC_Casefold, iterated to its fixed point as the standard defines it."""
    while True:
        folded = unicodedata.normalize("NFKC", text).casefold()
        folded = "".join(c for c in folded if not _is_default_ignorable(c))
        folded = unicodedata.normalize("NFKC", folded)
        if folded == text:
            return folded
        text = folded


@functools.lru_cache(maxsize=1)
def _casefold_decomposition_table() -> tuple[list[int], list[int], list[int]]:
    """Every code point c with NFD(NFKC_Casefold(c)) != c, as lookup-table data.

    Returns (keys, packed offset/length values, concatenated mapped code points).
    Mapping code point by code point equals mapping the whole text: casefolding
    is context free, the final NFD undoes NFKC's cross-character composition,
    and NFD's reordering of combining marks across characters only moves marks
    that \\p{Mn} removal then drops (bar a few spacing musical-symbol marks).
    """
    keys, packed, mapped_code_points = [], [], []

    def add(code_point: int, mapped: str) -> None:
        keys.append(code_point)
        packed.append(len(mapped_code_points) * _EXPANSION_LIMIT + len(mapped))
        mapped_code_points.extend(ord(c) for c in mapped)

    for code_point in range(0x110000):
        if 0xD800 <= code_point <= 0xDFFF:  # surrogates never come out of UTF-8 decoding
            continue
        character = chr(code_point)
        if (
            unicodedata.is_normalized("NFKD", character)
            and character.casefold() == character
            and not _is_default_ignorable(character)
        ):
            continue
        mapped = unicodedata.normalize("NFD", _nfkc_casefold(character))
        if mapped != character:
            add(code_point, mapped)

    newer_mappings = dict(_NEWER_UNICODE_MAPPINGS)
    for first, last, first_image in _NEWER_UNICODE_RUNS:
        newer_mappings.update((c, (c - first + first_image,)) for c in range(first, last + 1))
    for code_point, mapped in newer_mappings.items():
        if unicodedata.category(chr(code_point)) == "Cn":  # else this Python knows it already
            add(code_point, "".join(map(chr, mapped)))
    return keys, packed, mapped_code_points


def _previous(values: tf.Tensor, first: tf.Tensor) -> tf.Tensor:
    """values shifted one place later, with `first` in front (same length, also when empty)."""
    return tf.concat([tf.reshape(first, [1]), values[:-1]], 0)[: tf.size(values)]


def _utf8_length(code_points: tf.Tensor) -> tf.Tensor:
    """Number of UTF-8 bytes encoding each (valid) code point, as int64."""
    return (
        1
        + tf.cast(code_points >= 0x80, tf.int64)
        + tf.cast(code_points >= 0x800, tf.int64)
        + tf.cast(code_points >= 0x10000, tf.int64)
    )


class CoreBertTokenizer(tf.Module):
    """`tensorflow_text.BertTokenizer` semantics with core TensorFlow ops only.

    Args:
      vocab: WordPiece vocabulary; a token's id is its index.
      do_lower_case: lower-case the text before splitting it.
      strip_accents: remove accents (NFKC_Casefold + NFD, drop \\p{Mn}) when
        lower-casing; None means the same as `do_lower_case`.  Stripping accents
        without lower-casing has no tensorflow_text counterpart and is refused.
      unk_token: emitted for a word that cannot be split into vocabulary pieces.
      max_chars_per_token: longest piece, in characters, tried when splitting a
        word (tensorflow_text's `max_chars_per_token`); it only changes results
        for vocabularies with longer tokens.
      suffix_indicator: prefix of vocabulary pieces that continue a word.
      max_bytes_per_word: a word with more UTF-8 bytes (after normalization)
        becomes `unk_token` unsplit (tensorflow_text's `max_bytes_per_word`).
    """

    def __init__(
        self,
        vocab: Sequence[str],
        do_lower_case: bool,
        strip_accents: bool | None = None,
        unk_token: str = "[UNK]",
        max_chars_per_token: int = 200,
        suffix_indicator: str = "##",
        max_bytes_per_word: int = 100,
        name: str | None = None,
    ):
        super().__init__(name=name)
        vocab = list(vocab)
        if unk_token not in vocab:
            raise ValueError(f"unk_token {unk_token!r} is not in the vocabulary")
        if strip_accents is None:
            strip_accents = do_lower_case
        if strip_accents and not do_lower_case:
            raise ValueError("strip_accents=True requires do_lower_case=True")
        self._do_lower_case = do_lower_case
        self._strip_accents = strip_accents
        self._unk_id = vocab.index(unk_token)
        self._max_chars_per_token = max_chars_per_token
        self._suffix_indicator = suffix_indicator
        self._max_bytes_per_word = max_bytes_per_word
        self._vocab_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(vocab, tf.string), tf.range(len(vocab), dtype=tf.int64)
            ),
            default_value=-1,
        )
        if strip_accents:
            keys, packed, mapped_code_points = _casefold_decomposition_table()
            self._casefold_table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(
                    tf.constant(keys, tf.int64), tf.constant(packed, tf.int64)
                ),
                default_value=-1,
            )
            self._casefold_code_points = tf.constant(mapped_code_points, tf.int32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """Wordpiece ids, int32 RaggedTensor [batch, (words), (pieces)]."""
        wordpiece_ids, _, _ = self.tokenize_with_offsets(texts)
        return wordpiece_ids

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize_with_offsets(
        self, texts: tf.Tensor
    ) -> tuple[tf.RaggedTensor, tf.RaggedTensor, tf.RaggedTensor]:
        """Wordpiece ids (int32) and their [start, end) byte offsets (int64) into `texts`.

        All three are RaggedTensors [batch, (words), (pieces)].
        """
        characters = self._normalized_characters(texts)
        is_word_character = ~characters["is_whitespace"]
        starts_word = is_word_character & (
            characters["is_isolated"]
            | characters["first_in_text"]
            | _previous(characters["is_whitespace"] | characters["is_isolated"], True)
        )

        def word_characters(values):
            return tf.boolean_mask(values, is_word_character)

        source_character = word_characters(characters["source_character"])
        starts_word = word_characters(starts_word)
        word_of_character = tf.cumsum(tf.cast(starts_word, tf.int64)) - 1
        words = tf.RaggedTensor.from_value_rowids(
            word_characters(characters["code_points"]),
            word_of_character,
            nrows=tf.reduce_sum(tf.cast(starts_word, tf.int64)),
        )
        text_of_word = tf.boolean_mask(word_characters(characters["text_index"]), starts_word)

        piece_ids, piece_word, piece_first, piece_last = self._wordpiece(words, starts_word)
        piece_starts = tf.gather(
            characters["input_starts"], tf.gather(source_character, piece_first)
        )
        piece_ends = tf.gather(characters["input_ends"], tf.gather(source_character, piece_last))

        def by_text_and_word(piece_values):
            pieces_by_word = tf.RaggedTensor.from_value_rowids(
                piece_values, piece_word, nrows=words.nrows()
            )
            return tf.RaggedTensor.from_value_rowids(
                pieces_by_word, text_of_word, nrows=tf.shape(texts, out_type=tf.int64)[0]
            )

        return (
            by_text_and_word(piece_ids),
            by_text_and_word(piece_starts),
            by_text_and_word(piece_ends),
        )

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def normalize(self, texts: tf.Tensor) -> tf.Tensor:
        """The text the word split sees: tensorflow_text BasicTokenizer's preprocessing.

        Lower-cased/accent-stripped per the settings, control and format
        characters replaced by a space, invalid UTF-8 replaced by U+FFFD.
        """
        characters = self._normalized_characters(texts)
        code_points = tf.where(characters["is_control"], _SPACE, characters["code_points"])
        return tf.strings.unicode_encode(
            tf.RaggedTensor.from_value_rowids(
                code_points, characters["text_index"], nrows=tf.shape(texts, out_type=tf.int64)[0]
            ),
            "UTF-8",
        )

    def _normalized_characters(self, texts: tf.Tensor) -> dict[str, tf.Tensor]:
        """Normalized code points of all texts, flat, with their origin and classes.

        Keys: code_points (int32), source_character (index into input_starts and
        input_ends, the byte span of the input character it came from),
        text_index, first_in_text, is_control, is_whitespace, is_isolated.
        """
        decoded, input_starts = tf.strings.unicode_decode_with_offsets(
            texts, "UTF-8", errors="replace", replacement_char=0xFFFD
        )
        input_starts = tf.cast(input_starts.flat_values, tf.int64)
        text_of_input_character = decoded.value_rowids()
        character_index = tf.range(tf.size(input_starts, out_type=tf.int64))
        is_last_in_text = (
            character_index == tf.gather(decoded.row_limits(), text_of_input_character) - 1
        )
        input_ends = tf.where(
            is_last_in_text,
            tf.gather(tf.cast(tf.strings.length(texts), tf.int64), text_of_input_character),
            tf.concat([input_starts[1:], [0]], 0)[: tf.size(input_starts)],
        )

        if self._strip_accents:
            code_points, source_character = self._casefold_decompose(decoded.flat_values)
            text_index = tf.gather(text_of_input_character, source_character)
        elif self._do_lower_case:
            code_points, source_character, text_index = self._lower_case(decoded)
        else:
            code_points, source_character, text_index = (
                decoded.flat_values,
                character_index,
                text_of_input_character,
            )

        as_strings = tf.strings.unicode_encode(code_points[:, tf.newaxis], "UTF-8")
        if self._strip_accents:
            is_kept = ~tf.strings.regex_full_match(as_strings, _NONSPACING_MARK_PATTERN)
            code_points, source_character, text_index, as_strings = (
                tf.boolean_mask(values, is_kept)
                for values in (code_points, source_character, text_index, as_strings)
            )
        is_control = tf.strings.regex_full_match(as_strings, _CONTROL_CHARACTER_PATTERN)
        return {
            "code_points": code_points,
            "source_character": source_character,
            "text_index": text_index,
            "first_in_text": text_index != _previous(text_index, tf.constant(-1, tf.int64)),
            "input_starts": input_starts,
            "input_ends": input_ends,
            "is_control": is_control,
            "is_whitespace": is_control | (code_points == _SPACE),
            "is_isolated": tf.strings.regex_full_match(as_strings, _ISOLATED_CHARACTER_PATTERN),
        }

    def _casefold_decompose(self, code_points: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """NFD(NFKC_Casefold(.)) per code point: (mapped code points, index of their source)."""
        packed = self._casefold_table.lookup(tf.cast(code_points, tf.int64))
        is_mapped = packed >= 0
        # Unmapped code points are gathered from a copy of the input appended
        # after the mapped code points, so one gather serves both.
        offsets = tf.where(
            is_mapped,
            packed // _EXPANSION_LIMIT,
            tf.size(self._casefold_code_points, out_type=tf.int64)
            + tf.range(tf.size(code_points, out_type=tf.int64)),
        )
        lengths = tf.where(is_mapped, packed % _EXPANSION_LIMIT, 1)
        positions = tf.ragged.range(offsets, offsets + lengths)
        mapped = tf.gather(
            tf.concat([self._casefold_code_points, code_points], 0), positions.flat_values
        )
        return mapped, positions.value_rowids()

    def _lower_case(self, decoded: tf.RaggedTensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """ICU full lower-casing: (code points, index of their source, text index).

        Whole texts are lower-cased, as tensorflow_text does, because Greek
        capital sigma lowers by context (final ς).  Lower-casing a character
        alone yields as many code points as it does in context, so per-character
        counts align the two.  That holds for ICU's root casing rules; under a
        Lithuanian default locale it may not, and the assertion stops the op
        rather than misplace offsets.
        """
        # tf.strings.lower ends a text at its first NUL; NUL becomes a space
        # later anyway, so it is a space from here on.
        decoded = decoded.with_flat_values(
            tf.where(decoded.flat_values == 0, _SPACE, decoded.flat_values)
        )
        lowered = tf.strings.unicode_decode(
            tf.strings.lower(tf.strings.unicode_encode(decoded, "UTF-8"), encoding="utf-8"), "UTF-8"
        )
        lowered_alone = tf.strings.lower(
            tf.strings.unicode_encode(decoded.flat_values[:, tf.newaxis], "UTF-8"), encoding="utf-8"
        )
        lengths = tf.cast(tf.strings.length(lowered_alone, unit="UTF8_CHAR"), tf.int64)
        source_character = tf.repeat(tf.range(tf.size(lengths, out_type=tf.int64)), lengths)
        with tf.control_dependencies(
            [
                tf.debugging.assert_equal(
                    tf.size(source_character),
                    tf.size(lowered.flat_values),
                    message="lower-casing in context changed the number of code points",
                )
            ]
        ):
            return tf.identity(lowered.flat_values), source_character, lowered.value_rowids()

    def _wordpiece(
        self, words: tf.RaggedTensor, starts_word: tf.Tensor
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        """Greedy longest-match-first WordPiece over all words at once.

        Args:
          words: normalized code points, [words, (characters)].
          starts_word: bool per character of `words.flat_values`.

        Returns:
          (ids, word, first character, last character) per piece, characters as
          indices into `words.flat_values`.
        """
        num_words = words.nrows()
        num_characters = tf.size(words.flat_values, out_type=tf.int64)
        word_first_character = words.row_starts()
        word_length = words.row_lengths()
        character_bytes = _utf8_length(words.flat_values)
        byte_ends = tf.cumsum(character_bytes)
        word_of_character = words.value_rowids()
        # Byte span of each character inside its word's UTF-8 encoding.
        character_byte_end = byte_ends - tf.gather(
            byte_ends - character_bytes, tf.gather(word_first_character, word_of_character)
        )
        character_byte_start = character_byte_end - character_bytes
        word_bytes = tf.strings.unicode_encode(words, "UTF-8")
        is_too_long = tf.strings.length(word_bytes) > self._max_bytes_per_word

        def search_step(position, searching, failed, piece_id_at):
            match_length, match_id = self._longest_match(
                words, word_bytes, (character_byte_start, character_byte_end), position, searching
            )
            matched = searching & (match_length > 0)
            piece_id_at = tf.tensor_scatter_nd_update(
                piece_id_at,
                tf.boolean_mask(word_first_character + position, matched)[:, tf.newaxis],
                tf.boolean_mask(match_id, matched),
            )
            position += tf.where(matched, match_length, 0)
            return (
                position,
                matched & (position < word_length),
                failed | (searching & ~matched),
                piece_id_at,
            )

        # Each step consumes at least one character of every word it continues,
        # and a searched word has at most max_bytes_per_word characters.
        _, _, failed, piece_id_at = tf.while_loop(
            lambda position, searching, failed, piece_id_at: tf.reduce_any(searching),
            search_step,
            (
                tf.zeros([num_words], tf.int64),
                ~is_too_long,
                tf.zeros([num_words], tf.bool),
                tf.fill([num_characters], tf.constant(-1, tf.int64)),
            ),
            maximum_iterations=self._max_bytes_per_word,
        )

        is_unknown = tf.gather(is_too_long | failed, word_of_character)
        return self._pieces(words, starts_word, is_unknown, piece_id_at)

    def _longest_match(self, words, word_bytes, character_byte_spans, position, searching):
        """(length, id) per word of the longest vocabulary piece at `position` (0 if none).

        Candidates: every piece length from the word's position on, for every word still being
        split; the longest one in the vocabulary wins.
        """
        num_words = words.nrows()
        word_first_character = words.row_starts()
        character_byte_start, character_byte_end = character_byte_spans
        num_candidates = tf.where(
            searching, tf.minimum(words.row_lengths() - position, self._max_chars_per_token), 0
        )
        candidate_word = tf.repeat(tf.range(num_words), num_candidates)
        candidate_length = tf.ragged.range(num_candidates).flat_values + 1
        first = tf.gather(word_first_character + position, candidate_word)
        byte_start = tf.gather(character_byte_start, first)
        piece_text = tf.strings.substr(
            tf.gather(word_bytes, candidate_word),
            byte_start,
            tf.gather(character_byte_end, first + candidate_length - 1) - byte_start,
        )
        piece_text = tf.where(
            tf.gather(position > 0, candidate_word),
            tf.strings.join([self._suffix_indicator, piece_text]),
            piece_text,
        )
        candidate_id = self._vocab_table.lookup(piece_text)
        in_vocab = candidate_id >= 0
        # Words without candidates get the dtype's minimum from segment_max.
        match_length = tf.maximum(
            tf.math.unsorted_segment_max(
                tf.where(in_vocab, candidate_length, 0), candidate_word, num_words
            ),
            0,
        )
        is_match = in_vocab & (candidate_length == tf.gather(match_length, candidate_word))
        match_id = tf.math.unsorted_segment_max(
            tf.where(is_match, candidate_id, -1), candidate_word, num_words
        )
        return match_length, match_id

    def _pieces(self, words, starts_word, is_unknown, piece_id_at):
        """(ids, word, first character, last character) per piece from the matches found at
        each piece's first character; an unknown word is one [UNK] per word."""
        num_characters = tf.size(words.flat_values, out_type=tf.int64)
        word_of_character = words.value_rowids()
        word_first_character = words.row_starts()
        word_length = words.row_lengths()
        starts_piece = tf.where(is_unknown, starts_word, piece_id_at >= 0)
        piece_ids = tf.boolean_mask(
            tf.where(is_unknown, tf.constant(self._unk_id, tf.int64), piece_id_at), starts_piece
        )
        piece_first = tf.where(starts_piece)[:, 0]
        piece_word = tf.gather(word_of_character, piece_first)
        # A piece ends where the next piece of its word starts, else with its word.
        next_first = tf.concat([piece_first[1:], [num_characters]], 0)[: tf.size(piece_first)]
        next_word = tf.concat([piece_word[1:], [-1]], 0)[: tf.size(piece_word)]
        piece_last = (
            tf.where(
                next_word == piece_word,
                next_first,
                tf.gather(word_first_character + word_length, piece_word),
            )
            - 1
        )
        return tf.cast(piece_ids, tf.int32), piece_word, piece_first, piece_last
