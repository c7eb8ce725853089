"""TF Serving export of a token classifier: raw text in, words / labels / entities out.

A tiny ElectraForTokenClassification with the real WikiANN label map (BIOES,
as run_finetuning trains it) and a vocabulary from real WikiANN words is
written in run_finetuning's layout and exported with the CLI.  Its weights
are random (the classifier head scaled up so labels and entities vary);
predictions only need to be consistent between the SavedModel and the Python
pipeline (FullTokenizer + conll windows + Keras model + word alignment).
"""

import base64
import collections
import concurrent.futures
import http.server
import io
import json
import os
import pathlib
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import tensorflow as tf

from electra_tf.data import tokenization
from electra_tf.finetuning import conll, metrics
from electra_tf.finetuning.models import ElectraForTokenClassification
from electra_tf.model.config import ElectraConfig
from electra_tf.serving import client, export
from electra_tf.serving.limits import RequestLimits

PROJECT_ROOT = pathlib.Path(__file__).resolve().parents[1]
MAX_SEQ_LENGTH = 16  # small, so ordinary sentences need several windows
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _env():
    return dict(
        os.environ,
        PYTHONPATH=str(PROJECT_ROOT),
        TF_CPP_MIN_LOG_LEVEL="2",
        KERAS_BACKEND="tensorflow",
        CUDA_VISIBLE_DEVICES="",
    )


def _run(args, timeout=300, cwd=PROJECT_ROOT):
    return subprocess.run(
        args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout
    )


class _RestHandler(http.server.BaseHTTPRequestHandler):
    """TF Serving's REST :predict on the serving_default signature (columnar "inputs"): 200
    with {"outputs": ...}, or 400 with {"error": ...} when the signature refuses the request."""

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests_seen.append((self.path, body))
        try:
            outputs = self.server.serve(texts=tf.constant(body["inputs"]["texts"]))
        except tf.errors.InvalidArgumentError as e:
            self._reply(400, {"error": e.message})
            return
        self._reply(
            200,
            {
                "outputs": {
                    k: [
                        [x.decode() if isinstance(x, bytes) else x for x in row]
                        if isinstance(row, list)
                        else row
                        for row in v.numpy().tolist()
                    ]
                    for k, v in outputs.items()
                }
            },
        )

    def _reply(self, status, payload):
        reply = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


