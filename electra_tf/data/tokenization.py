"""BERT-compatible WordPiece tokenization on tensorflow_text.

The pipeline is BERT's: clean the text, optionally lower-case and strip
accents, split on whitespace, punctuation and CJK ideographs, then split each
word into WordPiece ids. Every stage is a TensorFlow op, so whole batches of
lines are tokenized in one call.

Lower-cased, accent-stripped output matches BERT's Python tokenizer id for
id. One deliberate difference: where accents are kept, text is NFC-composed
first (BERT uses it as given), so decomposed input still finds its tokens.
"""

import hashlib
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import tensorflow as tf
import tensorflow_text as tf_text

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")

# BERT turns any word longer than this many characters into [UNK].
MAX_CHARS_PER_WORD = 200

_WHITESPACE = r"[\s\p{Zs}]+"
# BERT counts every non-alphanumeric ASCII symbol as punctuation, not only
# the Unicode P* categories (so "$", "+", "^" are split off too).
_PUNCTUATION = r"[!-/:-@\[-`{-~\p{P}]"
# The CJK Unified Ideograph blocks BERT isolates; Hangul, Hiragana and
# Katakana are deliberately absent, as in BERT.
_CJK_IDEOGRAPH = (
    r"[\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}"
    r"\x{2A700}-\x{2B73F}\x{2B740}-\x{2B81F}\x{2B820}-\x{2CEAF}"
    r"\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}]"
)
_SPLIT_PATTERN = "|".join((_WHITESPACE, _PUNCTUATION, _CJK_IDEOGRAPH))
_KEEP_PATTERN = "|".join((_PUNCTUATION, _CJK_IDEOGRAPH))


class SpecialTokens(NamedTuple):
    """Ids of the special tokens in one vocabulary."""

    pad: int
    unk: int
    cls: int
    sep: int
    mask: int


def load_vocab(path: str) -> list[str]:
    """Reads a WordPiece vocabulary (one token per line; the line number is the id)."""
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"Vocabulary file {path} does not exist. Create one with "
            "`python -m electra_tf.build_vocab --vocab_file=...`."
        )
    with tf.io.gfile.GFile(path, "rb") as f:
        raw_lines = f.read().splitlines()
    tokens = []
    first_line_of = {}
    for line_number, raw in enumerate(raw_lines, start=1):
        try:
            token = raw.decode("utf-8").strip()
        except UnicodeDecodeError as e:
            raise ValueError(
                f"{path}:{line_number}: vocabulary is not valid UTF-8 ({e.reason} "
                f"at byte {e.start} of the line). Re-save the file as UTF-8."
            ) from None
        if not token:
            raise ValueError(
                f"{path}:{line_number}: empty line in vocabulary; every line must "
                "hold exactly one token. Remove the blank line."
            )
        if token in first_line_of:
            raise ValueError(
                f"{path}:{line_number}: token {token!r} duplicates line "
                f"{first_line_of[token]}; each token must appear once. Remove one of them."
            )
        first_line_of[token] = line_number
        tokens.append(token)
    if not tokens:
        raise ValueError(f"Vocabulary file {path} is empty.")
    missing = [t for t in SPECIAL_TOKENS if t not in first_line_of]
    if missing:
        raise ValueError(
            f"Vocabulary file {path} lacks the special token(s) {' '.join(missing)}. "
            "ELECTRA needs all of " + " ".join(SPECIAL_TOKENS) + "; "
            "`python -m electra_tf.build_vocab` writes a vocabulary that has them."
        )
    return tokens


def vocab_sha256(tokens: Sequence[str]) -> str:
    """SHA-256 of the token list (one token a line): the vocabulary's identity.

    It ignores line endings and surrounding spaces, as `load_vocab` does, so the same
    vocabulary saved on another system has the same hash.
    """
    return hashlib.sha256("\n".join(tokens).encode("utf-8")).hexdigest()


def special_token_ids(vocab: Sequence[str]) -> SpecialTokens:
    """Looks the special tokens up in `vocab`, which must contain all of them."""
    index = {token: i for i, token in enumerate(vocab)}
    missing = [t for t in SPECIAL_TOKENS if t not in index]
    if missing:
        raise ValueError(f"Vocabulary lacks the special token(s) {' '.join(missing)}.")
    return SpecialTokens(*(index[t] for t in SPECIAL_TOKENS))


