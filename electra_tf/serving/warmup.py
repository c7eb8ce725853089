"""TF Serving warm-up requests (``assets.extra/tf_serving_warmup_requests``): PredictionLogs the
server replays on load, so the first real request does not pay for graph preparation."""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from electra_tf.serving.common import INPUT_KEY, SERVING_SIGNATURE

WARMUP_TEXTS = (
    "George Washington was born in Westmoreland County , Virginia .",
    "Sioux Falls Arena ( Sioux Falls , South Dakota )",
    "",
)


def warmup_requests(model_name: str, texts: Sequence[str] = WARMUP_TEXTS):
    """PredictionLog protos: one single-text request per text, then one batch of all."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2  # pylint: disable=import-outside-toplevel

    batches = [[t] for t in texts] + [list(texts)]
    logs = []
    for batch in batches:
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=model_name, signature_name=SERVING_SIGNATURE)
        )
        request.inputs[INPUT_KEY].CopyFrom(
            tf.make_tensor_proto([t.encode("utf-8") for t in batch], dtype=tf.string)
        )
        logs.append(
            prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
        )
    return logs


def qa_warmup_requests(model_name: str):
    """One question-answering request: a question on the first warm-up text, and an empty pair."""
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2  # pylint: disable=import-outside-toplevel

    request = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name=SERVING_SIGNATURE)
    )
    request.inputs["question"].CopyFrom(
        tf.make_tensor_proto([b"Where was George Washington born?", b""], dtype=tf.string)
    )
    request.inputs["context"].CopyFrom(
        tf.make_tensor_proto([WARMUP_TEXTS[0].encode(), b""], dtype=tf.string)
    )
    return [
        prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
    ]