def rest_stand_in(serve, requests_seen):
    """A threading HTTP server on 127.0.0.1 answering like TF Serving's REST API with `serve`;
    each request's (path, body) is appended to `requests_seen`. Call .shutdown() and
    .server_close() when done."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RestHandler)
    server.serve, server.requests_seen = serve, requests_seen
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def ner(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("ner")
    train = conll.read_conll(shared_data / "wikiann_en" / "train.conll")[:3000]
    dev = conll.read_conll(shared_data / "wikiann_en" / "dev.conll")
    counts = collections.Counter(w.lower() for s in train for w in s.words)
    chars = sorted({c for w in counts for c in w})
    words = [w for w, _ in counts.most_common(400) if w not in chars and len(w) > 1]
    vocab = SPECIAL + chars + ["##" + c for c in chars] + words
    # run_finetuning's label map: every BIOES tag of the training types.
    types = sorted({label[2:] for s in train for label in s.labels if label != "O"})
    labels = ["O"] + [f"{p}-{t}" for t in types for p in "BIES"]
    config = ElectraConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    model = ElectraForTokenClassification(config, len(labels))
    model.build()
    dense = model.task_specific.dense
    dense.kernel.assign(tf.random.stateless_normal(dense.kernel.shape, [1, 2], stddev=1.5))
    dense.bias.assign(tf.one_hot(0, len(labels)) * 1.5)

    # run_finetuning's layout: <model_dir>/seed_<s>/best/model.*, metadata beside it.
    model_dir = root / "finetuned"
    best = model_dir / "seed_0" / "best"
    best.mkdir(parents=True)
    tf.train.Checkpoint(model=model).write(str(best / "model"))
    config.save(str(model_dir / "config.json"))
    (model_dir / "vocab.txt").write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    conll.LabelMap(labels).save(best / "label_map.json")
    (best / "finetuning_settings.json").write_text(
        json.dumps({"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": True})
    )
    (model_dir / "results.json").write_text(json.dumps({"scores": {"0": 0.5}}))

    export_dir = root / "models" / "ner"
    proc = _run(
        [
            sys.executable,
            "-m",
            "electra_tf.export_saved_model",
            f"--checkpoint={model_dir}",
            f"--export_dir={export_dir}",
        ]
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    version_dir = export_dir / "1"
    assert (version_dir / "saved_model.pb").exists(), proc.stdout + proc.stderr[-2000:]
    tokenizer = tokenization.FullTokenizer(str(model_dir / "vocab.txt"), do_lower_case=True)
    texts = [" ".join(s.words) for s in dev[:40:4]]
    texts.append(" ".join(" ".join(s.words) for s in dev[100:112]))  # many windows
    return {
        "model": model,
        "vocab": vocab,
        "labels": labels,
        "model_dir": model_dir,
        "export_dir": export_dir,
        "version_dir": version_dir,
        "tokenizer": tokenizer,
        "texts": texts,
        "dev": dev,
    }


@pytest.fixture(scope="module")
def loaded(ner):
    return tf.saved_model.load(str(ner["version_dir"]))


def python_pipeline(ner, texts):
    """FullTokenizer words -> conll windows -> Keras model -> first-piece labels and entities."""
    tokenizer, labels = ner["tokenizer"], ner["labels"]
    results = []
    for text in texts:
        words = (
            tokenization.split_words(tokenization.normalize_text(tf.constant([text]), True, True))[
                0
            ]
            .numpy()
            .tolist()
        )
        words = [w.decode("utf-8") for w in words]
        features = (
            conll.encode_sentences(
                [conll.Sentence(tuple(words), ())], tokenizer, None, MAX_SEQ_LENGTH
            )
            if words
            else []
        )
        word_labels, word_scores = [], []
        if features:
            arrays = conll.features_to_arrays(features, MAX_SEQ_LENGTH)
            probs = tf.nn.softmax(
                ner["model"](
                    {k: tf.constant(arrays[k]) for k in ("input_ids", "input_mask", "segment_ids")}
                ),
                -1,
            ).numpy()
            for window, f in enumerate(features):
                for position in f.word_positions:
                    word_labels.append(labels[int(probs[window, position].argmax())])
                    word_scores.append(float(probs[window, position].max()))
        entities = [(t, a, b + 1) for t, a, b in metrics.get_entities(word_labels)]
        results.append(
            {
                "words": words,
                "labels": word_labels,
                "scores": word_scores,
                "entities": entities,
                "num_windows": len(features),
            }
        )
    return results


def normalized(token):
    return tokenization.normalize_text(tf.constant([token]), True, True)[0].numpy().decode()


def assert_matches_python(ner, texts, outputs):
    """`outputs`: serving_default's outputs as numpy / lists."""
    expected = python_pipeline(ner, texts)
    for i, (text, exp) in enumerate(zip(texts, expected)):
        n = int(outputs["num_words"][i])
        tokens = [t.decode() if isinstance(t, bytes) else t for t in outputs["tokens"][i][:n]]
        assert [normalized(t) for t in tokens] == exp["words"], text
        starts, ends = outputs["word_starts"][i][:n], outputs["word_ends"][i][:n]
        assert [text[a:b] for a, b in zip(starts, ends)] == tokens
        encoded = text.encode("utf-8")
        assert [
            encoded[a:b].decode()
            for a, b in zip(outputs["word_start_bytes"][i][:n], outputs["word_end_bytes"][i][:n])
        ] == tokens
        got_labels = [
            label.decode() if isinstance(label, bytes) else label
            for label in outputs["labels"][i][:n]
        ]
        assert got_labels == exp["labels"], text
        np.testing.assert_allclose(
            np.asarray(outputs["scores"][i][:n], np.float64), exp["scores"], atol=1e-4
        )
        assert int(outputs["num_windows"][i]) == exp["num_windows"]
        m = int(outputs["num_entities"][i])
        got_entities = [
            (t.decode() if isinstance(t, bytes) else t, int(a), int(b))
            for t, a, b in zip(
                outputs["entity_types"][i][:m],
                outputs["entity_start_words"][i][:m],
                outputs["entity_end_words"][i][:m],
            )
        ]
        assert got_entities == exp["entities"], text
        for j, (_, a, b) in enumerate(got_entities):
            span = text[int(outputs["entity_starts"][i][j]) : int(outputs["entity_ends"][i][j])]
            entity_text = outputs["entity_texts"][i][j]
            assert span == (entity_text.decode() if isinstance(entity_text, bytes) else entity_text)
            assert span.startswith(tokens[a]) and span.endswith(tokens[b - 1])
            np.testing.assert_allclose(
                float(outputs["entity_scores"][i][j]), np.mean(exp["scores"][a:b]), atol=1e-4
            )
    return expected


