"""SQuAD 1.1 / 2.0: reading, windowed features and answer postprocessing.

Documents are split on whitespace into words, words into wordpieces; long
documents become several windows of ``max_seq_length`` taken every
``doc_stride`` pieces.  Each input is [CLS] question [SEP] document [SEP].
Unanswerable (2.0) questions, and answers outside a training window, point at
[CLS] (position 0).  Scoring uses the official evaluators (see metrics.py).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import os
from collections.abc import Sequence

import numpy as np

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class SquadExample:
    qas_id: str
    question: str
    doc_words: list[str]
    answer_text: str = ""
    start_word: int = -1  # first/last answer word in doc_words (-1: none)
    end_word: int = -1
    is_impossible: bool = False
    all_answers: tuple[str, ...] = ()


def _is_ws(c: str) -> bool:
    return c in " \t\r\n" or ord(c) == 0x202F


def read_squad(path, is_training: bool) -> tuple[list[SquadExample], list]:
    """Reads a SQuAD JSON file; returns (examples, the JSON ``data`` list).

    With ``is_training`` only the first answer is used, and examples whose
    answer text cannot be found at its offset are skipped (with a log line).
    """
    import tensorflow as tf  # pylint: disable=g-import-not-at-top

    with tf.io.gfile.GFile(os.fspath(path), "r") as f:
        data = json.load(f)["data"]
    examples, skipped = [], 0
    for article in data:
        for para in article["paragraphs"]:
            context = para["context"]
            words, char_to_word, prev_ws = [], [], True
            for c in context:
                if _is_ws(c):
                    prev_ws = True
                else:
                    if prev_ws:
                        words.append(c)
                    else:
                        words[-1] += c
                    prev_ws = False
                char_to_word.append(len(words) - 1)
            for qa in para["qas"]:
                impossible = bool(qa.get("is_impossible", False))
                answers = qa.get("answers", [])
                ex = SquadExample(
                    qa["id"],
                    qa["question"],
                    words,
                    is_impossible=impossible,
                    all_answers=tuple(a["text"] for a in answers),
                )
                if is_training and not impossible:
                    if not answers:
                        skipped += 1
                        continue
                    ans = answers[0]
                    start = ans["answer_start"]
                    end = start + len(ans["text"]) - 1
                    if end >= len(char_to_word) or start < 0:
                        skipped += 1
                        continue
                    ex.answer_text = ans["text"]
                    ex.start_word, ex.end_word = char_to_word[start], char_to_word[end]
                    span = " ".join(words[ex.start_word : ex.end_word + 1])
                    if " ".join(ans["text"].split()) not in span:
                        skipped += 1
                        continue
                examples.append(ex)
    if skipped:
        logger.warning(
            "%s: skipped %d training question(s) whose answer could not be located", path, skipped
        )
    return examples, data


@dataclasses.dataclass
class SquadFeatures:
    example_index: int
    window_index: int
    input_ids: list[int]
    segment_ids: list[int]
    token_to_word: dict[int, int]  # input position -> doc word index
    token_is_max_context: dict[int, bool]
    start_position: int = 0
    end_position: int = 0
    is_impossible: bool = False


def _max_context(spans, span_index, position) -> bool:
    best, best_index = None, None
    for i, (start, length) in enumerate(spans):
        end = start + length - 1
        if position < start or position > end:
            continue
        score = min(position - start, end - position) + 0.01 * length
        if best is None or score > best:
            best, best_index = score, i
    return best_index == span_index


def _doc_pieces(tokenizer, doc_words):
    """(pieces of the document, word of each piece, first piece of each word); a word with no
    pieces is one [UNK]."""
    doc_pieces, piece_to_word, word_to_piece = [], [], []
    for w, pieces in enumerate(tokenizer.tokenize_words(doc_words)):
        word_to_piece.append(len(doc_pieces))
        for p in pieces or [tokenizer.special.unk]:
            doc_pieces.append(p)
            piece_to_word.append(w)
    return doc_pieces, piece_to_word, word_to_piece


def _answer_pieces(tokenizer, ex, doc_pieces, word_to_piece):
    """(first, last) piece of the answer: its words' pieces, tightened to the answer's own
    pieces when they occur inside that span."""
    tok_start = word_to_piece[ex.start_word]
    tok_end = (
        word_to_piece[ex.end_word + 1] - 1
        if ex.end_word + 1 < len(word_to_piece)
        else len(doc_pieces) - 1
    )
    ans = tokenizer.tokenize([ex.answer_text]).to_list()[0]
    for s in range(tok_start, tok_end + 1):
        e = s + len(ans) - 1
        if ans and e <= tok_end and doc_pieces[s : e + 1] == ans:
            return s, e
    return tok_start, tok_end


def _doc_spans(num_pieces, max_doc, doc_stride):
    """(start, length) of each window over the document: every `doc_stride` pieces, at least
    one window."""
    spans, start = [], 0
    while start < num_pieces or not spans:
        length = min(num_pieces - start, max_doc)
        spans.append((start, length))
        if start + length >= num_pieces:
            break
        start += min(length, doc_stride)
    return spans


def build_squad_features(
    examples: Sequence[SquadExample],
    tokenizer,
    max_seq_length: int = 384,
    doc_stride: int = 128,
    max_query_length: int = 64,
    is_training: bool = False,
) -> list[SquadFeatures]:
    """Windows of [CLS] query [SEP] doc-pieces [SEP] for every example."""
    special = tokenizer.special
    features = []
    for ex_index, ex in enumerate(examples):
        query = tokenizer.tokenize([ex.question]).to_list()[0][:max_query_length]
        doc_pieces, piece_to_word, word_to_piece = _doc_pieces(tokenizer, ex.doc_words)
        tok_start = tok_end = -1
        if is_training and not ex.is_impossible:
            tok_start, tok_end = _answer_pieces(tokenizer, ex, doc_pieces, word_to_piece)
        max_doc = max_seq_length - len(query) - 3
        if max_doc <= 0:
            raise ValueError("max_seq_length too small for max_query_length")
        spans = _doc_spans(len(doc_pieces), max_doc, doc_stride)
        for span_index, (s0, length) in enumerate(spans):
            ids = [special.cls] + query + [special.sep]
            seg = [0] * len(ids)
            to_word, max_ctx = {}, {}
            for i in range(length):
                to_word[len(ids)] = piece_to_word[s0 + i]
                max_ctx[len(ids)] = _max_context(spans, span_index, s0 + i)
                ids.append(doc_pieces[s0 + i])
                seg.append(1)
            ids.append(special.sep)
            seg.append(1)
            start_pos = end_pos = 0
            impossible = ex.is_impossible
            if is_training and not ex.is_impossible:
                if s0 <= tok_start and tok_end <= s0 + length - 1:
                    offset = len(query) + 2
                    start_pos, end_pos = tok_start - s0 + offset, tok_end - s0 + offset
                else:
                    impossible = True
            features.append(
                SquadFeatures(
                    ex_index, span_index, ids, seg, to_word, max_ctx, start_pos, end_pos, impossible
                )
            )
    return features


def _final_text(piece_text: str, orig_text: str) -> str:
    """The part of the original words matching the predicted pieces.

    Compares with whitespace removed and lower-cased; falls back to the whole
    original word span when they cannot be aligned (e.g. stripped accents).
    """
    keep = [(i, c) for i, c in enumerate(orig_text) if not c.isspace()]
    stripped = "".join(c for _, c in keep)
    lowered = stripped.lower()
    target = "".join(piece_text.split()).lower()
    if not target or len(lowered) != len(stripped):
        return orig_text
    k = lowered.find(target)
    if k < 0:
        return orig_text
    return orig_text[keep[k][0] : keep[k + len(target) - 1][0] + 1]


def _pieces_text(tokenizer, ids: Sequence[int]) -> str:
    text = " ".join(tokenizer.convert_ids_to_tokens(ids))
    return " ".join(text.replace(" ##", "").replace("##", "").split())


def _span_candidates(
    features, feature_indices, start_logits, end_logits, n_best_size, max_answer_length
):
    """(score, start logit, end logit, feature, start, end) of every valid span among each
    window's top starts and ends, and the lowest null ([CLS]) score over the windows."""
    cands, null_score = [], None
    for fi in feature_indices:
        f = features[fi]
        s_log = np.asarray(start_logits[fi], np.float64)[: len(f.input_ids)]
        e_log = np.asarray(end_logits[fi], np.float64)[: len(f.input_ids)]
        null = s_log[0] + e_log[0]
        if null_score is None or null < null_score:
            null_score = null
        top_s = np.argsort(-s_log, kind="stable")[:n_best_size]
        top_e = np.argsort(-e_log, kind="stable")[:n_best_size]
        for s in top_s:
            for e in top_e:
                s, e = int(s), int(e)
                if s not in f.token_to_word or e not in f.token_to_word:
                    continue
                if e < s or e - s + 1 > max_answer_length:
                    continue
                if not f.token_is_max_context.get(s, False):
                    continue
                cands.append((s_log[s] + e_log[e], s_log[s], e_log[e], fi, s, e))
    return cands, null_score


