"""Bounded serving on test_export's tiny WikiANN NER export (default request limits).

* Requests over a limit (a 10 MB text, 10,000 texts) fail with InvalidArgumentError naming the
  limit and the value, in a fresh process that loads the SavedModel with tensorflow alone.
* Long texts (1k, 10k words, and the byte limit's worth) give the same labels and entities as
  windowing by hand: the words' WordPiece ids (CoreBertTokenizer's, the export's own) packed
  greedily into windows here, each window run through the export's predict_ids signature, the
  first pieces' labels stitched together.
* Eight threads on loopback against a stand-in for TF Serving's REST API, valid and invalid
  requests mixed, get what the same requests get one at a time.

Time and memory against length are measured in bench/serving_long_text.py, not here.
"""

import concurrent.futures
import json
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from test_export import (
    MAX_SEQ_LENGTH,
    _run,
    ner,  # noqa: F401  (fixture)
    rest_stand_in,
)

from electra_tf.finetuning import metrics
from electra_tf.serving import client
from electra_tf.serving.core_wordpiece import CoreBertTokenizer
from electra_tf.serving.limits import RequestLimits

LIMITS = RequestLimits()

REJECTIONS = textwrap.dedent("""
    import json, sys
    import tensorflow as tf

    serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    requests = {
        "ten_megabytes": [b"word " * 2_000_000],
        "ten_thousand_texts": [b"Paris"] * 10_000,
        "at_the_limits": [b"x" * int(sys.argv[2])] + [b"Paris"] * (int(sys.argv[3]) - 1),
    }
    report = {}
    for name, texts in requests.items():
        try:
            report[name] = int(serve(texts=tf.constant(texts))["num_words"].numpy().sum())
        except tf.errors.InvalidArgumentError as e:
            report[name] = e.message
    report["foreign_modules"] = sorted(
        m for m in sys.modules if m.startswith(("electra_tf", "tensorflow_text"))
    )
    print(json.dumps(report))
""")


