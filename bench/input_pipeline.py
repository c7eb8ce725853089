"""Is the input pipeline a bottleneck for pre-training? Sequences/s it delivers vs the train step.

    .venv/bin/python bench/input_pipeline.py                 # builds ~4k examples from wiki_en_000
    .venv/bin/python bench/input_pipeline.py --pretrain_tfrecords='data/pretrain_tfrecords/*'

Measures, on real TFRecords, interleaved over --repeats rounds:
  pipeline          electra_tf.data.pretraining_input.pretraining_dataset (read, shuffle, batch, parse,
                    cast) iterated eagerly, sequences/s
  pipeline+masking  the same, each batch then passed through the in-graph dynamic masking
                    (electra_tf.pretraining.masking.mask_inputs, XLA-compiled as in the step)
  masking only      mask_inputs on one fixed batch (its share of the step's cost)
and, unless --no_train_step, the consumer: ours ElectraPretrainer train step (Trainer, fp32,
XLA by run_pretraining's default for the device) fed (a) from the real pipeline and (b) from the same batches held in memory; if (a) is
no slower than (b) the pipeline is not the bottleneck, even sharing the CPU with the step.

With no --pretrain_tfrecords, a corpus of the first --corpus_lines lines of
/work/shared/data/pretrain_en_wikipedia/wiki_en_000.txt.gz is turned into a
vocabulary (electra_tf.build_vocab) and TFRecords (electra_tf.build_pretraining_dataset)
in a temp dir first (not timed as part of the pipeline; reported separately).
Output: JSON lines and a short table.
"""

import argparse
import gzip
import json
import os
import statistics
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

import electra_tf  # noqa: E402,F401  (selects the Keras backend)
from electra_tf.data import (
    pretraining_input,  # noqa: E402
    tokenization,  # noqa: E402
)
from electra_tf.pretraining import masking  # noqa: E402

CORPUS = "/work/shared/data/pretrain_en_wikipedia/wiki_en_000.txt.gz"


def out(obj):
    print(json.dumps(obj), flush=True)


def build_data(args):
    """(TFRecord pattern, vocab file) under --data_dir, built unless already there."""
    from electra_tf.data import vocab as vocab_lib
    from electra_tf.data.pretraining_records import build_pretraining_dataset

    workdir = args.data_dir
    settings = {
        "corpus": args.corpus,
        "corpus_lines": args.corpus_lines,
        "vocab_lines": args.vocab_lines,
        "vocab_size": args.vocab_size,
        "max_seq_length": args.max_seq_length,
        "num_out_files": args.num_out_files,
    }
    marker = os.path.join(workdir, "bench_settings.json")
    pattern = os.path.join(workdir, "tfrecords", "pretrain_data.tfrecord*")
    vocab_file = os.path.join(workdir, "vocab.txt")
    if os.path.exists(marker) and json.load(open(marker)) == settings:
        out({"kind": "built_data", "reused": workdir, **settings})
        return pattern, vocab_file
    corpus_dir = os.path.join(workdir, "corpus")
    os.makedirs(corpus_dir, exist_ok=True)
    text = os.path.join(corpus_dir, "wiki_head.txt")
    with gzip.open(args.corpus, "rt", encoding="utf-8") as src, open(text, "w") as dst:
        for i, line in enumerate(src):
            if i >= args.corpus_lines:
                break
            dst.write(line)
    start = time.perf_counter()
    tokens = vocab_lib.build_vocab(
        [text], vocab_size=args.vocab_size, do_lower_case=True, max_lines=args.vocab_lines
    )
    vocab_lib.write_vocab(tokens, vocab_file)
    vocab_s = time.perf_counter() - start
    start = time.perf_counter()
    n = build_pretraining_dataset(
        [text],
        vocab_file,
        os.path.join(workdir, "tfrecords"),
        max_seq_length=args.max_seq_length,
        num_out_files=args.num_out_files,
    )
    out(
        {
            "kind": "built_data",
            **settings,
            "vocab_tokens": len(tokens),
            "examples": n,
            "vocab_seconds": vocab_s,
            "tfrecord_seconds": time.perf_counter() - start,
            "dir": workdir,
        }
    )
    with open(marker, "w") as f:
        json.dump(settings, f)
    return pattern, vocab_file