FRESH_PROCESS = textwrap.dedent("""
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
    op_types -= function_names
    loaded = tf.saved_model.load(export_dir)
    texts = tf.constant([base64.b64decode(t) for t in json.loads(texts_json)])
    outputs = loaded.signatures["serving_default"](texts=texts)
    print(json.dumps({
        "op_types": sorted(op_types),
        "unregistered_op_types": sorted(op for op in op_types if op_def_registry.get(op) is None),
        "foreign_modules": sorted(m for m in sys.modules
                                  if m.startswith(("tensorflow_text", "electra_tf"))),
        "signatures": sorted(loaded.signatures),
        "outputs": {k: [[x.decode() if isinstance(x, bytes) else x for x in row]
                        if isinstance(row, list) else row for row in v.numpy().tolist()]
                    for k, v in outputs.items()},
    }))
""")


def signature_in_fresh_process(ner, texts):
    """FRESH_PROCESS's report on `texts`, after checking it imported nothing of ours."""
    proc = _run(
        [
            sys.executable,
            "-c",
            FRESH_PROCESS,
            str(ner["version_dir"]),
            json.dumps([base64.b64encode(t.encode()).decode() for t in texts]),
        ],
        cwd=ner["version_dir"].parent,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["foreign_modules"] == []
    return result


def test_fresh_process_without_tensorflow_text_matches_python(ner):
    texts = ner["texts"]
    result = signature_in_fresh_process(ner, texts)
    # (c) a stock TF Serving binary knows every op: the export uses core ops only.
    assert result["unregistered_op_types"] == [], result["op_types"]
    assert "StaticRegexFullMatch" in result["op_types"] and "While" in result["op_types"]
    assert result["signatures"] == ["predict_ids", "serving_default"]
    expected = assert_matches_python(ner, texts, result["outputs"])
    assert max(e["num_windows"] for e in expected) >= 4
    assert sum(len(e["entities"]) for e in expected) >= 10


def test_predict_ids_matches_keras(ner, loaded):
    ids = tf.constant([[2, 10, 11, 3, 0], [2, 12, 3, 0, 0]], tf.int32)
    mask = tf.cast(ids > 0, tf.int32)
    logits = loaded.signatures["predict_ids"](
        input_ids=ids, input_mask=mask, segment_ids=tf.zeros_like(ids)
    )["logits"]
    expected = ner["model"](
        {"input_ids": ids, "input_mask": mask, "segment_ids": tf.zeros_like(ids)}
    )
    np.testing.assert_allclose(logits.numpy(), expected.numpy(), atol=1e-5)


def test_export_layout_assets_and_warmup(ner):
    version_dir = ner["version_dir"]
    assert (version_dir / "variables" / "variables.index").exists()
    assert (version_dir / "assets" / "vocab.txt").read_text().split("\n")[:-1] == ner["vocab"]
    assert json.loads((version_dir / "assets" / "label_map.json").read_text()) == {
        "labels": ner["labels"]
    }
    from tensorflow_serving.apis import prediction_log_pb2

    logs = [
        prediction_log_pb2.PredictionLog.FromString(r.numpy())
        for r in tf.data.TFRecordDataset(
            str(version_dir / "assets.extra" / "tf_serving_warmup_requests")
        )
    ]
    assert len(logs) >= 2
    for log in logs:
        request = log.predict_log.request
        assert request.model_spec.name == "ner"
        assert request.model_spec.signature_name == "serving_default"
        assert tf.make_ndarray(request.inputs["texts"]).ndim == 1
    assert not [p for p in os.listdir(ner["export_dir"]) if not p.isdigit()]


def test_saved_model_cli_show_and_run(ner):
    cli = str(pathlib.Path(sys.executable).parent / "saved_model_cli")
    shown = _run([cli, "show", "--dir", str(ner["version_dir"]), "--all"])
    assert shown.returncode == 0, shown.stderr[-3000:]
    for name in ("serving_default", "predict_ids", "texts", "entity_types", "logits"):
        assert name in shown.stdout
    ran = _run(
        [
            cli,
            "run",
            "--dir",
            str(ner["version_dir"]),
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--input_exprs",
            'texts=[b"John Smith lives in New York .", b""]',
        ]
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "tokens" in ran.stdout and b"Smith".decode() in ran.stdout


def test_grpc_request_and_response_round_trip(ner, loaded):
    from tensorflow_serving.apis import predict_pb2

    texts = ner["texts"][:4] + ["Łódź is in Poland ."]
    request = client.build_predict_request(texts, "ner", "serving_default")
    request = predict_pb2.PredictRequest.FromString(request.SerializeToString())
    assert request.model_spec.name == "ner"
    assert request.model_spec.signature_name == "serving_default"
    inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
    assert list(inputs) == ["texts"]
    outputs = loaded.signatures[request.model_spec.signature_name](
        **{k: tf.constant(v) for k, v in inputs.items()}
    )
    numpy_outputs = {k: v.numpy().tolist() for k, v in outputs.items()}
    assert_matches_python(ner, texts, numpy_outputs)

    response = predict_pb2.PredictResponse()
    for key, value in outputs.items():
        response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
    response = predict_pb2.PredictResponse.FromString(response.SerializeToString())
    parsed = client.parse_predict_response(response)
    expected = python_pipeline(ner, texts)
    assert len(parsed) == len(texts)
    for text, result, exp in zip(texts, parsed, expected):
        assert [(e["type"], e["start_word"], e["end_word"]) for e in result["entities"]] == exp[
            "entities"
        ]
        assert [text[e["start"] : e["end"]] for e in result["entities"]] == [
            e["text"] for e in result["entities"]
        ]
        assert [w["label"] for w in result["words"]] == exp["labels"]
    # A REST reply (columnar and row formats) parses to the same results.
    rest_columns = {
        k: [
            [x.decode() if isinstance(x, bytes) else x for x in row]
            if isinstance(row, list)
            else row
            for row in v
        ]
        for k, v in numpy_outputs.items()
    }
    assert client.parse_predict_response(json.dumps({"outputs": rest_columns})) == parsed
    rows = [{k: v[i] for k, v in rest_columns.items()} for i in range(len(texts))]
    assert client.parse_predict_response({"predictions": rows}) == parsed
    assert "Łódź" in [w["token"] for w in parsed[-1]["words"]]
    body = json.loads(client.build_rest_body(texts))
    assert body == {"signature_name": "serving_default", "inputs": {"texts": texts}}


def test_bad_requests(ner, loaded):
    serve = loaded.signatures["serving_default"]
    joined = " ".join(" ".join(s.words) for s in ner["dev"][:3000]).encode()
    long_text = joined[: RequestLimits().max_text_bytes].decode("utf-8", "ignore")  # at the limit
    texts = ["", "  \t\n ", long_text, "Paris"]
    outputs = serve(texts=tf.constant(texts))
    assert outputs["num_words"].numpy().tolist()[:2] == [0, 0]
    assert outputs["num_entities"].numpy().tolist()[:2] == [0, 0]
    expected_words = python_pipeline(ner, [long_text])[0]["words"]
    assert int(outputs["num_words"][2]) == len(expected_words) > 10_000  # nothing truncated
    assert int(outputs["num_windows"][2]) > 1000
    n = int(outputs["num_words"][2])
    ends = outputs["word_ends"][2][:n].numpy()
    assert ends[-1] == len(long_text.rstrip()) and (ends[1:] > ends[:-1]).all()
    assert outputs["tokens"][3][0].numpy() == b"Paris"
    assert outputs["tokens"].shape[0] == 4

    # Invalid UTF-8: defined outputs, U+FFFD-style spans over the bad bytes.
    bad = serve(texts=tf.constant([b"ab\xffcd caf\xc3", b"\xe2\x82", b"ok \xc3\xa9t\xc3\xa9"]))
    assert bad["num_words"].numpy().tolist() == [2, 1, 2]
    assert bad["tokens"][0][:2].numpy().tolist() == [b"ab\xffcd", b"caf\xc3"]
    assert bad["word_starts"][0][:2].numpy().tolist() == [0, 6]
    assert bad["word_ends"][0][:2].numpy().tolist() == [5, 10]
    assert bad["word_starts"][2][:2].numpy().tolist() == [0, 3]
    assert bad["word_ends"][2][:2].numpy().tolist() == [2, 6]  # characters, not bytes
    assert bad["word_end_bytes"][2][:2].numpy().tolist() == [2, 8]

    blank = serve(texts=tf.constant(["", " "]))
    assert blank["num_words"].numpy().tolist() == [0, 0] and blank["tokens"].shape == [2, 0]
    empty = serve(texts=tf.constant([], tf.string))
    assert empty["num_words"].shape == [0] and empty["tokens"].shape == [0, 0]
    assert empty["entity_types"].shape == [0, 0]
    # A wrong rank is refused with a clear error, before anything runs.
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        serve(texts=tf.constant([["a", "b"]]))


def test_concurrent_calls_match_sequential(ner, loaded):
    serve = loaded.signatures["serving_default"]
    batches = [ner["texts"][i::3] for i in range(3)] + [[t] for t in ner["texts"][:5]]
    sequential = [{k: v.numpy() for k, v in serve(texts=tf.constant(b)).items()} for b in batches]

    def call(index):
        out = serve(texts=tf.constant(batches[index % len(batches)]))
        return index, {k: v.numpy() for k, v in out.items()}

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, range(32)))
    for index, out in results:
        expected = sequential[index % len(batches)]
        assert out.keys() == expected.keys()
        for key in out:
            np.testing.assert_array_equal(out[key], expected[key], err_msg=key)


