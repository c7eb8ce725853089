"""Oracle tests: our metrics against seqeval, scikit-learn, scipy and the
official SQuAD evaluators."""

import warnings

import numpy as np
import pytest
import scipy.stats
import seqeval.metrics
import sklearn.metrics

from electra_tf.data import tokenization
from electra_tf.finetuning import conll, metrics, squad


def _corrupt(sentences, types, rng, rate=0.15, prefixes=("B", "I")):
    """Random boundary / type / spurious-I errors in copies of the tags."""
    out = []
    for tags in sentences:
        tags = list(tags)
        for i in range(len(tags)):
            if rng.random() >= rate:
                continue
            kind = rng.integers(0, 5)
            if kind == 0:  # drop the tag
                tags[i] = "O"
            elif kind == 1:  # change the type, keep the prefix
                p = tags[i][0] if tags[i] != "O" else rng.choice(prefixes)
                tags[i] = f"{p}-{rng.choice(types)}"
            elif kind == 2:  # I- (or E-) out of nowhere
                tags[i] = f"{rng.choice(prefixes[1:])}-{rng.choice(types)}"
            elif kind == 3:  # boundary: flip the prefix
                if tags[i] != "O":
                    tags[i] = f"{rng.choice(prefixes)}-{tags[i][2:]}"
            else:  # shift a tag onto the neighbour
                j = min(i + 1, len(tags) - 1)
                tags[j] = tags[i]
        out.append(tags)
    return out