def timed_iteration(iterator, n, consume):
    start = time.perf_counter()
    for _ in range(n):
        consume(next(iterator))
    return time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--pretrain_tfrecords", default=None)
    p.add_argument(
        "--vocab_file", default=None, help="for the special-token ids (default: BERT ids)"
    )
    p.add_argument("--corpus", default=CORPUS)
    p.add_argument(
        "--corpus_lines", type=int, default=20000, help="corpus lines turned into examples"
    )
    p.add_argument(
        "--vocab_lines", type=int, default=5000, help="lines the vocabulary is learnt from"
    )
    p.add_argument(
        "--data_dir", default="/tmp/electra_bench_data", help="where data is built/reused"
    )
    p.add_argument("--vocab_size", type=int, default=8000, help="of the vocabulary built here")
    p.add_argument("--num_out_files", type=int, default=8)
    p.add_argument("--max_seq_length", type=int, default=128)
    p.add_argument("--max_predictions_per_seq", type=int, default=19)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--batches", type=int, default=100, help="batches per timed pipeline block")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no_train_step", action="store_true")
    p.add_argument("--train_steps", type=int, default=3, help="steps per timed train block")
    p.add_argument("--train_repeats", type=int, default=3)
    args = p.parse_args()

    out(
        {
            "kind": "setup",
            "argv": sys.argv[1:],
            "load_average": os.getloadavg(),
            "cpus": len(os.sched_getaffinity(0)),
        }
    )
    pattern, vocab_file = args.pretrain_tfrecords, args.vocab_file
    if pattern is None:
        pattern, vocab_file = build_data(args)
    args.data_vocab_size = 30522
    if vocab_file:
        vocab = tokenization.load_vocab(vocab_file)
        special = tokenization.special_token_ids(vocab)
        args.data_vocab_size = len(vocab)
    else:
        special = tokenization.SpecialTokens(pad=0, unk=100, cls=101, sep=102, mask=103)
    files = pretraining_input.input_files(pattern)
    num_records = sum(1 for f in files for _ in tf.data.TFRecordDataset(f))
    out({"kind": "data", "files": len(files), "records": num_records})

    seq, batch = args.max_seq_length, args.batch_size
    dataset = pretraining_input.pretraining_dataset(pattern, seq, batch, is_training=True, seed=0)
    iterator = iter(dataset)

    from electra_tf.training import stateless_random

    @tf.function(jit_compile=True)
    def mask_fn(features, seed):
        # The step's masking exactly: key from a per-step seed, example index = batch row.
        m = masking.mask_inputs(
            features,
            special,
            mask_prob=0.15,
            max_predictions=args.max_predictions_per_seq,
            key=stateless_random.key_from_seed(seed),
            example_index=tf.range(batch, dtype=tf.int32),
        )
        return m.input_ids, m.masked_lm_positions

    step_counter = [0]

    def masked_consume(features):
        step_counter[0] += 1
        ids, _ = mask_fn(features, tf.constant([step_counter[0], 0], tf.int64))
        ids.numpy()

    def plain_consume(features):
        features["input_ids"].numpy()

    fixed = next(iterator)
    # Warm up: fill the shuffle buffer and compile the masking.
    timed_iteration(iterator, 20, plain_consume)
    timed_iteration(iterator, 5, masked_consume)

    rates = {"pipeline": [], "pipeline+masking": [], "masking only": []}
    for r in range(args.repeats):
        for name in rates if r % 2 == 0 else list(rates)[::-1]:
            if name == "pipeline":
                s = timed_iteration(iterator, args.batches, plain_consume)
            elif name == "pipeline+masking":
                s = timed_iteration(iterator, args.batches, masked_consume)
            else:
                start = time.perf_counter()
                for _ in range(args.batches):
                    masked_consume(fixed)
                s = time.perf_counter() - start
            rate = args.batches * batch / s
            rates[name].append(rate)
            out(
                {
                    "kind": "block",
                    "what": name,
                    "round": r,
                    "seq_per_s": rate,
                    "load_average": os.getloadavg(),
                }
            )

    train = {}
    if not args.no_train_step:
        train = train_step_rates(args, special, pattern)

    summary = {name: statistics.median(v) for name, v in rates.items()}
    out(
        {
            "kind": "summary",
            "batch_size": batch,
            **{f"{k}_seq_per_s_median": v for k, v in summary.items()},
            **{f"{k}_seq_per_s_median": statistics.median(v) for k, v in train.items()},
        }
    )
    print()
    print(
        f"batch {batch}, seq {seq}; medians of {args.repeats} rounds "
        f"({args.batches} batches each); load average now {os.getloadavg()}"
    )
    for name, v in rates.items():
        print(f"  {name:<28} {statistics.median(v):9.0f} seq/s   [{min(v):.0f}-{max(v):.0f}]")
    for name, v in train.items():
        print(f"  {name:<28} {statistics.median(v):9.1f} seq/s   [{min(v):.1f}-{max(v):.1f}]")
    if train:
        step = statistics.median(train["train step, in-memory data"])
        print(
            f"  pipeline headroom: delivers {summary['pipeline'] / step:.0f}x what the step "
            f"consumes ({summary['pipeline+masking'] / step:.0f}x with masking)"
        )
        ratio = [
            a / b
            for a, b in zip(train["train step, real pipeline"], train["train step, in-memory data"])
        ]
        print(
            f"  train step real/in-memory per-round ratio: median {statistics.median(ratio):.3f} "
            f"({', '.join(f'{x:.3f}' for x in ratio)})"
        )