def test_requests_over_the_limits_are_refused_in_a_fresh_process(ner):  # noqa: F811
    info = json.loads((ner["version_dir"] / "assets.extra" / "export_info.json").read_text())
    assert info["limits"] == LIMITS.as_dict()
    # The limits hold together: max_texts texts, one of max_text_bytes, fit max_request_bytes?
    # Not with the defaults, so the request at the limits keeps to max_request_bytes.
    at_limit_texts = LIMITS.max_request_bytes // LIMITS.max_text_bytes
    proc = _run(
        [
            sys.executable,
            "-c",
            REJECTIONS,
            str(ner["version_dir"]),
            str(LIMITS.max_text_bytes),
            str(at_limit_texts),
        ],
        cwd=ner["version_dir"].parent,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["foreign_modules"] == []
    assert isinstance(report["ten_megabytes"], str), "a 10 MB text was answered"
    assert isinstance(report["ten_thousand_texts"], str), "10,000 texts were answered"
    assert (
        f"is 10000000, over the limit max_text_bytes={LIMITS.max_text_bytes}"
        in report["ten_megabytes"]
    )
    assert f"is 10000, over the limit max_texts={LIMITS.max_texts}" in report["ten_thousand_texts"]
    assert "--max_texts" in report["ten_thousand_texts"]
    assert report["at_the_limits"] == at_limit_texts  # one word each: the limits are inclusive


def test_request_bytes_limit_and_invalid_settings(ner):  # noqa: F811
    serve = tf.saved_model.load(str(ner["version_dir"])).signatures["serving_default"]
    texts = [b"y" * LIMITS.max_text_bytes] * (LIMITS.max_request_bytes // LIMITS.max_text_bytes + 1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_request_bytes=1000000"):
        serve(texts=tf.constant(texts))
    with pytest.raises(ValueError, match="--max_texts must be a positive integer, got 0"):
        RequestLimits(max_texts=0)


def _word_pieces(ner, text):
    """Each word's WordPiece ids as the export's tokenizer (CoreBertTokenizer) splits `text`:
    the windowing, not the tokenizer, is under test here."""
    tokenizer = CoreBertTokenizer(ner["vocab"], do_lower_case=True)
    return tokenizer.tokenize(tf.constant([text]))[0].to_list()


def hand_windowed(ner, predict_ids, text):
    """(labels, entities) of `text` windowed by hand: words packed greedily into windows of
    max_seq_length - 2 pieces (a word's pieces cut there), [CLS] window [SEP] through
    predict_ids 64 windows at a time, each word labelled at its first piece."""
    vocab = ner["vocab"]
    capacity = MAX_SEQ_LENGTH - 2
    windows, current, used = [], [], 0
    for word_pieces in _word_pieces(ner, text):
        kept = word_pieces[:capacity]
        if current and used + len(kept) > capacity:
            windows.append(current)
            current, used = [], 0
        current.append(kept)
        used += len(kept)
    if current:
        windows.append(current)
    labels = []
    for chunk_start in range(0, len(windows), 64):
        chunk = windows[chunk_start : chunk_start + 64]
        rows = [
            [vocab.index("[CLS]"), *(i for word in w for i in word), vocab.index("[SEP]")]
            for w in chunk
        ]
        ids = np.zeros([len(rows), max(map(len, rows))], np.int32)
        for r, row in enumerate(rows):
            ids[r, : len(row)] = row
        logits = predict_ids(
            input_ids=tf.constant(ids),
            input_mask=tf.constant((ids > 0).astype(np.int32)),
            segment_ids=tf.zeros_like(ids),
        )["logits"].numpy()
        for r, window in enumerate(chunk):
            first = np.cumsum([1] + [len(word) for word in window[:-1]])
            labels += [ner["labels"][k] for k in logits[r, first].argmax(-1)]
    entities = [(t, a, b + 1) for t, a, b in metrics.get_entities(labels)]
    return labels, entities, len(windows)


def _text_of(ner, words=None, max_bytes=None):
    """Real WikiANN dev sentences joined up to `words` words or `max_bytes` bytes."""
    joined = " ".join(" ".join(s.words) for s in ner["dev"])
    while len(joined.encode()) < (max_bytes or 0) or len(joined.split()) < (words or 0):
        joined = joined + " " + joined
    if words:
        return " ".join(joined.split()[:words])
    return joined.encode()[:max_bytes].rsplit(b" ", 1)[0].decode("utf-8", "ignore")


@pytest.mark.parametrize("size", ["1k words", "10k words", "max_text_bytes"])
def test_long_texts_match_windowing_by_hand(ner, size):  # noqa: F811
    loaded = tf.saved_model.load(str(ner["version_dir"]))
    if size == "max_text_bytes":
        text = _text_of(ner, max_bytes=LIMITS.max_text_bytes)
        assert len(text.encode()) > LIMITS.max_text_bytes - 100
    else:
        text = _text_of(ner, words=int(size.split("k")[0]) * 1000)
    outputs = loaded.signatures["serving_default"](texts=tf.constant([text]))
    labels, entities, num_windows = hand_windowed(ner, loaded.signatures["predict_ids"], text)
    n = int(outputs["num_words"][0])
    assert n == len(labels)
    assert [x.decode() for x in outputs["labels"][0][:n].numpy()] == labels
    assert int(outputs["num_windows"][0]) == num_windows
    m = int(outputs["num_entities"][0])
    served = list(
        zip(
            [x.decode() for x in outputs["entity_types"][0][:m].numpy()],
            outputs["entity_start_words"][0][:m].numpy().tolist(),
            outputs["entity_end_words"][0][:m].numpy().tolist(),
        )
    )
    assert served == entities
    assert len(entities) > n // 20  # the random head tags a fair share of words


def test_eight_threads_on_loopback_equal_sequential(ner):  # noqa: F811
    loaded = tf.saved_model.load(str(ner["version_dir"]))
    server = rest_stand_in(loaded.signatures["serving_default"], [])
    address = f"127.0.0.1:{server.server_port}"
    texts = ner["texts"]
    valid = [texts[i::3] for i in range(3)] + [[t] for t in texts[:5]]
    invalid = [["z" * (LIMITS.max_text_bytes + 1)], ["Paris"] * (LIMITS.max_texts + 1)]
    batches = [*valid, *invalid]

    def ask(texts):
        try:
            return client.predict_rest(texts, address, "ner", timeout=120)
        except RuntimeError as e:
            return str(e)

    try:
        sequential = [ask(b) for b in batches]
        count = 64
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(ask, batches[i % len(batches)]) for i in range(count)]
            concurrent_results = [f.result(timeout=300) for f in futures]
    finally:
        server.shutdown()
        server.server_close()
    assert all(isinstance(r, list) for r in sequential[: len(valid)])
    assert "HTTP 400" in sequential[-2] and "max_text_bytes" in sequential[-2]
    assert "HTTP 400" in sequential[-1] and "max_texts" in sequential[-1]
    errors = 0
    for i, result in enumerate(concurrent_results):
        assert result == sequential[i % len(batches)]
        errors += isinstance(result, str)
    assert errors == sum(i % len(batches) >= len(valid) for i in range(count)) == 12
