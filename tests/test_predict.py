"""python -m electra_tf.predict on a real export (test_export's tiny WikiANN NER model).

Oracles: the export's serving_default called in a fresh process that imports
neither electra_tf nor tensorflow_text (test_export.FRESH_PROCESS), and the
in-process Keras model through FullTokenizer + conll windows
(test_export.python_pipeline).
"""

import io
import json
import sys

import numpy as np
import pytest
import tensorflow as tf
from test_export import (
    _run,
    ner,
    normalized,
    python_pipeline,  # noqa: F401  (fixture)
    signature_in_fresh_process,
)

from electra_tf import predict


def _texts(ner):
    # Real WikiANN sentences (one needs several windows), a blank line, and non-ASCII text.
    return ner["texts"] + ["", "Zoë Kravitz visited São Paulo in 2019 ."]


def _predict_cli(*flags):
    return _run([sys.executable, "-m", "electra_tf.predict", *flags])


def _entities_from_columns(outputs, i):
    return [
        {
            "type": outputs["entity_types"][i][j],
            "text": outputs["entity_texts"][i][j],
            "start": outputs["entity_starts"][i][j],
            "end": outputs["entity_ends"][i][j],
            "start_word": outputs["entity_start_words"][i][j],
            "end_word": outputs["entity_end_words"][i][j],
            "score": outputs["entity_scores"][i][j],
        }
        for j in range(outputs["num_entities"][i])
    ]


def _without_scores(items):
    return [{k: v for k, v in item.items() if k != "score"} for item in items]


def test_cli_entities_equal_the_server_signature_and_the_keras_model(ner, tmp_path):
    texts = _texts(ner)
    lines = tmp_path / "texts.txt"
    lines.write_text("".join(t + "\n" for t in texts), encoding="utf-8")
    out = tmp_path / "entities.jsonl"
    # Batches of 3 do not divide the texts: the last batch is short.
    proc = _predict_cli(
        f"--model={ner['export_dir']}",
        f"--input={lines}",
        f"--output={out}",
        "--batch_size=3",
        "--progress_seconds=0",
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"Model: {ner['version_dir']}" in proc.stderr
    assert "% of the input)" in proc.stderr and f"Tagged {len(texts)} texts" in proc.stderr
    results = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in results] == list(range(1, len(texts) + 1))
    assert [r["text"] for r in results] == texts

    outputs = signature_in_fresh_process(ner, texts)["outputs"]
    keras = python_pipeline(ner, texts)
    assert sum(len(r["entities"]) for r in results) >= 10
    for i, (text, result) in enumerate(zip(texts, results)):
        served = _entities_from_columns(outputs, i)
        assert _without_scores(result["entities"]) == _without_scores(served), text
        np.testing.assert_allclose(
            [e["score"] for e in result["entities"]], [e["score"] for e in served], atol=1e-5
        )
        assert [w["label"] for w in result["words"]] == outputs["labels"][i][
            : outputs["num_words"][i]
        ]
        # The in-process Keras model: same labels per word, same entity word spans.
        assert [w["label"] for w in result["words"]] == keras[i]["labels"], text
        assert [(e["type"], e["start_word"], e["end_word"]) for e in result["entities"]] == keras[
            i
        ]["entities"], text
        np.testing.assert_allclose(
            [w["score"] for w in result["words"]], keras[i]["scores"], atol=1e-4
        )
        for e in result["entities"]:
            assert text[e["start"] : e["end"]] == e["text"]
    assert results[-2]["words"] == [] and results[-2]["entities"] == []