def _assert_matches_seqeval(y_true, y_pred):
    ours = metrics.entity_scores(y_true, y_pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = seqeval.metrics.precision_score(y_true, y_pred)
        r = seqeval.metrics.recall_score(y_true, y_pred)
        f = seqeval.metrics.f1_score(y_true, y_pred)
        report = seqeval.metrics.classification_report(y_true, y_pred, output_dict=True, digits=6)
    assert ours.precision == pytest.approx(p, abs=1e-12)
    assert ours.recall == pytest.approx(r, abs=1e-12)
    assert ours.f1 == pytest.approx(f, abs=1e-12)
    types = {k for k in report if not k.endswith(" avg")}
    assert types == set(ours.per_type)
    for t in types:
        assert ours.per_type[t].precision == pytest.approx(report[t]["precision"])
        assert ours.per_type[t].recall == pytest.approx(report[t]["recall"])
        assert ours.per_type[t].f1 == pytest.approx(report[t]["f1-score"])
        assert ours.per_type[t].support == report[t]["support"]
    return ours


@pytest.fixture(scope="module")
def wikiann_dev(shared_data):
    return [list(s.labels) for s in conll.read_conll(shared_data / "wikiann_en" / "dev.conll")]


def test_entity_f1_matches_seqeval_wikiann_iob2(wikiann_dev):
    rng = np.random.default_rng(0)
    y_pred = _corrupt(wikiann_dev, ["PER", "ORG", "LOC", "MISC"], rng)
    ours = _assert_matches_seqeval(wikiann_dev, y_pred)
    assert 0.3 < ours.f1 < 0.95
    assert "MISC" in ours.per_type  # a predicted-only type gets a score too
    perfect = metrics.entity_scores(wikiann_dev, wikiann_dev)
    assert perfect.f1 == 1.0


def test_entity_f1_matches_seqeval_bioes_and_iob1(wikiann_dev):
    rng = np.random.default_rng(1)
    gold = [conll.iob_to_bioes(t) for t in wikiann_dev[:4000]]
    pred = _corrupt(gold, ["PER", "ORG", "LOC"], rng, prefixes=("B", "I", "E", "S"))
    _assert_matches_seqeval(gold, pred)
    # IOB1: I- starts chunks, B- only between adjacent same-type chunks.
    iob1 = [
        [
            "I" + t[1:]
            if t.startswith("B-") and (i == 0 or s[i - 1] == "O" or s[i - 1][2:] != t[2:])
            else t
            for i, t in enumerate(s)
        ]
        for s in wikiann_dev[:4000]
    ]
    assert metrics.entity_scores(wikiann_dev[:4000], iob1).f1 == 1.0
    _assert_matches_seqeval(iob1, _corrupt(iob1, ["PER", "LOC"], rng))


def test_entity_f1_matches_seqeval_conll2000(shared_data):
    test = conll.read_conll(shared_data / "conll2000_chunking" / "test.txt")
    gold = [list(s.labels) for s in test]
    rng = np.random.default_rng(2)
    _assert_matches_seqeval(gold, _corrupt(gold, ["NP", "VP", "PP", "ADJP"], rng, rate=0.1))


def test_get_entities_edge_cases():
    tags = ["I-PER", "I-PER", "I-LOC", "B-LOC", "O", "I-ORG", "E-ORG", "S-PER", "B-PER"]
    assert metrics.get_entities(tags) == [
        ("PER", 0, 1),
        ("LOC", 2, 2),
        ("LOC", 3, 3),
        ("ORG", 5, 6),
        ("PER", 7, 7),
        ("PER", 8, 8),
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from seqeval.metrics.sequence_labeling import get_entities

        assert metrics.get_entities(tags) == get_entities(tags)


def test_token_accuracy(shared_data):
    dev = conll.read_conll(shared_data / "ud_english_ewt" / "en_ewt-ud-dev.conllu.gz")
    gold = [list(s.labels) for s in dev]
    rng = np.random.default_rng(3)
    pred = [[t if rng.random() > 0.1 else "X" for t in s] for s in gold]
    flat_g = [t for s in gold for t in s]
    flat_p = [t for s in pred for t in s]
    assert metrics.token_accuracy(gold, pred) == pytest.approx(
        sklearn.metrics.accuracy_score(flat_g, flat_p)
    )


def test_classification_metrics_match_sklearn_scipy():
    rng = np.random.default_rng(4)
    for n_classes in (2, 3):
        t = rng.integers(0, n_classes, 1000)
        p = np.where(rng.random(1000) < 0.7, t, rng.integers(0, n_classes, 1000))
        assert metrics.matthews_corrcoef(t, p) == pytest.approx(
            sklearn.metrics.matthews_corrcoef(t, p), abs=1e-12
        )
        assert metrics.accuracy(t, p) == pytest.approx(sklearn.metrics.accuracy_score(t, p))
    t = rng.integers(0, 2, 500)
    p = rng.integers(0, 2, 500)
    assert metrics.binary_f1(t, p) == pytest.approx(sklearn.metrics.f1_score(t, p))
    assert metrics.matthews_corrcoef(t, np.ones_like(t)) == 0.0
    x = rng.normal(size=300)
    y = x + rng.normal(size=300)
    scores = np.round(rng.uniform(0, 5, 300) * 4) / 4  # many ties
    assert metrics.pearson(x, y) == pytest.approx(scipy.stats.pearsonr(x, y)[0])
    assert metrics.spearman(scores, y) == pytest.approx(scipy.stats.spearmanr(scores, y)[0])
    both = metrics.glue_metrics("pearson_spearman", scores, y)
    assert both["corr"] == pytest.approx((both["pearson"] + both["spearman"]) / 2)
    assert set(metrics.glue_metrics("mcc", t, p)) == {"mcc", "accuracy"}


# ---------------------------------------------------------------- SQuAD


_CONTEXT = (
    "The Normans were the people who in the 10th and 11th centuries "
    "gave their name to Normandy, a region in France."
)
_DATA = [
    {
        "title": "t",
        "paragraphs": [
            {
                "context": _CONTEXT,
                "qas": [
                    {
                        "id": "q1",
                        "question": "Who gave their name to Normandy?",
                        "answers": [{"text": "The Normans", "answer_start": 0}],
                    },
                    {
                        "id": "q2",
                        "question": "In what country is Normandy?",
                        "answers": [{"text": "France", "answer_start": _CONTEXT.index("France")}],
                    },
                    {
                        "id": "q3",
                        "question": "What century gave the name?",
                        "answers": [
                            {
                                "text": "10th and 11th centuries",
                                "answer_start": _CONTEXT.index("10th"),
                            }
                        ],
                    },
                    {
                        "id": "q4",
                        "question": "Who is the king of France?",
                        "answers": [],
                        "is_impossible": True,
                    },
                ],
            }
        ],
    }
]


@pytest.fixture(scope="module")
def squad_setup(tmp_path_factory):
    import json

    tmp = tmp_path_factory.mktemp("squad")
    words = sorted(
        {
            w
            for w in tokenization.normalize_text(
                [_CONTEXT + " who what in is country century king of gave name"], True, True
            )
            .numpy()[0]
            .decode()
            .replace(",", " , ")
            .replace(".", " . ")
            .replace("?", " ? ")
            .split()
        }
    )
    vocab = list(tokenization.SPECIAL_TOKENS) + sorted(set(words) | {"?", ",", "."})
    (tmp / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (tmp / "train.json").write_text(json.dumps({"data": _DATA}))
    tok = tokenization.FullTokenizer(str(tmp / "vocab.txt"))
    return tok, tmp / "train.json"


def _logits_for(features, targets, seq_len):
    """Logits that peak on the given (start, end) input positions."""
    s = np.full((len(features), seq_len), -5.0)
    e = np.full((len(features), seq_len), -5.0)
    for i, (a, b) in enumerate(targets):
        s[i, a] = 5.0
        e[i, b] = 5.0
    return s, e


def test_squad_features_and_postprocess_v1(squad_setup):
    tok, path = squad_setup
    examples, data = squad.read_squad(path, is_training=True)
    assert [e.qas_id for e in examples] == ["q1", "q2", "q3", "q4"]
    feats = squad.build_squad_features(
        examples, tok, max_seq_length=24, doc_stride=8, max_query_length=10, is_training=True
    )
    assert all(len(f.input_ids) <= 24 for f in feats)
    q3 = [f for f in feats if f.example_index == 2 and not f.is_impossible]
    assert q3, "the q3 answer fits some window"
    f = q3[0]
    assert tok.convert_ids_to_tokens(f.input_ids[f.start_position : f.end_position + 1]) == [
        "10th",
        "and",
        "11th",
        "centuries",
    ]
    assert all(f.start_position == 0 for f in feats if f.is_impossible)
    # Logits pointing at the gold span in the first window holding it.
    targets, seen = [], set()
    for f in feats:
        if not f.is_impossible and f.example_index not in seen:
            seen.add(f.example_index)
            targets.append((f.start_position, f.end_position))
        else:
            targets.append((0, 0))
    s, e = _logits_for(feats, targets, 24)
    preds, _, nbest = squad.postprocess(examples, feats, s, e, tok)
    assert preds["q1"] == "The Normans"
    assert preds["q2"] == "France"  # the trailing "." is not part of it
    assert preds["q3"] == "10th and 11th centuries"
    from official.nlp.tools import squad_evaluate_v1_1

    answered = [{"paragraphs": [{"qas": _DATA[0]["paragraphs"][0]["qas"][:3]}]}]
    official = squad_evaluate_v1_1.evaluate(answered, preds)
    ours = metrics.squad_v1_scores(answered, preds)
    assert ours["exact_match"] == pytest.approx(100 * official["exact_match"])
    assert ours["f1"] == pytest.approx(100 * official["final_f1"])
    assert ours["exact_match"] == 100.0
    wrong = dict(preds, q3="11th centuries")
    scores = metrics.squad_v1_scores(answered, wrong)
    assert scores["exact_match"] == pytest.approx(200 / 3)
    # q3: precision 2/2, recall 2/4 -> F1 2/3.
    assert scores["f1"] == pytest.approx(100 * (2 + 2 / 3) / 3)


def test_squad_postprocess_v2_null_threshold(squad_setup):
    tok, path = squad_setup
    examples, data = squad.read_squad(path, is_training=False)
    feats = squad.build_squad_features(
        examples, tok, max_seq_length=48, doc_stride=16, max_query_length=10
    )
    assert len(feats) == len(examples)  # one window each at this length
    targets = []
    for f in feats:
        ex = examples[f.example_index]
        if ex.qas_id == "q2":
            word = ex.doc_words.index("France.")
            pos = [p for p, w in f.token_to_word.items() if w == word][0]
            targets.append((pos, pos))
        else:
            targets.append((0, 0))  # everything else: null wins
    s, e = _logits_for(feats, targets, 48)
    preds, diffs, _ = squad.postprocess(examples, feats, s, e, tok, version_2_with_negative=True)
    assert preds["q2"] == "France" and preds["q4"] == ""
    assert diffs["q4"] > 0 > diffs["q2"]
    from official.nlp.tools import squad_evaluate_v2_0

    official = squad_evaluate_v2_0.evaluate(data, preds)
    ours = metrics.squad_v2_scores(data, preds)
    assert ours["exact"] == pytest.approx(official["exact"])
    assert ours["f1"] == pytest.approx(official["f1"])
    assert ours["NoAns_exact"] == 100.0
    assert ours["exact"] == pytest.approx(50.0)  # q2 and q4 right of 4
    # A very high threshold answers every question.
    preds2, _, _ = squad.postprocess(
        examples, feats, s, e, tok, version_2_with_negative=True, null_score_diff_threshold=1e9
    )
    assert preds2["q4"] != ""