def train_step_rates(args, special, pattern):
    """Ours train step fed by the real pipeline vs by the same batches held in memory."""
    import functools

    import keras

    from electra_tf.model import config as config_lib
    from electra_tf.pretraining.model import ElectraPretrainer
    from electra_tf.training import distribute
    from electra_tf.training.optimization import AdamWeightDecay, learning_rate_at
    from electra_tf.training.trainer import Trainer, accumulation_batches

    disc = config_lib.preset("small", vocab_size=max(30522, args.data_vocab_size))
    gen = config_lib.generator_config(disc, 0.25, 1.0, untied_embeddings=False)
    strategy = tf.distribute.get_strategy()
    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = ElectraPretrainer(
            disc, gen, special, max_predictions_per_seq=args.max_predictions_per_seq
        )
        model.build()
        schedule = functools.partial(
            learning_rate_at,
            base_learning_rate=5e-4,
            num_train_steps=1_000_000,
            num_warmup_steps=10_000,
        )
        optimizer = AdamWeightDecay(model.trainable_variables, schedule, weight_decay_rate=0.01)
        trainer = Trainer(
            strategy, model, optimizer, seed=0, jit_compile=distribute.use_xla(None, strategy)
        )

    batch, seq = args.batch_size, args.max_seq_length

    def real_fn(ctx):
        return accumulation_batches(
            pretraining_input.pretraining_dataset(
                pattern, seq, batch, is_training=True, input_context=ctx, seed=0
            ),
            1,
        )

    real = iter(strategy.distribute_datasets_from_function(real_fn))
    cached = list(
        pretraining_input.pretraining_dataset(pattern, seq, batch, is_training=True, seed=1).take(4)
    )
    stacked = {k: tf.stack([c[k] for c in cached]) for k in cached[0]}
    memory_ds = accumulation_batches(tf.data.Dataset.from_tensor_slices(stacked).repeat(), 1)
    memory = iter(strategy.distribute_datasets_from_function(lambda ctx: memory_ds.prefetch(2)))

    start = time.perf_counter()
    trainer.train(memory, 1)
    out({"kind": "train_first_step", "seconds": time.perf_counter() - start})
    trainer.train(real, 2)
    trainer.train(memory, 1)
    rates = {"train step, real pipeline": [], "train step, in-memory data": []}
    for r in range(args.train_repeats):
        for name in rates if r % 2 == 0 else list(rates)[::-1]:
            it = real if "real" in name else memory
            start = time.perf_counter()
            trainer.train(it, args.train_steps)
            rate = args.train_steps * batch / (time.perf_counter() - start)
            rates[name].append(rate)
            out(
                {
                    "kind": "block",
                    "what": name,
                    "round": r,
                    "seq_per_s": rate,
                    "load_average": os.getloadavg(),
                }
            )
    return rates


if __name__ == "__main__":
    main()
