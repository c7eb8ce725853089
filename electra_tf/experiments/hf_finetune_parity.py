"""Fine-tunes one pre-trained discriminator with ours and with Hugging Face's Trainer, same data.

    python -m electra_tf.experiments.hf_finetune_parity --encoder_dir=runs/demo/discriminator \
        --output_dir=/tmp/parity/chunk --task=chunk --results=docs/hf_parity/results.jsonl

Converts --encoder_dir with `convert to-hf`, then for each label encoding and seed trains
`transformers`' AutoModelForTokenClassification with its Trainer (first sub-token of each word
labelled, the others -100) and ours (`electra_tf.finetune`), on the same files with the same
hyperparameters (layer-wise decay off, as HF has none), in one process with the same thread
count. Each side's predictions are mapped back to words and scored by the same code
(`electra_tf.finetuning.metrics`: conlleval/seqeval entity F1 for chunking, token accuracy for
POS). --layerwise_row adds ours with the flag files' layer-wise decay. Every finished run
is one JSONL line of --results (a re-run skips those), with examples/s and wall time.
"""

import collections
import dataclasses
import gzip
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

from absl import app, flags, logging

FLAGS = flags.FLAGS

DATA_ROOT = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data"


@dataclasses.dataclass(frozen=True)
class TaskFiles:
    """Where a task's training and scored files are, and the metric it is scored with."""

    train: str
    scored: str
    metric: str
    encodings: tuple[str, ...]  # label encodings that differ for this task


TASKS = {
    "chunk": TaskFiles(
        "conll2000_chunking/train.txt", "conll2000_chunking/test.txt", "entity_f1", ("BIO", "BIOES")
    ),
    "pos": TaskFiles(
        "ud_english_ewt/en_ewt-ud-train.conllu.gz",
        "ud_english_ewt/en_ewt-ud-test.conllu.gz",
        "token_accuracy",
        ("none",),
    ),
}
# Our --label_encoding for each encoding name: raw IOB2 tags are "none".
OUR_ENCODING = {"BIO": "none", "BIOES": "BIOES", "none": "none"}


def define_flags():
    """The command's flags, defined when it runs (importing this module defines none)."""
    flags.DEFINE_string("encoder_dir", None, "Our pre-trained discriminator (save_pretrained).")
    flags.DEFINE_string("output_dir", None, "Work folder: the HF conversion, data cuts, models.")
    flags.DEFINE_enum("task", "chunk", sorted(TASKS), "Which task.")
    flags.DEFINE_string("data_root", str(DATA_ROOT), "Folder holding the tasks' data folders.")
    flags.DEFINE_string("results", None, "JSONL of finished runs (one line each).")
    flags.DEFINE_string("bench_results", None, "JSONL of each run's speed (bench/results/).")
    flags.DEFINE_list("encodings", None, "Only these label encodings (default: the task's).")
    flags.DEFINE_list("seeds", ["0", "1", "2"], "Fine-tuning seeds.")
    flags.DEFINE_list("sides", ["hf", "ours"], "Which implementations to run.")
    flags.DEFINE_float("learning_rate", 3e-4, "Peak learning rate.")
    flags.DEFINE_float("num_train_epochs", 1.0, "Epochs.")
    flags.DEFINE_integer("train_batch_size", 32, "Batch size.")
    flags.DEFINE_float("warmup_proportion", 0.1, "Linear warm-up share of the steps.")
    flags.DEFINE_float("weight_decay_rate", 0.01, "Decoupled weight decay.")
    flags.DEFINE_integer("max_seq_length", 64, "Word pieces per input.")
    flags.DEFINE_float("layerwise_lr_decay", 0.8, "Ours' decay in the --layerwise_row run.")
    flags.DEFINE_bool("layerwise_row", True, "Also run ours with layer-wise decay.")
    flags.DEFINE_integer(
        "max_sentences", 0, "Use only the first N sentences of each file (0: all)."
    )
    flags.DEFINE_integer("threads", 1, "CPU threads per side (TF intra/inter-op, torch).")
    flags.DEFINE_bool("table", False, "Only print --results as a Markdown table.")
    flags.mark_flags_as_required(["results"])


# ---------------------------------------------------------------------------
# Data: the same files for both sides
# ---------------------------------------------------------------------------


