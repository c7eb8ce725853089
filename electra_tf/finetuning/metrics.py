"""Evaluation metrics for fine-tuning tasks (pure numpy / python).

Entity-level scores follow the chunking rules of conlleval (as implemented by
seqeval's default, non-strict mode): a chunk starts on ``B``/``S``, on an
``I``/``E`` that follows ``O`` or a finished chunk, or whenever the entity type
changes; it ends on ``E``/``S``, before ``B``/``S``/``O`` or on a type change.
This works for IOB1, IOB2 and BIOES tag sequences alike.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

# ---------------------------------------------------------------------------
# Entity-level (span) scores
# ---------------------------------------------------------------------------


def _split_tag(tag: str) -> tuple[str, str]:
    """Returns (prefix letter, entity type) the way conlleval / seqeval read it."""
    prefix = tag[:1]
    rest = tag[1:]
    entity_type = rest.split("-", 1)[-1] if rest else ""
    return prefix, (entity_type or "_")


def _chunk_ends(prev_prefix, prefix, prev_type, entity_type) -> bool:
    if prev_prefix in ("E", "S"):
        return True
    if prev_prefix in ("B", "I") and prefix in ("B", "S", "O"):
        return True
    return prev_prefix not in ("O", ".") and prev_type != entity_type


def _chunk_starts(prev_prefix, prefix, prev_type, entity_type) -> bool:
    if prefix in ("B", "S"):
        return True
    if prefix in ("I", "E") and prev_prefix in ("E", "S", "O"):
        return True
    return prefix not in ("O", ".") and prev_type != entity_type


def get_entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Chunks of one tag sequence as (type, first index, last index), inclusive."""
    chunks = []
    prev_prefix, prev_type, start = "O", "", 0
    for i, tag in enumerate(list(tags) + ["O"]):
        prefix, entity_type = _split_tag(tag)
        if _chunk_ends(prev_prefix, prefix, prev_type, entity_type):
            chunks.append((prev_type, start, i - 1))
        if _chunk_starts(prev_prefix, prefix, prev_type, entity_type):
            start = i
        prev_prefix, prev_type = prefix, entity_type
    return chunks


@dataclasses.dataclass(frozen=True)
class PRF:
    """Precision / recall / F1 with the counts behind them."""

    precision: float
    recall: float
    f1: float
    support: int  # number of gold chunks
    num_predicted: int
    num_correct: int


@dataclasses.dataclass(frozen=True)
class EntityScores:
    """Micro-averaged entity scores plus one PRF per entity type."""

    micro: PRF
    per_type: dict[str, PRF]

    @property
    def precision(self) -> float:
        return self.micro.precision

    @property
    def recall(self) -> float:
        return self.micro.recall

    @property
    def f1(self) -> float:
        return self.micro.f1

    def as_dict(self) -> dict[str, float]:
        out = {"precision": self.precision, "recall": self.recall, "f1": self.f1}
        for name, prf in self.per_type.items():
            out[f"{name}_precision"] = prf.precision
            out[f"{name}_recall"] = prf.recall
            out[f"{name}_f1"] = prf.f1
        return out


def _prf(num_correct: int, num_predicted: int, num_gold: int) -> PRF:
    p = num_correct / num_predicted if num_predicted else 0.0
    r = num_correct / num_gold if num_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return PRF(p, r, f, num_gold, num_predicted, num_correct)


def entity_scores(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]) -> EntityScores:
    """Entity-level P/R/F1 over sentences of tags (lists of lists of str)."""
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} gold sentences but {len(y_pred)} predicted sentences")
    gold, pred = set(), set()
    for s, (t, p) in enumerate(zip(y_true, y_pred)):
        if len(t) != len(p):
            raise ValueError(f"sentence {s}: {len(t)} gold tags but {len(p)} predicted tags")
        gold.update((typ, s, a, b) for typ, a, b in get_entities(t))
        pred.update((typ, s, a, b) for typ, a, b in get_entities(p))
    correct = gold & pred
    per_type = {}
    for name in sorted({c[0] for c in gold} | {c[0] for c in pred}):
        per_type[name] = _prf(
            sum(c[0] == name for c in correct),
            sum(c[0] == name for c in pred),
            sum(c[0] == name for c in gold),
        )
    return EntityScores(_prf(len(correct), len(pred), len(gold)), per_type)


