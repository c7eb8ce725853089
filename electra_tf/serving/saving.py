"""Writing a server module as a SavedModel version: signatures, assets (vocab, label map) and
assets.extra (warm-up requests, export info)."""

from __future__ import annotations

import json
import os
import tempfile
import time

import tensorflow as tf

from electra_tf.filenames import EXPORT_INFO_FILE, LABEL_MAP_FILE, VOCAB_FILE, WARMUP_FILE
from electra_tf.files import write_json
from electra_tf.serving import warmup
from electra_tf.serving.versions import write_version


def write_export(
    server,
    export_dir,
    version,
    overwrite,
    *,
    signatures,
    vocab,
    labels,
    info,
    model_name,
    warmup_fn=None,
):
    """Writes `server` as `<export_dir>/<version>` atomically and returns its path.

    `signatures` maps signature names to the server's tf.functions; `warmup_fn(model_name)` gives
    the warm-up PredictionLogs (default: `warmup.warmup_requests`); `model_name` defaults to the
    export directory's name.
    """
    model_name = model_name or os.path.basename(export_dir.rstrip("/"))
    warmup_fn = warmup_fn or warmup.warmup_requests

    def write(path):
        concrete = {name: function.get_concrete_function() for name, function in signatures.items()}
        save_server(server, path, vocab, labels, concrete, info, warmup_fn(model_name))

    return write_version(export_dir, version, overwrite, write)


def save_server(server, path, vocab, labels, signatures, info, warmup_logs):
    """tf.saved_model.save + assets (vocab, label map) + assets.extra (warm-up, info)."""
    with tempfile.TemporaryDirectory() as staging:
        vocab_path = os.path.join(staging, VOCAB_FILE)
        with open(vocab_path, "w", encoding="utf-8") as f:
            f.write("".join(f"{token}\n" for token in vocab))
        labels_path = os.path.join(staging, LABEL_MAP_FILE)
        with open(labels_path, "w", encoding="utf-8") as f:
            json.dump({"labels": list(labels or [])}, f, ensure_ascii=False, indent=1)
        server.vocab_file = tf.saved_model.Asset(vocab_path)
        server.label_map_file = tf.saved_model.Asset(labels_path)
        tf.saved_model.save(server, path, signatures=signatures)
    extra = os.path.join(path, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    with tf.io.TFRecordWriter(os.path.join(extra, WARMUP_FILE)) as writer:
        for log in warmup_logs:
            writer.write(log.SerializeToString())
    write_json(
        os.path.join(extra, EXPORT_INFO_FILE),
        {
            **info,
            "signatures": sorted(signatures),
            "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        indent=1,
        ensure_ascii=False,
    )