def test_versions_are_atomic_and_not_overwritten(ner):
    export_dir, version_one = ner["export_dir"], ner["version_dir"]
    before = (version_one / "saved_model.pb").read_bytes()
    path = export.export_token_classifier(
        ner["model"],
        ner["vocab"],
        ner["labels"],
        str(export_dir),
        do_lower_case=True,
        max_seq_length=MAX_SEQ_LENGTH,
    )
    assert path == str(export_dir / "2")
    assert export.existing_versions(str(export_dir)) == [1, 2]

    proc = _run(
        [
            sys.executable,
            "-m",
            "electra_tf.export_saved_model",
            f"--checkpoint={ner['model_dir']}",
            f"--export_dir={export_dir}",
            "--version=1",
        ]
    )
    assert proc.returncode != 0
    assert "already exists" in proc.stderr and "--overwrite" in proc.stderr, proc.stderr[-2000:]
    assert (version_one / "saved_model.pb").read_bytes() == before
    with pytest.raises(export.ExportError, match="already exists"):
        export.export_token_classifier(
            ner["model"],
            ner["vocab"],
            ner["labels"],
            str(export_dir),
            do_lower_case=True,
            max_seq_length=MAX_SEQ_LENGTH,
            version=2,
        )

    path = export.export_token_classifier(
        ner["model"],
        ner["vocab"],
        ner["labels"],
        str(export_dir),
        do_lower_case=True,
        max_seq_length=MAX_SEQ_LENGTH,
        version=2,
        overwrite=True,
    )
    assert path == str(export_dir / "2")
    assert sorted(os.listdir(export_dir)) == ["1", "2"]  # no temporary folders left behind
    reloaded = tf.saved_model.load(path).signatures["serving_default"]
    assert reloaded(texts=tf.constant(["Paris"]))["tokens"].numpy().tolist() == [[b"Paris"]]