def token_accuracy(y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]) -> float:
    """Fraction of words whose tag is right (POS tagging)."""
    if len(y_true) != len(y_pred):
        raise ValueError("different numbers of gold and predicted sentences")
    total = correct = 0
    for s, (t, p) in enumerate(zip(y_true, y_pred)):
        if len(t) != len(p):
            raise ValueError(f"sentence {s}: {len(t)} gold tags but {len(p)} predicted tags")
        total += len(t)
        correct += sum(a == b for a, b in zip(t, p))
    return correct / total if total else 0.0


# ---------------------------------------------------------------------------
# Sentence-level scores
# ---------------------------------------------------------------------------


def _pair(y_true, y_pred):
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"shape mismatch: {t.shape} vs {p.shape}")
    return t, p


def accuracy(y_true, y_pred) -> float:
    t, p = _pair(y_true, y_pred)
    return float(np.mean(t == p)) if t.size else 0.0


def binary_f1(y_true, y_pred, positive=1) -> float:
    """F1 of the positive class (MRPC / QQP)."""
    t, p = _pair(y_true, y_pred)
    tp = float(np.sum((t == positive) & (p == positive)))
    fp = float(np.sum((t != positive) & (p == positive)))
    fn = float(np.sum((t == positive) & (p != positive)))
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def matthews_corrcoef(y_true, y_pred) -> float:
    """Matthews correlation (multi-class form; CoLA uses two classes)."""
    t, p = _pair(y_true, y_pred)
    classes, idx = np.unique(np.concatenate([t.ravel(), p.ravel()]), return_inverse=True)
    n = t.size
    conf = np.zeros((len(classes), len(classes)), dtype=np.float64)
    np.add.at(conf, (idx[:n], idx[n:]), 1)
    t_sum, p_sum = conf.sum(axis=1), conf.sum(axis=0)
    correct, total = np.trace(conf), conf.sum()
    cov_tp = correct * total - np.dot(t_sum, p_sum)
    cov_pp = total**2 - np.dot(p_sum, p_sum)
    cov_tt = total**2 - np.dot(t_sum, t_sum)
    if cov_pp * cov_tt == 0:
        return 0.0
    return float(cov_tp / np.sqrt(cov_tt * cov_pp))


def pearson(x, y) -> float:
    x, y = _pair(x, y)
    x = x.astype(np.float64) - np.mean(x)
    y = y.astype(np.float64) - np.mean(y)
    denom = np.sqrt(np.dot(x, x) * np.dot(y, y))
    return float(np.dot(x, y) / denom) if denom else 0.0


def _rank(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(x, y) -> float:
    x, y = _pair(x, y)
    return pearson(_rank(x.astype(np.float64)), _rank(y.astype(np.float64)))


def glue_metrics(task_metric: str, y_true, y_pred) -> dict[str, float]:
    """All scores reported for a GLUE task; ``task_metric`` as in glue.TASKS."""
    if task_metric == "mcc":
        return {"mcc": matthews_corrcoef(y_true, y_pred), "accuracy": accuracy(y_true, y_pred)}
    if task_metric == "f1":
        return {"f1": binary_f1(y_true, y_pred), "accuracy": accuracy(y_true, y_pred)}
    if task_metric == "pearson_spearman":
        p, s = pearson(y_true, y_pred), spearman(y_true, y_pred)
        return {"pearson": p, "spearman": s, "corr": (p + s) / 2}
    if task_metric == "accuracy":
        return {"accuracy": accuracy(y_true, y_pred)}
    raise ValueError(f"unknown metric {task_metric!r}")


# ---------------------------------------------------------------------------
# SQuAD (official evaluators, shipped with tf-models-official)
# ---------------------------------------------------------------------------


def squad_v1_scores(dataset: list[dict], predictions: Mapping[str, str]) -> dict[str, float]:
    """EM / F1 in percent; ``dataset`` is the JSON's ``data`` list."""
    from official.nlp.tools import squad_evaluate_v1_1  # pylint: disable=g-import-not-at-top

    out = squad_evaluate_v1_1.evaluate(dataset, dict(predictions))
    return {"exact_match": 100.0 * out["exact_match"], "f1": 100.0 * out["final_f1"]}


def squad_v2_scores(
    dataset: list[dict],
    predictions: Mapping[str, str],
    na_probs: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """The official SQuAD 2.0 output (exact, f1, HasAns_*, NoAns_*, best_*)."""
    from official.nlp.tools import squad_evaluate_v2_0  # pylint: disable=g-import-not-at-top

    out = squad_evaluate_v2_0.evaluate(
        dataset, dict(predictions), dict(na_probs) if na_probs is not None else None
    )
    return dict(out)