def postprocess(
    examples: Sequence[SquadExample],
    features: Sequence[SquadFeatures],
    start_logits,
    end_logits,
    tokenizer,
    n_best_size: int = 20,
    max_answer_length: int = 30,
    version_2_with_negative: bool = False,
    null_score_diff_threshold: float = 0.0,
):
    """Start/end logits ([num_features, seq_len]) -> answers.

    Returns (predictions {qid: text}, null_score_diff {qid: float},
    nbest {qid: [{text, start_logit, end_logit}, ...]}).  For 2.0 the answer
    is "" when null score - best span score > ``null_score_diff_threshold``.
    """
    by_example = collections.defaultdict(list)
    for i, f in enumerate(features):
        by_example[f.example_index].append(i)
    predictions, diffs, nbest_out = {}, {}, {}
    for ex_index, ex in enumerate(examples):
        cands, null_score = _span_candidates(
            features,
            by_example.get(ex_index, []),
            start_logits,
            end_logits,
            n_best_size,
            max_answer_length,
        )
        cands.sort(key=lambda c: -c[0])
        nbest, seen = [], set()
        for _, sl, el, fi, s, e in cands:
            f = features[fi]
            w0, w1 = f.token_to_word[s], f.token_to_word[e]
            orig = " ".join(ex.doc_words[w0 : w1 + 1])
            text = _final_text(_pieces_text(tokenizer, f.input_ids[s : e + 1]), orig)
            if text in seen:
                continue
            seen.add(text)
            nbest.append({"text": text, "start_logit": sl, "end_logit": el})
            if len(nbest) >= n_best_size:
                break
        best_text = nbest[0]["text"] if nbest else ""
        best_score = nbest[0]["start_logit"] + nbest[0]["end_logit"] if nbest else -np.inf
        if version_2_with_negative:
            null_score = -np.inf if null_score is None else null_score
            diff = float(null_score - best_score) if nbest else float("inf")
            diffs[ex.qas_id] = diff
            predictions[ex.qas_id] = "" if diff > null_score_diff_threshold else best_text
        else:
            predictions[ex.qas_id] = best_text
        nbest_out[ex.qas_id] = nbest
    return predictions, diffs, nbest_out