def _sentence_blocks(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [b for b in f.read().split("\n\n") if b.strip()]


def cut_file(source, out_dir, max_sentences):
    """`source`, or its first `max_sentences` sentences written under `out_dir` (same format)."""
    if not max_sentences:
        return source
    from electra_tf.files import write_text

    name = os.path.basename(source).removesuffix(".gz")
    path = os.path.join(out_dir, name)
    write_text(path, "\n\n".join(_sentence_blocks(source)[:max_sentences]) + "\n\n")
    return path


# ---------------------------------------------------------------------------
# Scoring: one code path for both sides
# ---------------------------------------------------------------------------


def score(metric, gold, predicted):
    """The task's metric on word-level tag lists (predicted IOB2, as gold)."""
    from electra_tf.finetuning import metrics

    if metric == "entity_f1":
        return metrics.entity_scores(gold, predicted).f1
    return metrics.token_accuracy(gold, predicted)


def read_predictions(path):
    """Tags per sentence of our word<TAB>tag predictions file."""
    blocks = pathlib.Path(path).read_text(encoding="utf-8").strip("\n").split("\n\n")
    return [[row.split("\t")[-1] for row in block.split("\n")] for block in blocks]


# ---------------------------------------------------------------------------
# The two sides
# ---------------------------------------------------------------------------


def run_ours(files, encoding, seeds, model_dir, layerwise_lr_decay, task):
    """One `electra_tf.finetune` call over `seeds`: per seed (predicted tags, timings)."""
    import electra_tf

    settings = electra_tf.FinetuningSettings(
        task_name=task,
        train_file=files["train"],
        dev_file=files["scored"],
        init_checkpoint=FLAGS.encoder_dir,
        model_dir=model_dir,
        max_seq_length=FLAGS.max_seq_length,
        learning_rate=FLAGS.learning_rate,
        layerwise_lr_decay=layerwise_lr_decay,
        num_train_epochs=FLAGS.num_train_epochs,
        warmup_proportion=FLAGS.warmup_proportion,
        weight_decay_rate=FLAGS.weight_decay_rate,
        train_batch_size=FLAGS.train_batch_size,
        eval_batch_size=FLAGS.train_batch_size,
        label_encoding=OUR_ENCODING[encoding],
        seeds=seeds,
    )
    result = electra_tf.finetune(settings)
    runs = {}
    for per_seed in result["per_seed"]:
        runs[per_seed["seed"]] = (
            read_predictions(per_seed["dev_predictions"]),
            # Training and its one dev pass (the end of the single epoch), compilation included.
            {"train_wall_seconds": per_seed["train_wall_time_seconds"]},
        )
    return runs


def hf_features(tokenizer, sentences, label_ids, max_seq_length):
    """Trainer inputs: each word's first piece carries its label, the others -100."""
    encoded = tokenizer(
        [list(s.words) for s in sentences],
        is_split_into_words=True,
        truncation=True,
        max_length=max_seq_length,
    )
    features = []
    for i, sentence in enumerate(sentences):
        labels, previous = [], None
        for word in encoded.word_ids(i):
            first_piece = word is not None and word != previous
            labels.append(label_ids[sentence.labels[word]] if first_piece else -100)
            previous = word
        features.append({k: encoded[k][i] for k in encoded.keys()} | {"labels": labels})
    return features


def hf_word_tags(features, logits, sentences, label_names):
    """Each word's tag from its first piece's logits; words cut off by truncation get 'O'."""
    predicted = []
    for feature, row, sentence in zip(features, logits.argmax(-1), sentences):
        tags = [label_names[int(t)] for t, lab in zip(row, feature["labels"]) if lab != -100]
        predicted.append(tags + ["O"] * (len(sentence.words) - len(tags)))
    return predicted


def fits_whole(hf_dir, sentences):
    """Per sentence: do all its words fit HF's truncated input (the others lose their tail)?"""
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    features = hf_features(tokenizer, sentences, collections.defaultdict(int), FLAGS.max_seq_length)
    return [
        sum(label != -100 for label in f["labels"]) == len(s.words)
        for f, s in zip(features, sentences)
    ]


def run_hf(hf_dir, train, scored, label_names, seed, out_dir):
    """Trainer fine-tuning of the converted model: (predicted tags of `scored`, timings)."""
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(hf_dir)
    label_ids = {name: i for i, name in enumerate(label_names)}
    train_features = hf_features(tokenizer, train, label_ids, FLAGS.max_seq_length)
    scored_features = hf_features(tokenizer, scored, label_ids, FLAGS.max_seq_length)
    transformers.set_seed(seed)  # the new classifier's initialisation, before Trainer seeds
    model = transformers.AutoModelForTokenClassification.from_pretrained(
        hf_dir,
        num_labels=len(label_names),
        id2label=dict(enumerate(label_names)),
        label2id=label_ids,
    )
    args = transformers.TrainingArguments(
        output_dir=out_dir,
        learning_rate=FLAGS.learning_rate,
        num_train_epochs=FLAGS.num_train_epochs,
        per_device_train_batch_size=FLAGS.train_batch_size,
        per_device_eval_batch_size=FLAGS.train_batch_size,
        warmup_ratio=FLAGS.warmup_proportion,
        weight_decay=FLAGS.weight_decay_rate,
        lr_scheduler_type="linear",
        seed=seed,
        use_cpu=True,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    # Padded to the full length, as ours, so both sides compute on the same shapes.
    collator = transformers.DataCollatorForTokenClassification(
        tokenizer, padding="max_length", max_length=FLAGS.max_seq_length
    )
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=train_features, data_collator=collator
    )
    start = time.time()
    train_metrics = trainer.train().metrics
    logits = trainer.predict(scored_features).predictions
    wall = time.time() - start
    timings = {
        "train_wall_seconds": wall,
        "trainer_train_runtime": train_metrics["train_runtime"],
        "truncated_words": sum(
            len(s.words) - sum(lab != -100 for lab in f["labels"])
            for s, f in zip(scored, scored_features)
        ),
    }
    return hf_word_tags(scored_features, logits, scored, label_names), timings


# ---------------------------------------------------------------------------
# The experiment
# ---------------------------------------------------------------------------


def convert_to_hf(hf_dir):
    """`python -m electra_tf.convert to-hf` of --encoder_dir into hf_dir (kept if there)."""
    if os.path.exists(os.path.join(hf_dir, "config.json")):
        return
    subprocess.run(
        [
            sys.executable,
            "-m",
            "electra_tf.convert",
            "to-hf",
            f"--encoder_dir={FLAGS.encoder_dir}",
            f"--output_dir={hf_dir}",
        ],
        check=True,
    )


def _read_results(path):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _append_results(path, rows):
    from electra_tf.files import write_text

    lines = [json.dumps(r, sort_keys=True) for r in _read_results(path) + rows]
    write_text(path, "\n".join(lines) + "\n")


def _row(side, encoding, seed, value, timings, num_train, **extra):
    return {
        "task": FLAGS.task,
        "side": side,
        "encoding": encoding,
        "seed": seed,
        "score": value,
        "num_train_sentences": num_train,
        "examples_per_second": num_train * FLAGS.num_train_epochs / timings["train_wall_seconds"],
        **timings,
        **extra,
        "layerwise_lr_decay": extra.get("layerwise_lr_decay", 0.0),
        "learning_rate": FLAGS.learning_rate,
        "num_train_epochs": FLAGS.num_train_epochs,
        "train_batch_size": FLAGS.train_batch_size,
        "max_seq_length": FLAGS.max_seq_length,
        "threads": FLAGS.threads,
        "max_sentences": FLAGS.max_sentences,
        "cpu": _cpu_model(),
    }


SPEED_KEYS = ("train_wall_seconds", "trainer_train_runtime", "examples_per_second", "threads")


def _speed(row):
    """A run's speed record: what ran, on which CPU, how fast."""
    keys = ("task", "side", "encoding", "seed", "layerwise_lr_decay", "num_train_sentences")
    return {k: row[k] for k in keys + SPEED_KEYS + ("cpu",) if k in row}


def _cpu_model():
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _planned_runs(task):
    """(side, encoding, layer-wise decay) of each run of the task."""
    encodings = FLAGS.encodings or TASKS[task].encodings
    runs = [(side, enc, 0.0) for enc in encodings for side in FLAGS.sides]
    if FLAGS.layerwise_row and "ours" in FLAGS.sides and TASKS[task].encodings[-1] in encodings:
        # The flag files' defaults: BIOES for spans, layer-wise decay on.
        runs.append(("ours", TASKS[task].encodings[-1], FLAGS.layerwise_lr_decay))
    return runs


def run_experiment():
    """Every planned run not yet in --results, each appended to it when finished."""
    from electra_tf.finetuning import conll, tasks

    task, out = FLAGS.task, FLAGS.output_dir
    spec = TASKS[task]
    data_dir = os.path.join(out, "data")
    os.makedirs(data_dir, exist_ok=True)
    files = {
        "train": cut_file(os.path.join(FLAGS.data_root, spec.train), data_dir, FLAGS.max_sentences),
        "scored": cut_file(
            os.path.join(FLAGS.data_root, spec.scored), data_dir, FLAGS.max_sentences
        ),
    }
    hf_dir = os.path.join(out, "hf")
    convert_to_hf(hf_dir)
    seeds = [int(s) for s in FLAGS.seeds]
    done = {
        (r["side"], r["encoding"], r["layerwise_lr_decay"], r["seed"])
        for r in _read_results(FLAGS.results)
        if r["task"] == task and r["max_sentences"] == FLAGS.max_sentences
    }
    train_sentences = conll.read_conll(files["train"])
    for side, encoding, decay in _planned_runs(task):
        todo = [s for s in seeds if (side, encoding, decay, s) not in done]
        if not todo:
            continue
        # Ours' label set and encoding, so HF trains exactly the same labels.
        scheme = tasks._tagging_scheme(task, train_sentences, OUR_ENCODING[encoding], "train")
        scored = conll.read_conll(files["scored"], labels=scheme.eval_labels)
        gold = [list(s.labels) for s in scored]
        whole = fits_whole(hf_dir, scored)
        run_name = f"{side}_{encoding}_lwd{decay}"
        if side == "ours":
            model_dir = os.path.join(out, run_name + "_seeds" + "_".join(map(str, todo)))
            results = run_ours(files, encoding, todo, model_dir, decay, task)
        else:
            train = scheme.encode_labels(train_sentences)
            results = {}
            for seed in todo:
                tags, timings = run_hf(
                    hf_dir,
                    train,
                    scored,
                    scheme.label_map.labels,
                    seed,
                    os.path.join(out, f"{run_name}_seed{seed}"),
                )
                if scheme.to_bioes:
                    tags = [conll.bioes_to_iob2(t) for t in tags]
                results[seed] = (tags, timings)
        rows = [
            _row(
                side,
                encoding,
                seed,
                score(spec.metric, gold, tags),
                timings,
                len(train_sentences),
                layerwise_lr_decay=decay,
                score_whole_sentences=score(
                    spec.metric,
                    [g for g, w in zip(gold, whole) if w],
                    [t for t, w in zip(tags, whole) if w],
                ),
                whole_sentences=sum(whole),
                scored_sentences=len(scored),
            )
            for seed, (tags, timings) in sorted(results.items())
        ]
        _append_results(FLAGS.results, rows)
        if FLAGS.bench_results:
            _append_results(FLAGS.bench_results, [_speed(r) for r in rows])
        logging.info("%s: %s", run_name, [(r["seed"], round(r["score"], 4)) for r in rows])


def _group_key(row):
    return row["task"], row["encoding"], row["side"], row["layerwise_lr_decay"]


def markdown_table(rows):
    """Mean ± std (and min-max) of each run group over seeds, its speed, and ours vs HF."""
    import statistics

    groups = {}
    for row in rows:
        groups.setdefault(_group_key(row), []).append(row)
    lines = [
        "| task | encoding | side | layer-wise decay | seeds | score mean ± std | min-max "
        "| examples/s | wall s | speed ours/HF | ours mean - HF min | whole sentences: mean ± std |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (task, encoding, side, decay), group in sorted(groups.items()):
        scores = [r["score"] for r in group]
        speed = statistics.fmean(r["examples_per_second"] for r in group)
        hf = groups.get((task, encoding, "hf", 0.0))
        ratio = gap = ""
        if side == "ours" and hf:
            ratio = f"{speed / statistics.fmean(r['examples_per_second'] for r in hf):.2f}"
            gap = f"{statistics.fmean(scores) - min(r['score'] for r in hf):+.4f}"
        lines.append(
            f"| {task} | {encoding} | {side} | {decay or 'off'} | {len(group)} "
            f"| {statistics.fmean(scores):.4f} ± {statistics.pstdev(scores):.4f} "
            f"| {min(scores):.4f}-{max(scores):.4f} | {speed:.1f} "
            f"| {statistics.fmean(r['train_wall_seconds'] for r in group):.1f} | {ratio} | {gap} "
            f"| {_whole_sentences(group)} |"
        )
    return "\n".join(lines)


def _whole_sentences(group):
    """Mean ± std of the score on the sentences HF's input holds whole (if recorded)."""
    import statistics

    scores = [r["score_whole_sentences"] for r in group if "score_whole_sentences" in r]
    if not scores:
        return ""
    return f"{statistics.fmean(scores):.4f} ± {statistics.pstdev(scores):.4f}"


def set_threads(threads):
    """The same thread count for TensorFlow and torch, before either runs an op."""
    import tensorflow as tf
    import torch

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    torch.set_num_threads(threads)
    torch.set_num_interop_threads(threads)


def main(argv):
    del argv
    if FLAGS.table:
        print(markdown_table(_read_results(FLAGS.results)))
        return
    for name in ("encoder_dir", "output_dir"):
        if not FLAGS[name].value:
            raise app.UsageError(f"--{name} is required to run the experiment (or pass --table)")
    set_threads(FLAGS.threads)
    run_experiment()


if __name__ == "__main__":
    define_flags()
    app.run(main)