def test_cli_jsonl_in_conll_out_from_a_version_folder(ner, tmp_path):
    texts = [t for t in _texts(ner) if t]
    records = tmp_path / "docs.jsonl"
    records.write_text(
        "".join(
            json.dumps({"id": i, "body": t}, ensure_ascii=False) + "\n\n"
            for i, t in enumerate(texts)
        ),
        encoding="utf-8",
    )
    out = tmp_path / "entities.conll"
    proc = _predict_cli(
        f"--model={ner['version_dir']}",
        f"--input={records}",
        f"--output={out}",
        "--text_field=body",
        "--output_format=conll",
        "--num_threads=1",
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    sentences = [
        [line.split("\t") for line in block.splitlines()]
        for block in out.read_text(encoding="utf-8").split("\n\n")
        if block
    ]
    keras = python_pipeline(ner, texts)
    assert len(sentences) == len(texts)
    for rows, expected in zip(sentences, keras):
        assert [label for _, label in rows] == expected["labels"]
        assert [normalized(token) for token, _ in rows] == expected["words"]


def test_cli_names_the_malformed_line(ner, tmp_path):
    records = tmp_path / "bad.jsonl"
    records.write_text('{"text": "Paris"}\n{"text": "London"\n', encoding="utf-8")
    proc = _predict_cli(f"--model={ner['export_dir']}", f"--input={records}")
    assert proc.returncode == 1
    assert f"{records}:2: not JSON" in proc.stderr
    missing = _predict_cli(f"--model={tmp_path / 'nowhere'}", f"--input={records}")
    assert missing.returncode == 1 and "no such directory" in missing.stderr


def _read(data, input_format="jsonl", text_field="text"):
    return list(predict.read_texts(io.BytesIO(data), "in.jsonl", input_format, text_field))


def test_input_errors_name_the_line_and_the_fix():
    assert _read(b'{"text": "a b"}\n\n{"text": "c"}\r\n') == [(1, "a b", 16), (3, "c", 32)]
    assert _read(b"a\r\n\nb", "lines") == [(1, "a", 3), (2, "", 4), (3, "b", 5)]
    cases = [
        (b'{"text": "a"}\n[1, 2]\n', "in.jsonl:2: a JSON list, not an object"),
        (b'{"body": "a"}\n', "in.jsonl:1: no 'text' field (fields: ['body']); pass --text_field"),
        (b'{"text": 3}\n', "in.jsonl:1: field 'text' is a JSON int, not a string"),
        (b'{"text": "a"}\n{"text": \n', "in.jsonl:2: not JSON"),
    ]
    for data, message in cases:
        with pytest.raises(
            predict.PredictError,
            match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)"),
        ):
            _read(data)
    with pytest.raises(predict.PredictError, match=r"in.jsonl:2: not UTF-8"):
        _read(b"ok\nbad \xff byte\n", "lines")


def test_model_folder_errors(ner, tmp_path):
    assert predict.resolve_version_dir(str(ner["export_dir"])) == str(ner["version_dir"])
    assert predict.resolve_version_dir(str(ner["version_dir"])) == str(ner["version_dir"])
    with pytest.raises(predict.PredictError, match="no such directory"):
        predict.resolve_version_dir(str(tmp_path / "missing"))
    (tmp_path / "empty" / "7").mkdir(parents=True)
    with pytest.raises(predict.PredictError, match="neither saved_model.pb nor a numeric version"):
        predict.resolve_version_dir(str(tmp_path / "empty"))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "saved_model.pb").write_bytes(b"not a proto")
    with pytest.raises(predict.PredictError, match="not a loadable SavedModel"):
        predict.Predictor(str(broken))

    class Doubler(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
        def serve(self, texts):
            return {"doubled": texts + texts}

    module = Doubler()
    tf.saved_model.save(
        module,
        str(tmp_path / "other" / "1"),
        signatures={"serving_default": module.serve.get_concrete_function()},
    )
    with pytest.raises(predict.PredictError, match="not a token-classification .NER. export"):
        predict.Predictor(str(tmp_path / "other"))


def test_cli_keeps_its_input_and_an_old_output_on_errors(ner, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("Paris is in France .\nBerlin .\n", encoding="utf-8")
    before = texts.read_bytes()
    for output in (texts, tmp_path / "." / "texts.txt"):
        proc = _predict_cli(
            f"--model={ner['export_dir']}", f"--input={texts}", f"--output={output}"
        )
        assert proc.returncode != 0
        assert "is the --input file" in proc.stderr and "Traceback" not in proc.stderr
        assert texts.read_bytes() == before

    # A text over the export's max_text_bytes: the lines named, the old output kept whole.
    old_output = tmp_path / "entities.jsonl"
    old_output.write_text("earlier results\n", encoding="utf-8")
    too_long = tmp_path / "long.txt"
    too_long.write_text("Paris .\n" + "word " * 30_000 + "\n", encoding="utf-8")
    proc = _predict_cli(
        f"--model={ner['export_dir']}",
        f"--input={too_long}",
        f"--output={old_output}",
        "--batch_size=1",
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "refused" in line]
    assert len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert f"{too_long}:2-2:" in errors[0] and "max_text_bytes=100000" in errors[0]
    assert "is 150000" in errors[0] and "--batch_size" in errors[0]
    assert old_output.read_text(encoding="utf-8") == "earlier results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entities.jsonl", "long.txt", "texts.txt"]