def resolve_strip_accents(do_lower_case: bool, strip_accents: bool | None) -> bool:
    """BERT's convention: accents are stripped exactly when lower-casing, unless told."""
    return do_lower_case if strip_accents is None else strip_accents


def normalize_text(texts: tf.Tensor, do_lower_case: bool, strip_accents: bool) -> tf.Tensor:
    """BERT's text cleaning and case/accent normalization, as string ops.

    Control and format characters are deleted (not turned into spaces, so a
    soft hyphen or zero-width space inside a word keeps the word whole) and
    every kind of whitespace becomes a plain space, which lets the later
    split use one simple whitespace class.
    """
    texts = tf.strings.regex_replace(texts, r"[\t\n\r\p{Zs}]", " ")
    texts = tf.strings.regex_replace(texts, r"[\p{Cc}\p{Cf}\x{FFFD}]", "")
    if do_lower_case:
        texts = tf.strings.lower(texts, encoding="utf-8")
    if strip_accents:
        # Decomposing first turns accents into separate combining marks (Mn).
        # Like BERT, nothing is recomposed afterwards, so Hangul stays as
        # jamo: Korean text wants strip_accents=False.
        texts = tf_text.normalize_utf8(texts, "NFD")
        texts = tf.strings.regex_replace(texts, r"\p{Mn}", "")
    else:
        # BERT leaves kept accents as they come; composing them means "café"
        # typed with a combining accent still matches the vocabulary's "café".
        texts = tf_text.normalize_utf8(texts, "NFC")
    return texts


def split_words(texts: tf.Tensor) -> tf.RaggedTensor:
    """Splits normalized text into BERT's words: [batch, (words)] strings."""
    return tf_text.regex_split(texts, _SPLIT_PATTERN, _KEEP_PATTERN)


class FullTokenizer:
    """Text to WordPiece ids, like BERT's FullTokenizer but a batch at a time."""

    def __init__(
        self, vocab_file: str, do_lower_case: bool = True, strip_accents: bool | None = None
    ):
        self.vocab = load_vocab(vocab_file)
        self.special = special_token_ids(self.vocab)
        self.do_lower_case = do_lower_case
        self.strip_accents = resolve_strip_accents(do_lower_case, strip_accents)
        table = tf.lookup.StaticVocabularyTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(self.vocab), tf.range(len(self.vocab), dtype=tf.int64)
            ),
            num_oov_buckets=1,
        )
        # The word-length limit is applied in characters before this stage, so
        # the byte limit here only has to be large enough never to fire first.
        self._wordpiece = tf_text.WordpieceTokenizer(
            table,
            max_bytes_per_word=4 * MAX_CHARS_PER_WORD,
            token_out_type=tf.int64,
            unknown_token=SPECIAL_TOKENS[1],
        )
        self._tokenize_batch = tf.function(
            self._tokenize_graph, input_signature=[tf.TensorSpec([None], tf.string)]
        )

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def _tokenize_graph(self, texts: tf.Tensor) -> tf.RaggedTensor:
        words = split_words(normalize_text(texts, self.do_lower_case, self.strip_accents))
        too_long = tf.strings.length(words.flat_values, unit="UTF8_CHAR") > MAX_CHARS_PER_WORD
        words = words.with_flat_values(tf.where(too_long, SPECIAL_TOKENS[1], words.flat_values))
        pieces = self._wordpiece.tokenize(words)
        return tf.cast(pieces.merge_dims(1, 2), tf.int32)

    def tokenize(self, texts: Sequence[str] | tf.Tensor) -> tf.RaggedTensor:
        """WordPiece ids of each text: an int32 RaggedTensor [batch, (pieces)]."""
        texts = tf.convert_to_tensor(texts, dtype=tf.string)
        if texts.shape.rank != 1:
            raise ValueError(f"tokenize() takes a 1-D batch of strings, got shape {texts.shape}.")
        return self._tokenize_batch(texts)

    def tokenize_words(self, words: Sequence[str]) -> list[list[int]]:
        """WordPiece ids of each already-split word (one list per word, maybe several pieces)."""
        if not words:
            return []
        return self.tokenize(list(words)).to_list()

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.vocab[int(i)] for i in ids]
