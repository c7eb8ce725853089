"""Throughput and latency of the NER SavedModel against the same model in plain Python, on CPU.

    python bench/serving_throughput.py [--checkpoint=runs/ner | --export_dir=export/models/ner/1]
        [--batch_sizes=1,32] [--seconds=4] [--hidden_size=128 --num_layers=4]

Two pipelines, same weights, same sentences (WikiANN dev, one sentence a text):

* ``saved_model``: ``tf.saved_model.load`` + the ``serving_default`` signature
  (tokenization, windowing, model, word alignment and entity decoding in one
  graph), as TF Serving would run it minus RPC overhead;
* ``python``: FullTokenizer word split + ``conll.encode_sentences`` windows,
  the Keras model in a ``tf.function`` (padded to max_seq_length, as
  run_finetuning's predict does), then first-piece labels and
  ``metrics.get_entities`` in Python.

The SavedModel pads each batch only to its longest window, which is part of
its advantage on short sentences.  Both run on CPU (GPUs are hidden).

Without --checkpoint / --export_dir a random-weight model of the given size is
built (speed does not depend on the weights).  Prints a table and one JSON line
(``{"bench": "serving_throughput", ...}``); the default run takes about a minute.
"""

import argparse
import collections
import json
import os
import pathlib
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from electra_tf import tokenization  # noqa: E402
from electra_tf.config import ElectraConfig  # noqa: E402
from electra_tf.finetuning import conll, metrics  # noqa: E402
from electra_tf.finetuning.models import ElectraForTokenClassification  # noqa: E402
from electra_tf.serving import export  # noqa: E402