def _export_cli(*flags):
    return _run([sys.executable, "-m", "electra_tf.export_saved_model", *flags])


def test_export_cli_refuses_foreign_folders_and_bad_inputs_in_one_line(ner, tmp_path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    proc = _export_cli(f"--checkpoint={ner['model_dir']}", f"--export_dir={foreign}")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("export_saved_model: error: ")
    assert f"--export_dir={foreign} is not empty" in proc.stderr and "--overwrite" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert os.listdir(foreign) == ["notes.txt"] and (foreign / "notes.txt").read_text() == "keep me"

    cases = [
        ([f"--checkpoint={tmp_path / 'missing'}"], str(tmp_path / "missing")),
        ([f"--checkpoint={ner['model_dir']}", "--max_texts=0"], "--max_texts must be a positive"),
    ]
    for flags, expected in cases:
        proc = _export_cli(*flags, f"--export_dir={tmp_path / 'new'}")
        assert proc.returncode == 1, proc.stderr[-2000:]
        assert expected in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
        assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("is_regression", [False, True])
def test_sequence_classifier_export_matches_encode_pairs(ner, tmp_path, is_regression):
    from electra_tf.finetuning import glue
    from electra_tf.finetuning.models import ElectraForSequenceClassification

    labels = None if is_regression else ["negative", "positive", "neutral"]
    config = ElectraConfig(
        vocab_size=len(ner["vocab"]),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    model = ElectraForSequenceClassification(config, 3, is_regression=is_regression)
    model.build()
    dense = model.task_specific.dense
    dense.kernel.assign(tf.random.stateless_normal(dense.kernel.shape, [3, 4], stddev=3.0))
    if is_regression:
        path = export.export_sequence_classifier(
            model,
            ner["vocab"],
            labels,
            str(tmp_path / "models" / "sts"),
            do_lower_case=True,
            max_seq_length=MAX_SEQ_LENGTH,
        )
    else:  # through the CLI, from a checkpoint folder
        checkpoint = tmp_path / "sst" / "seed_1" / "best"
        checkpoint.mkdir(parents=True)
        tf.train.Checkpoint(model=model).write(str(checkpoint / "model"))
        model.config.save(str(checkpoint / "config.json"))
        (checkpoint / "vocab.txt").write_text("".join(t + "\n" for t in ner["vocab"]))
        conll.LabelMap(labels).save(checkpoint / "label_map.json")
        proc = _run(
            [
                sys.executable,
                "-m",
                "electra_tf.export_saved_model",
                f"--checkpoint={tmp_path / 'sst'}",
                "--task=classification",
                f"--max_seq_length={MAX_SEQ_LENGTH}",
                f"--export_dir={tmp_path / 'models' / 'sst'}",
            ]
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        path = str(tmp_path / "models" / "sst" / "1")
    signatures = tf.saved_model.load(path).signatures
    assert sorted(signatures) == ["classify_pairs", "predict_ids", "serving_default"]
    texts_a = ner["texts"][:6] + ["", "Paris"]
    texts_b = ner["texts"][6:11] + ["Berlin is big", "", "x"]

    def expected(pairs):
        examples = [glue.Example(str(i), a, b) for i, (a, b) in enumerate(pairs)]
        arrays = glue.encode_pairs(examples, ner["tokenizer"], MAX_SEQ_LENGTH)
        return model(
            {k: tf.constant(arrays[k]) for k in ("input_ids", "input_mask", "segment_ids")}
        ).numpy()

    for outputs, logits in (
        (
            signatures["serving_default"](texts=tf.constant(texts_a)),
            expected([(a, None) for a in texts_a]),
        ),
        (
            signatures["classify_pairs"](text_a=tf.constant(texts_a), text_b=tf.constant(texts_b)),
            expected(list(zip(texts_a, texts_b))),
        ),
    ):
        if is_regression:
            np.testing.assert_allclose(outputs["scores"].numpy(), logits, atol=1e-4)
        else:
            assert outputs["label_ids"].numpy().tolist() == logits.argmax(-1).tolist()
            assert [label.decode() for label in outputs["labels"].numpy()] == [
                labels[i] for i in logits.argmax(-1)
            ]
            np.testing.assert_allclose(
                outputs["probabilities"].numpy(), tf.nn.softmax(logits).numpy(), atol=1e-4
            )
        assert outputs["truncated"].numpy().any() and not outputs["truncated"].numpy().all()
    empty = signatures["serving_default"](texts=tf.constant([], tf.string))
    assert empty["scores"].shape[0] == 0


def test_client_cli_against_a_rest_endpoint(ner, loaded, monkeypatch, capsys):
    """serving_client's REST path against a stand-in for TF Serving's :predict endpoint."""
    serve = loaded.signatures["serving_default"]
    requests = []
    server = rest_stand_in(serve, requests)
    texts = ner["texts"][:5]
    try:
        for extra in (["--json"], []):
            monkeypatch.setattr(sys, "stdin", io.StringIO("".join(t + "\n" for t in texts)))
            assert (
                client.main(
                    [
                        f"--server=127.0.0.1:{server.server_port}",
                        "--model=ner",
                        "--batch_size=2",
                        *extra,
                    ]
                )
                == 0
            )
    finally:
        server.shutdown()
        server.server_close()
    assert requests[0][0] == "/v1/models/ner:predict"
    assert requests[0][1]["signature_name"] == "serving_default"
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 * len(texts)
    expected = python_pipeline(ner, texts)
    for line, text, exp in zip(lines, texts, expected):
        result = json.loads(line)
        assert result["text"] == text
        assert [(e["type"], e["start_word"], e["end_word"]) for e in result["entities"]] == exp[
            "entities"
        ]
    for number, (line, result) in enumerate(zip(lines[len(texts) :], lines), 1):
        entities = json.loads(result)["entities"]
        assert line.startswith(f"{number}\t")
        assert line.count(" [") == len(entities)


def test_question_answering_export_matches_squad_postprocess(ner, tmp_path):
    from electra_tf.finetuning import squad
    from electra_tf.finetuning.models import ElectraForQuestionAnswering

    seq, stride, query_length = 32, 8, 8
    config = ElectraConfig(
        vocab_size=len(ner["vocab"]),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    model = ElectraForQuestionAnswering(config)
    model.build()
    for layer in (model.task_specific.start_logits, model.task_specific.end_logits):
        layer.kernel.assign(tf.random.stateless_normal(layer.kernel.shape, [5, 6], stddev=2.0))
    path = export.export_question_answering(
        model,
        ner["vocab"],
        str(tmp_path / "models" / "qa"),
        do_lower_case=True,
        max_seq_length=seq,
        doc_stride=stride,
        max_query_length=query_length,
        n_best_size=5,
        max_answer_length=6,
    )
    serve = tf.saved_model.load(path).signatures["serving_default"]
    # Contexts of words the vocabulary fully covers, single-spaced (as squad joins words).
    sentences = [
        " ".join(s.words)
        for s in ner["dev"][:400]
        if all(c in ner["vocab"] for w in s.words for c in w.lower())
    ]
    contexts = [" ".join(sentences[i : i + 3]) for i in range(0, 24, 3)] + ["Paris", ""]
    questions = [sentences[30 + i][:40] for i in range(len(contexts))]
    outputs = serve(question=tf.constant(questions), context=tf.constant(contexts))

    examples = [
        squad.SquadExample(str(i), q, c.split())
        for i, (q, c) in enumerate(zip(questions, contexts))
    ]
    features = squad.build_squad_features(examples, ner["tokenizer"], seq, stride, query_length)
    arrays = {
        k: np.zeros((len(features), seq), np.int32)
        for k in ("input_ids", "input_mask", "segment_ids")
    }
    for i, f in enumerate(features):
        arrays["input_ids"][i, : len(f.input_ids)] = f.input_ids
        arrays["input_mask"][i, : len(f.input_ids)] = 1
        arrays["segment_ids"][i, : len(f.segment_ids)] = f.segment_ids
    logits = model({k: tf.constant(v) for k, v in arrays.items()})
    predictions, _, nbest = squad.postprocess(
        examples,
        features,
        logits["start_logits"].numpy(),
        logits["end_logits"].numpy(),
        ner["tokenizer"],
        n_best_size=5,
        max_answer_length=6,
    )
    windows = collections.Counter(f.example_index for f in features)
    assert outputs["num_windows"].numpy().tolist() == [windows[i] for i in range(len(examples))]
    assert max(windows.values()) >= 3
    answers = [a.decode() for a in outputs["answer"].numpy()]
    for i, example in enumerate(examples):
        expected = predictions[example.qas_id]
        assert answers[i].lower() == expected.lower(), (i, answers[i], expected)
        if expected:
            best = nbest[example.qas_id][0]
            np.testing.assert_allclose(
                float(outputs["score"][i]), best["start_logit"] + best["end_logit"], atol=1e-3
            )
            start, end = int(outputs["answer_start"][i]), int(outputs["answer_end"][i])
            assert contexts[i][start:end] == answers[i]
        else:
            assert not outputs["has_answer"][i]
    assert sum(bool(a) for a in answers) >= len(contexts) - 2
    blank = serve(question=tf.constant(["", "Who?"]), context=tf.constant(["", ""]))
    assert blank["answer"].numpy().tolist() == [b"", b""]
    assert not blank["has_answer"].numpy().any()
    assert serve(question=tf.constant([], tf.string), context=tf.constant([], tf.string))[
        "answer"
    ].shape == [0]
