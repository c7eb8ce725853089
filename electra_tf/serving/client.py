"""Client for an exported ELECTRA NER model on TensorFlow Serving.

    python -m electra_tf.serving.client --server=localhost:8501 --model=ner < lines.txt
    python -m electra_tf.serving.client --server=localhost:8500 --model=ner --grpc < lines.txt

Each input line is one text; for each, one line is printed: the line number,
then its entities as ``type [start, end) "text" score`` (character offsets),
or ``--json`` for one JSON object per line.  REST uses only the standard
library (urllib); gRPC needs tensorflow and tensorflow-serving-api.

`build_predict_request` and `parse_predict_response` are the reusable pieces:
the first builds a gRPC PredictRequest, the second turns a PredictResponse
proto, or a REST response body (row or columnar format), into per-text
results.
"""

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

SIGNATURE = "serving_default"
INPUT_KEY = "texts"


def build_predict_request(
    texts: Sequence[str], model_name: str, signature: str = SIGNATURE, version=None
):
    """A tensorflow_serving PredictRequest with the texts as a string [batch] tensor."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    from tensorflow_serving.apis import predict_pb2  # pylint: disable=import-outside-toplevel

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = int(version)
    encoded = [t.encode("utf-8") if isinstance(t, str) else bytes(t) for t in texts]
    request.inputs[INPUT_KEY].CopyFrom(
        tf.make_tensor_proto(encoded, dtype=tf.string, shape=[len(encoded)])
    )
    return request


def build_rest_body(texts: Sequence[str], signature: str = SIGNATURE) -> bytes:
    """The JSON body of a REST :predict call (columnar "inputs" format)."""
    return json.dumps({"signature_name": signature, "inputs": {INPUT_KEY: list(texts)}}).encode()


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _columns_from_response(response) -> dict:
    """name -> nested python lists, from a PredictResponse proto or a REST JSON body."""
    if isinstance(response, (bytes, str)):
        response = json.loads(response)
    if isinstance(response, dict):
        if "error" in response:
            raise RuntimeError(f"server error: {response['error']}")
        if "outputs" in response:
            outputs = response["outputs"]
            return outputs if isinstance(outputs, dict) else {"output": outputs}
        if "predictions" in response:  # row format: one dict per text
            rows = response["predictions"]
            if not rows:
                return {}
            return {key: [row[key] for row in rows] for key in rows[0]}
        raise ValueError(f"not a predict response: keys {sorted(response)}")
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    return {key: tf.make_ndarray(proto).tolist() for key, proto in response.outputs.items()}


def parse_predict_response(response) -> list[dict]:
    """Per-text results: {"words": [...], "entities": [...]}.

    Each word: token, label, score, start, end (character offsets, end
    exclusive).  Each entity: type, text, score, start, end (characters),
    start_word, end_word.  Padding is removed using num_words / num_entities.
    """
    columns = _columns_from_response(response)
    if not columns:
        return []
    results = []
    for i, num_words in enumerate(columns["num_words"]):
        num_entities = columns["num_entities"][i]
        words = [
            {
                "token": _text(columns["tokens"][i][j]),
                "label": _text(columns["labels"][i][j]),
                "score": float(columns["scores"][i][j]),
                "start": int(columns["word_starts"][i][j]),
                "end": int(columns["word_ends"][i][j]),
            }
            for j in range(int(num_words))
        ]
        entities = [
            {
                "type": _text(columns["entity_types"][i][j]),
                "text": _text(columns["entity_texts"][i][j]),
                "score": float(columns["entity_scores"][i][j]),
                "start": int(columns["entity_starts"][i][j]),
                "end": int(columns["entity_ends"][i][j]),
                "start_word": int(columns["entity_start_words"][i][j]),
                "end_word": int(columns["entity_end_words"][i][j]),
            }
            for j in range(int(num_entities))
        ]
        results.append({"words": words, "entities": entities})
    return results


def predict_rest(texts, server, model, signature=SIGNATURE, timeout=30.0, version=None):
    base = server if server.startswith(("http://", "https://")) else f"http://{server}"
    url = f"{base}/v1/models/{model}" + (f"/versions/{version}" if version else "") + ":predict"
    request = urllib.request.Request(
        url, data=build_rest_body(texts, signature), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            return parse_predict_response(reply.read())
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{url}: HTTP {e.code}: {e.read().decode('utf-8', 'replace')}") from None


def predict_grpc(texts, server, model, signature=SIGNATURE, timeout=30.0, version=None):
    import grpc  # pylint: disable=import-outside-toplevel
    from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=import-outside-toplevel

    with grpc.insecure_channel(
        server, options=[("grpc.max_receive_message_length", 256 << 20)]
    ) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        response = stub.Predict(
            build_predict_request(texts, model, signature, version), timeout=timeout
        )
    return parse_predict_response(response)


def format_result(index: int, result: dict) -> str:
    entities = "  ".join(
        f"{e['type']} [{e['start']}, {e['end']}) {json.dumps(e['text'], ensure_ascii=False)} "
        f"{e['score']:.3f}"
        for e in result["entities"]
    )
    return f"{index}\t{entities}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--server", default="localhost:8501", help="host:port (REST 8501, gRPC 8500 by default)"
    )
    parser.add_argument("--model", default="ner")
    parser.add_argument("--version", type=int, default=None)
    parser.add_argument("--signature", default=SIGNATURE)
    parser.add_argument("--grpc", action="store_true", help="use gRPC instead of REST")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")
    args = parser.parse_args(argv)
    predict = predict_grpc if args.grpc else predict_rest
    lines = [line.rstrip("\n") for line in sys.stdin]
    for start in range(0, len(lines), args.batch_size):
        batch = lines[start : start + args.batch_size]
        try:
            results = predict(
                batch, args.server, args.model, args.signature, args.timeout, args.version
            )
        except Exception as e:  # pylint: disable=broad-except
            print(f"electra_tf.serving.client: error: {e}", file=sys.stderr)
            return 1
        for offset, (text, result) in enumerate(zip(batch, results)):
            if args.json:
                print(
                    json.dumps(
                        {"line": start + offset + 1, "text": text, **result}, ensure_ascii=False
                    )
                )
            else:
                print(format_result(start + offset + 1, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