DEFAULT_DATA = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data" / "wikiann_en"
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", help="fine-tuned model (as for export_saved_model)")
    parser.add_argument("--export_dir", help="an exported version folder to load instead")
    parser.add_argument("--data_dir", default=str(DEFAULT_DATA), help="WikiANN-style CoNLL folder")
    parser.add_argument("--batch_sizes", default="1,32")
    parser.add_argument("--seconds", type=float, default=4.0, help="timed run per measurement")
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--hidden_size", type=int, default=128)
    parser.add_argument("--num_layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="TF intra-op threads (0: TF default)")
    return parser.parse_args(argv)


def load_sentences(data_dir):
    for name in ("dev.conll", "test.conll", "train.conll"):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return conll.read_conll(path)
    raise SystemExit(f"no dev/test/train.conll in {data_dir}; pass --data_dir")


def random_model(sentences, args, workdir):
    counts = collections.Counter(w.lower() for s in sentences for w in s.words)
    chars = sorted({c for w in counts for c in w})
    words = [w for w, _ in counts.most_common(4000) if w not in chars and len(w) > 1]
    vocab = SPECIAL + chars + ["##" + c for c in chars] + words
    types = sorted({l[2:] for s in sentences for l in s.labels if l != "O"}) or ["ENT"]
    labels = ["O"] + [f"{p}-{t}" for t in types for p in "BIES"]
    config = ElectraConfig(vocab_size=len(vocab), hidden_size=args.hidden_size,
                           num_hidden_layers=args.num_layers,
                           num_attention_heads=max(1, args.hidden_size // 64),
                           intermediate_size=4 * args.hidden_size,
                           max_position_embeddings=max(512, args.max_seq_length))
    model = ElectraForTokenClassification(config, len(labels))
    model.build()
    vocab_file = os.path.join(workdir, "vocab.txt")
    with open(vocab_file, "w", encoding="utf-8") as f:
        f.write("".join(t + "\n" for t in vocab))
    return model, vocab, labels, vocab_file, True, args.max_seq_length


class PythonPipeline:
    def __init__(self, model, vocab_file, labels, do_lower_case, max_seq_length):
        self.tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case=do_lower_case)
        self.labels, self.max_seq_length = labels, max_seq_length
        self.do_lower_case = do_lower_case
        self.call = tf.function(lambda f: tf.nn.softmax(model(f, training=False), -1))

    def __call__(self, texts):
        words = tokenization.split_words(tokenization.normalize_text(
            tf.constant(texts), self.do_lower_case, self.tokenizer.strip_accents)).to_list()
        sentences = [conll.Sentence(tuple(w.decode() for w in ws), ()) for ws in words]
        features = conll.encode_sentences([s for s in sentences if len(s)], self.tokenizer, None,
                                          self.max_seq_length)
        if not features:
            return [[] for _ in texts]
        arrays = conll.features_to_arrays(features, self.max_seq_length)
        probs = self.call({k: tf.constant(arrays[k])
                           for k in ("input_ids", "input_mask", "segment_ids")}).numpy()
        predicted = conll.words_predictions(features, probs.argmax(-1), conll.LabelMap(self.labels))
        return [metrics.get_entities(tags) for tags in predicted]


def measure(fn, batches, seconds):
    fn(batches[0])  # warm-up (tracing)
    fn(batches[-1])
    latencies, sentences, start, i = [], 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds or len(latencies) < 3:
        batch = batches[i % len(batches)]
        t = time.perf_counter()
        fn(batch)
        latencies.append(time.perf_counter() - t)
        sentences += len(batch)
        i += 1
    total = time.perf_counter() - start
    return {"sentences_per_s": sentences / total, "p50_ms": 1000 * float(np.percentile(latencies, 50)),
            "p99_ms": 1000 * float(np.percentile(latencies, 99)), "calls": len(latencies)}


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.set_visible_devices([], "GPU")
    sentences = load_sentences(args.data_dir)
    texts = [" ".join(s.words) for s in sentences[:2000]]
    with tempfile.TemporaryDirectory() as workdir:
        if args.checkpoint:
            model, vocab, labels, settings, sources = export.load_token_classifier(args.checkpoint)
            vocab_file = sources["vocab"]
            do_lower_case = bool(settings.get("do_lower_case", True))
            max_seq_length = int(settings.get("max_seq_length", args.max_seq_length))
        else:
            model, vocab, labels, vocab_file, do_lower_case, max_seq_length = random_model(
                sentences, args, workdir)
        if args.export_dir:
            version_dir = args.export_dir
            if args.checkpoint is None:
                raise SystemExit("--export_dir needs --checkpoint for the Python side")
        else:
            t = time.perf_counter()
            version_dir = export.export_token_classifier(
                model, vocab, labels, os.path.join(workdir, "models", "ner"),
                do_lower_case=do_lower_case, max_seq_length=max_seq_length)
            print(f"exported in {time.perf_counter() - t:.1f}s", file=sys.stderr)
        serve = tf.saved_model.load(version_dir).signatures["serving_default"]
        python = PythonPipeline(model, vocab_file, labels, do_lower_case, max_seq_length)
        pipelines = {"saved_model": lambda batch: serve(texts=tf.constant(batch)),
                     "python": python}
        results = []
        for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
            batches = [texts[i:i + batch_size] for i in range(0, len(texts) - batch_size + 1,
                                                               batch_size)][:200]
            for name, fn in pipelines.items():
                results.append({"pipeline": name, "batch_size": batch_size,
                                **measure(fn, batches, args.seconds)})
    print(f"{'pipeline':<12} {'batch':>5} {'sent/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'calls':>6}")
    for r in results:
        print(f"{r['pipeline']:<12} {r['batch_size']:>5} {r['sentences_per_s']:>9.1f} "
              f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['calls']:>6}")
    print(json.dumps({"bench": "serving_throughput", "device": "cpu",
                      "model": {"hidden_size": model.config.hidden_size,
                                "num_layers": model.config.num_hidden_layers,
                                "num_labels": len(labels)},
                      "max_seq_length": max_seq_length, "results": results}))


if __name__ == "__main__":
    main()
