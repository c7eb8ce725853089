"""Compute-matched comparison of pre-training variants on a downstream task.

    python -m electra_tf.experiments.compare --variants=electra,mlm,random_init \
        --flops_budget=2e13 --num_points=1 --finetune_tasks=pos,chunk \
        --finetune_train_examples=0 --finetune_dev_examples=0 --finetune_epochs=1 \
        --seeds=1,2,3 --output_dir=docs/compare

For each variant this
  1. pre-trains in this process (`electra_tf.pretrain`, run_pretraining's
     engine, one call per segment, with run_pretraining's flags turned into
     PretrainingSettings) on the same corpus, vocabulary and TFRecords
     (built once under --data_dir), with the same model size, batch, learning
     rate and warmup, for as many steps as --flops_budget buys it (FLOPs from
     electra_tf.pretraining.flops: forward + backward = 3 x forward, generator
     included); the learning-rate schedule spans the whole budget;
  2. snapshots the discriminator at --num_points equally spaced FLOPs points;
  3. fine-tunes every snapshot in this process (electra_tf.finetune) on
     every task of --finetune_tasks (CoNLL-2000 chunking, UD English EWT UPOS
     tagging, SST-2; whole sets or their first N examples) with every seed;
  4. writes <output_dir>/results.json, results.md (variant, pre-training
     FLOPs, median/std of the dev score, per task) and score_vs_flops.png.

The `random_init` variant is not pre-trained: it fine-tunes a freshly
initialized discriminator of the same configuration and vocabulary (0 FLOPs),
the baseline every pre-trained variant has to beat.

Everything is resumable: finished segments, snapshots and fine-tuning runs
are skipped when the command is re-run. Scale up with the flags (model size,
budget, points, seeds, task subset sizes).
"""

import dataclasses
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time

from absl import app, flags, logging

import electra_tf
from electra_tf import files
from electra_tf.filenames import (
    CONFIG_FILE,
    DATASET_INFO_FILE,
    DISCRIMINATOR_DIR,
    RESULTS_FILE,
    SHARD_PREFIX,
    VOCAB_FILE,
)
from electra_tf.finetuning import conll
from electra_tf.pretraining import flops as flops_lib
from electra_tf.pretraining import model as model_lib
from electra_tf.pretraining import runner, two_stage
from electra_tf.pretraining.settings import PretrainingSettings, SettingsError

FLAGS = flags.FLAGS

# Not pre-trained: fine-tunes an untrained discriminator of the same configuration.
RANDOM_INIT = "random_init"
# Named variants: the run_pretraining flags that select them.
VARIANTS = {
    RANDOM_INIT: [],
    "electra": [],
    "electra_15": ["--objective=electra_15"],
    "replace_mlm": ["--objective=replace_mlm"],
    "all_tokens_mlm": ["--objective=all_tokens_mlm"],
    "mlm": ["--objective=mlm"],
    "electric": ["--objective=electric"],
    "adversarial": ["--generator_training=adversarial"],
    "two_stage": ["--generator_training=two_stage", "--generator_hidden_size=1.0"],
    "uniform": ["--uniform_generator"],
    "gdes": ["--embedding_sharing=gdes"],
    "untied_embeddings": ["--embedding_sharing=none"],
    "shared_all": ["--embedding_sharing=all", "--generator_hidden_size=1.0"],
}

flags.DEFINE_list(
    "variants",
    ["electra", "mlm"],
    f"Variants to compare: {sorted(VARIANTS)} or names given in --variant_flags.",
)
flags.DEFINE_string(
    "variant_flags", "{}", 'JSON {"name": ["--flag=value", ...]} adding or overriding variants.'
)
flags.DEFINE_float("flops_budget", 1.5e13, "Pre-training FLOPs per variant.")
flags.DEFINE_integer(
    "num_points",
    3,
    "FLOPs points (equally spaced up to the budget) whose discriminators are fine-tuned.",
)
FINETUNE_TASKS = ("chunk", "pos", "sst-2")
flags.DEFINE_list(
    "finetune_tasks",
    ["chunk"],
    f"Downstream tasks, any of {FINETUNE_TASKS}: "
    "CoNLL-2000 chunking (dev = its test file), UD English EWT UPOS tagging "
    "(train/dev files), SST-2.",
)
flags.DEFINE_list("seeds", ["1", "2", "3"], "Fine-tuning seeds.")
flags.DEFINE_string("output_dir", "docs/compare", "results.md, results.json, the plot.")
flags.DEFINE_string("work_dir", "runs/compare", "Checkpoints and fine-tuning runs.")
# Data.
flags.DEFINE_string("data_dir", "runs/compare_data", "Vocabulary and TFRecords (built once).")
flags.DEFINE_list(
    "corpus_files",
    ["/work/shared/data/pretrain_en_wikipedia/wiki_en_000.txt.gz"],
    "Pre-training corpus files (one sentence/paragraph a line, blank lines between documents).",
)
flags.DEFINE_integer("vocab_size", 8192, "WordPiece vocabulary size to learn.")
flags.DEFINE_integer("vocab_max_lines", 40000, "Lines the vocabulary is learned from.")
flags.DEFINE_string(
    "downstream_dir", "/work/shared/data", "Holds conll2000_chunking/, ud_english_ewt/ and glue/."
)
# Pre-training (shared by every variant).
flags.DEFINE_string("model_size", "small", "--model_size of run_pretraining.")
flags.DEFINE_string(
    "model_hparam_overrides",
    '{"hidden_size": 128, "num_hidden_layers": 2}',
    "--model_hparam_overrides of run_pretraining.",
)
flags.DEFINE_integer("embedding_size", None, "--embedding_size of run_pretraining.")
flags.DEFINE_integer("max_seq_length", 128, "Pre-training sequence length.")
flags.DEFINE_integer("train_batch_size", 32, "Pre-training batch.")
flags.DEFINE_float("learning_rate", 1e-3, "Pre-training peak learning rate.")
flags.DEFINE_float("warmup_fraction", 0.1, "Warmup steps as a fraction of each run's steps.")
flags.DEFINE_integer("iterations_per_loop", 100, "Pre-training steps per host call.")
flags.DEFINE_list("pretrain_extra_flags", [], "More flags for every pre-training run.")
flags.DEFINE_bool(
    "use_xla",
    None,
    "--use_xla for pre-training and fine-tuning (default: the runners' own, by device).",
)
# Fine-tuning.
flags.DEFINE_integer(
    "finetune_train_examples",
    1000,
    "Training sentences/examples used (the first N; 0: the whole training set).",
)
flags.DEFINE_integer(
    "finetune_dev_examples",
    500,
    "Dev sentences/examples scored (the first N; 0: the whole dev set).",
)
flags.DEFINE_float("finetune_epochs", 2.0, "Fine-tuning epochs.")
flags.DEFINE_float("finetune_learning_rate", 3e-4, "Fine-tuning learning rate.")
flags.DEFINE_integer("finetune_max_seq_length", 64, "Fine-tuning sequence length.")
flags.DEFINE_integer("finetune_batch_size", 32, "Fine-tuning batch.")
flags.DEFINE_list("finetune_extra_flags", [], "More flags for every fine-tuning run.")


def _run(command, log_path):
    """Runs a subprocess, its output appended to log_path; raises with the log's tail."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    logging.info("$ %s", " ".join(command))
    start = time.time()
    with open(log_path, "a") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        code = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT)
    if code:
        with open(log_path) as log:
            tail = "".join(log.readlines()[-30:])
        raise RuntimeError(f"Command failed ({code}); log {log_path}:\n{tail}")
    return time.time() - start


def _module(name):
    return [sys.executable, "-m", name]


# --------------------------------------------------------------------- data


def prepare_pretraining_data():
    data_dir = FLAGS.data_dir
    vocab = os.path.join(data_dir, VOCAB_FILE)
    records = os.path.join(data_dir, "tfrecords")
    corpus = os.path.join(data_dir, "corpus")
    os.makedirs(corpus, exist_ok=True)
    for path in FLAGS.corpus_files:
        link = os.path.join(corpus, os.path.basename(path))
        if not os.path.exists(link):
            os.symlink(os.path.abspath(path), link)
    log = os.path.join(FLAGS.work_dir, "logs", "data.log")
    if not os.path.exists(vocab):
        _run(
            _module("electra_tf.build_vocab")
            + [
                f"--input_files={','.join(os.path.join(corpus, os.path.basename(p)) for p in FLAGS.corpus_files)}",
                f"--vocab_file={vocab}",
                f"--vocab_size={FLAGS.vocab_size}",
                f"--max_lines={FLAGS.vocab_max_lines}",
            ],
            log,
        )
    if not os.path.exists(os.path.join(records, DATASET_INFO_FILE)):
        _run(
            _module("electra_tf.build_pretraining_dataset")
            + [
                f"--corpus_dir={corpus}",
                f"--vocab_file={vocab}",
                f"--output_dir={records}",
                f"--max_seq_length={FLAGS.max_seq_length}",
                "--num_out_files=4",
            ],
            log,
        )
    return vocab, os.path.join(records, SHARD_PREFIX + "*")


def _first(items, count):
    """The first `count` items; all of them when count is 0."""
    return items if count == 0 else items[:count]


def write_tagging_file(sentences, path):
    """Writes sentences (conll.Sentence) as the word<TAB>tag CoNLL file run_finetuning reads."""
    with open(path, "w", encoding="utf-8") as f:
        for sentence in sentences:
            for word, tag in zip(sentence.words, sentence.labels):
                if not word or any(c.isspace() for c in word):
                    raise ValueError(
                        f"{sentence.path}: the word {word!r} is empty or holds "
                        "whitespace, which a CoNLL column cannot carry"
                    )
                f.write(f"{word}\t{tag}\n")
            f.write("\n")


# Tagging tasks: (run_finetuning task, folder under --downstream_dir, train file, dev file).
# CoNLL-2000 has no dev split: its test file is the dev set. UD files are CoNLL-U (FORM, UPOS;
# conll.read_conll skips multiword-token ranges and empty nodes).
TAGGING_SOURCES = {
    "chunk": ("chunk", "conll2000_chunking", "train.txt", "test.txt"),
    "pos": ("pos", "ud_english_ewt", "en_ewt-ud-train.conllu.gz", "en_ewt-ud-dev.conllu.gz"),
}


def prepare_finetuning_data(task):
    """The task's train/dev sets (or their first N examples) written once; run_finetuning flags."""
    from electra_tf.finetuning.settings import parse_flag_strings  # pylint: disable=import-outside-toplevel

    # A typo in --finetune_extra_flags fails here, before any pre-training.
    parse_flag_strings(FLAGS.finetune_extra_flags)
    out = os.path.join(
        FLAGS.work_dir,
        f"finetune_data_{task}_{FLAGS.finetune_train_examples}_{FLAGS.finetune_dev_examples}",
    )
    os.makedirs(out, exist_ok=True)
    counts = {"train": FLAGS.finetune_train_examples, "dev": FLAGS.finetune_dev_examples}
    if task in TAGGING_SOURCES:
        task_name, folder, *files = TAGGING_SOURCES[task]
        targets = {split: os.path.join(out, f"{split}.txt") for split in counts}
        for (split, target), source in zip(targets.items(), files):
            if not os.path.exists(target):
                sentences = conll.read_conll(os.path.join(FLAGS.downstream_dir, folder, source))
                write_tagging_file(_first(sentences, counts[split]), target + ".tmp")
                os.replace(target + ".tmp", target)
        return [
            f"--task_name={task_name}",
            f"--train_file={targets['train']}",
            f"--dev_file={targets['dev']}",
        ]
    source = os.path.join(FLAGS.downstream_dir, "glue", "SST-2")
    for split, count in counts.items():
        target = os.path.join(out, f"{split}.tsv")
        if not os.path.exists(target):
            with open(os.path.join(source, f"{split}.tsv")) as f:
                header, *examples = f.readlines()
            with open(target, "w") as f:
                f.writelines([header] + _first(examples, count))
    return ["--task_name=sst-2", f"--data_dir={out}"]


# --------------------------------------------------------------------- pre-training


def variant_flags(name):
    table = dict(VARIANTS)
    table.update(json.loads(FLAGS.variant_flags))
    if name not in table:
        raise app.UsageError(f"--variants: unknown variant {name!r}; known: {sorted(table)}")
    return list(table[name])


def discriminator_config(vocab_size):
    """The discriminator configuration every variant's pre-training builds from the flags."""
    return _settings(RANDOM_INIT).model_configs(vocab_size)[0]


def write_random_init_discriminator(config, vocab, directory, seed=0):
    """An untrained discriminator of `config` saved the way run_pretraining saves a trained one."""
    import keras

    from electra_tf.model.encoder import ElectraEncoder

    keras.utils.set_random_seed(seed)
    encoder = ElectraEncoder(config)
    encoder(encoder.dummy_inputs())
    staging = files.temporary_dir_beside(directory)
    encoder.save_pretrained(staging)
    shutil.copy(vocab, os.path.join(staging, VOCAB_FILE))
    files.replace_dir(staging, directory)


def variant_flops(name, vocab_size):
    """FLOPs accounting of one variant, from the settings its pre-training gets."""
    settings = _settings(name)
    discriminator, generator = settings.model_configs(vocab_size)
    training = settings.generator_training

    def accounting(num_train_steps):
        return flops_lib.variant_train_flops(
            discriminator,
            generator,
            seq_length=settings.max_seq_length,
            batch_size=settings.train_batch_size,
            max_predictions=settings.max_predictions,
            objective=settings.objective,
            generator_training=training,
            uniform_generator=settings.uniform_generator,
            embedding_sharing=model_lib.resolve_embedding_sharing(
                settings.embedding_sharing,
                settings.untied_generator_embeddings,
                settings.untied_generator,
            ),
            two_stage_switch_step=two_stage.switch_step(
                settings.two_stage_generator_fraction, num_train_steps
            ),
        )

    # two_stage's stages cost differently and the switch depends on the total:
    # find the smallest total whose cumulative FLOPs reach the budget.
    steps = accounting(1).steps_for(FLAGS.flops_budget)
    while (
        training == "two_stage"
        and accounting(steps).cumulative(steps) > FLAGS.flops_budget
        and steps > 1
    ):
        steps -= 1
    while accounting(steps).cumulative(steps) < FLAGS.flops_budget:
        steps += 1
    return accounting(steps), steps


def _xla_flags():
    """--use_xla for the runners when set here; else they pick it by device."""
    return [] if FLAGS.use_xla is None else [f"--use_xla={str(FLAGS.use_xla).lower()}"]


def _latest_step(model_dir):
    state = os.path.join(model_dir, "checkpoint")
    if not os.path.exists(state):
        return 0
    with open(state) as f:
        first = f.readline()
    return int(first.strip().split("ckpt-")[-1].rstrip('"'))


def _settings(name, *args):
    """Variant `name`'s PretrainingSettings: `args`, the shared flags, its own, the extra ones."""
    args = [
        *args,
        f"--model_size={FLAGS.model_size}",
        f"--model_hparam_overrides={FLAGS.model_hparam_overrides}",
        f"--max_seq_length={FLAGS.max_seq_length}",
        f"--train_batch_size={FLAGS.train_batch_size}",
        f"--learning_rate={FLAGS.learning_rate}",
        f"--iterations_per_loop={FLAGS.iterations_per_loop}",
        *_xla_flags(),
    ]
    if FLAGS.embedding_size is not None:
        args.append(f"--embedding_size={FLAGS.embedding_size}")
    args += variant_flags(name) + list(FLAGS.pretrain_extra_flags)
    try:
        return PretrainingSettings.from_flags(args)
    except SettingsError as e:
        raise app.UsageError(f"variant {name}: {e}") from e


def pretraining_settings(name, vocab, records, model_dir, total_steps):
    """The settings of variant `name`'s pre-training run of `total_steps` steps."""
    return _settings(
        name,
        f"--pretrain_tfrecords={records}",
        f"--vocab_file={vocab}",
        f"--model_dir={model_dir}",
        f"--num_train_steps={total_steps}",
        f"--num_warmup_steps={int(FLAGS.warmup_fraction * total_steps)}",
        f"--save_checkpoints_steps={total_steps + 1}",
        "--keep_checkpoint_max=2",
    )


def _pretrain_segment(settings, log_path):
    """One in-process pre-training call, its log lines also appended to log_path; seconds taken."""
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    start = time.time()
    with runner.log_lines_to(log_path):
        electra_tf.pretrain(settings)
    return time.time() - start


def _random_init(vocab, vocab_size):
    """The random_init variant: one 0-FLOPs point, a freshly initialized discriminator."""
    snapshot = os.path.join(FLAGS.work_dir, RANDOM_INIT, "point_0", DISCRIMINATOR_DIR)
    if not os.path.exists(os.path.join(snapshot, CONFIG_FILE)):
        os.makedirs(os.path.dirname(snapshot), exist_ok=True)
        write_random_init_discriminator(discriminator_config(vocab_size), vocab, snapshot)
    point = {"point": 0, "step": 0, "flops": 0.0, "discriminator": snapshot}
    return {
        "total_steps": 0,
        "flops_per_step": 0.0,
        "points": [{**point, "segment_seconds": None}],
    }


def pretrain(name, vocab, records):
    vocab_size = sum(1 for _ in open(vocab))
    if name == RANDOM_INIT:
        return _random_init(vocab, vocab_size)
    accounting, total_steps = variant_flops(name, vocab_size)
    model_dir = os.path.join(FLAGS.work_dir, name, "pretrain")
    log = os.path.join(FLAGS.work_dir, "logs", f"pretrain_{name}.log")
    settings = pretraining_settings(name, vocab, records, model_dir, total_steps)
    points = []
    for k in range(1, FLAGS.num_points + 1):
        target = min(total_steps, accounting.steps_for(FLAGS.flops_budget * k / FLAGS.num_points))
        snapshot = os.path.join(FLAGS.work_dir, name, f"point_{k}", DISCRIMINATOR_DIR)
        seconds = None
        if not os.path.exists(os.path.join(snapshot, CONFIG_FILE)):
            current = _latest_step(model_dir)
            if current < target:
                seconds = _pretrain_segment(
                    dataclasses.replace(settings, max_train_steps_this_run=target - current), log
                )
            reached = _latest_step(model_dir)
            if reached != target:
                raise RuntimeError(
                    f"{name}: pre-training stopped at step {reached}, expected {target} (see {log})"
                )
            staging = files.temporary_dir_beside(snapshot)
            shutil.copytree(os.path.join(model_dir, DISCRIMINATOR_DIR), staging, dirs_exist_ok=True)
            files.replace_dir(staging, snapshot)
        points.append(
            {
                "point": k,
                "step": target,
                "flops": accounting.cumulative(target),
                "discriminator": snapshot,
                "segment_seconds": seconds,
            }
        )
        logging.info(
            "%s: point %d at step %d/%d, %s FLOPs",
            name,
            k,
            target,
            total_steps,
            flops_lib.describe(accounting.cumulative(target)),
        )
    return {"total_steps": total_steps, "flops_per_step": accounting.per_step, "points": points}


# --------------------------------------------------------------------- fine-tuning


def finetune(name, point, task, data_flags):
    """Fine-tunes one snapshot on one task in this process (resumable: a finished run is read)."""
    import electra_tf  # pylint: disable=import-outside-toplevel
    from electra_tf.finetuning.settings import parse_flag_strings  # pylint: disable=import-outside-toplevel

    model_dir = os.path.join(FLAGS.work_dir, name, f"point_{point['point']}", f"finetune_{task}")
    results_path = os.path.join(model_dir, RESULTS_FILE)
    if os.path.exists(results_path):
        with open(results_path) as f:
            return json.load(f)
    values = parse_flag_strings(data_flags)
    values.update(
        init_checkpoint=point["discriminator"],
        model_dir=model_dir,
        seeds=FLAGS.seeds,
        max_seq_length=FLAGS.finetune_max_seq_length,
        learning_rate=FLAGS.finetune_learning_rate,
        num_train_epochs=FLAGS.finetune_epochs,
        train_batch_size=FLAGS.finetune_batch_size,
    )
    if FLAGS.use_xla is not None:
        values["use_xla"] = FLAGS.use_xla
    values.update(parse_flag_strings(FLAGS.finetune_extra_flags))
    logging.info("Fine-tuning %s point %d on %s in %s", name, point["point"], task, model_dir)
    # A partial model_dir resumes (fine-tuning checkpoints each seed).
    results = electra_tf.finetune(electra_tf.FinetuningSettings(**values))
    if results.get("stopped_on_request"):
        logging.info("Stopped on request in %s: the same command resumes.", model_dir)
        sys.exit(0)
    return results


# --------------------------------------------------------------------- report


def _count(n):
    return "all" if n == 0 else f"the first {n}"


def final_rows(rows, task):
    """Each variant's row at its full budget (random_init's only row) for one task."""
    last = {}
    for r in rows:
        if r["task"] == task and r["point"] >= last.get(r["variant"], {"point": -1})["point"]:
            last[r["variant"]] = r
    return last


def write_report(rows, metrics, wall_seconds):
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    with open(os.path.join(FLAGS.output_dir, "results.json"), "w") as f:
        json.dump(
            {
                "flags": {
                    name: FLAGS[name].value
                    for name in (
                        "variants",
                        "variant_flags",
                        "flops_budget",
                        "num_points",
                        "finetune_tasks",
                        "seeds",
                        "model_size",
                        "model_hparam_overrides",
                        "max_seq_length",
                        "train_batch_size",
                        "learning_rate",
                        "warmup_fraction",
                        "embedding_size",
                        "pretrain_extra_flags",
                        "finetune_train_examples",
                        "finetune_dev_examples",
                        "finetune_epochs",
                        "finetune_learning_rate",
                        "finetune_max_seq_length",
                        "finetune_batch_size",
                        "finetune_extra_flags",
                    )
                },
                "metrics": metrics,
                "rows": rows,
                "wall_seconds": wall_seconds,
            },
            f,
            indent=2,
        )
    lines = [
        f"# Compute-matched comparison: {', '.join(FLAGS.variants)}",
        "",
        f"Downstream: {', '.join(f'{t} ({m})' for t, m in metrics.items())}; "
        f"{_count(FLAGS.finetune_train_examples)} training examples, "
        f"{_count(FLAGS.finetune_dev_examples)} dev examples (chunk: CoNLL-2000 test.txt; pos: "
        f"UD EWT dev), {FLAGS.finetune_epochs:g} epochs, lr {FLAGS.finetune_learning_rate:g}, "
        f"seq {FLAGS.finetune_max_seq_length}, batch {FLAGS.finetune_batch_size}, best epoch; "
        f"seeds {','.join(FLAGS.seeds)}"
        + (
            f"; also {' '.join(FLAGS.finetune_extra_flags)}." if FLAGS.finetune_extra_flags else "."
        ),
        f"Pre-training: {FLAGS.model_size} with {FLAGS.model_hparam_overrides}, seq "
        f"{FLAGS.max_seq_length}, batch {FLAGS.train_batch_size}, lr {FLAGS.learning_rate:g}, "
        f"budget {FLAGS.flops_budget:.3g} FLOPs per variant (forward + backward = 3x forward, "
        "generator included; see electra_tf/pretraining/flops.py). Each variant's LR schedule "
        "spans its whole budget, so earlier points are mid-schedule checkpoints. "
        f"{RANDOM_INIT} is not pre-trained (0 FLOPs): an untrained discriminator of the same "
        "configuration and vocabulary.",
    ]
    for task, metric in metrics.items():
        lines += [
            "",
            f"## {task} ({metric})",
            "",
            "| variant | pre-training FLOPs | steps | median | std | scores (seeds "
            f"{','.join(FLAGS.seeds)}) |",
            "|---|---|---|---|---|---|",
        ]
        for r in (r for r in rows if r["task"] == task):
            lines.append(
                f"| {r['variant']} | {r['flops']:.3e} | {r['step']} | "
                f"{r['median']:.4f} | {r['std']:.4f} | "
                f"{', '.join(f'{s:.4f}' for s in r['scores'])} |"
            )
        lines += ["", "At the full budget (median ± std over seeds):"]
        for name, r in sorted(final_rows(rows, task).items(), key=lambda kv: -kv[1]["median"]):
            lines.append(f"- {name}: {r['median']:.4f} ± {r['std']:.4f}")
    lines += [
        "",
        f"Wall time: {wall_seconds / 60:.1f} min. Raw numbers: results.json; "
        "plot: score_vs_flops.png.",
        "",
    ]
    with open(os.path.join(FLAGS.output_dir, "results.md"), "w") as f:
        f.write("\n".join(lines))
    plot(rows, metrics)


def plot(rows, metrics):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(6 * len(metrics), 4), squeeze=False)
    for ax, (task, metric) in zip(axes[0], metrics.items()):
        for name in FLAGS.variants:
            points = sorted(
                (r for r in rows if r["variant"] == name and r["task"] == task),
                key=lambda r: r["flops"],
            )
            if not points:
                continue
            if name == RANDOM_INIT:
                # 0 FLOPs has no place on a log axis: the baseline is a band across it.
                r = points[0]
                line = ax.axhline(
                    r["median"], color="gray", linestyle="--", label=f"{name} (0 FLOPs)"
                )
                ax.axhspan(
                    r["median"] - r["std"],
                    r["median"] + r["std"],
                    color=line.get_color(),
                    alpha=0.15,
                )
                continue
            ax.errorbar(
                [r["flops"] for r in points],
                [r["median"] for r in points],
                yerr=[r["std"] for r in points],
                marker="o",
                capsize=3,
                label=name,
            )
        ax.set_xscale("log")
        ax.set_xlabel("pre-training FLOPs")
        ax.set_ylabel(f"{task} dev {metric} (median over seeds)")
        ax.set_title(f"{task}: score vs. pre-training compute")
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(FLAGS.output_dir, "score_vs_flops.png"), dpi=120)
    plt.close(fig)


def main(argv):
    del argv
    start = time.time()
    if FLAGS.num_points < 1 or FLAGS.flops_budget <= 0:
        raise app.UsageError("--num_points and --flops_budget must be positive")
    if FLAGS.finetune_train_examples < 0 or FLAGS.finetune_dev_examples < 0:
        raise app.UsageError(
            "--finetune_train_examples/--finetune_dev_examples: a count "
            "(0: the whole set), not negative"
        )
    unknown = [t for t in FLAGS.finetune_tasks if t not in FINETUNE_TASKS]
    if unknown or not FLAGS.finetune_tasks:
        raise app.UsageError(f"--finetune_tasks: unknown {unknown}; choose from {FINETUNE_TASKS}")
    for name in FLAGS.variants:
        variant_flags(name)
    vocab, records = prepare_pretraining_data()
    data_flags = {task: prepare_finetuning_data(task) for task in FLAGS.finetune_tasks}
    rows, metrics = [], {}
    # Each variant is fine-tuned as soon as it is pre-trained, and the report rewritten after
    # every fine-tuning run, so a run stopped early leaves every finished result behind.
    for name in FLAGS.variants:
        for point in pretrain(name, vocab, records)["points"]:
            for task in FLAGS.finetune_tasks:
                result = finetune(name, point, task, data_flags[task])
                metrics[task] = result["metric"]
                scores = [float(s) for s in result["scores"].values()]
                rows.append(
                    {
                        "variant": name,
                        "task": task,
                        "point": point["point"],
                        "step": point["step"],
                        "flops": point["flops"],
                        "median": float(statistics.median(scores)),
                        "std": float(statistics.pstdev(scores)) if len(scores) > 1 else 0.0,
                        "scores": scores,
                        "seeds": list(result["scores"]),
                        "majority_baseline": result.get("majority_baseline"),
                        "finetune_steps": result.get("steps"),
                    }
                )
                write_report(rows, metrics, time.time() - start)
    logging.info("Wrote %s", os.path.join(FLAGS.output_dir, "results.md"))
    finals = {
        task: {name: r["median"] for name, r in final_rows(rows, task).items()} for task in metrics
    }
    logging.info("Full-budget medians: %s", finals)
    if not all(math.isfinite(v) for medians in finals.values() for v in medians.values()):
        raise SystemExit("A score is not finite")


if __name__ == "__main__":
    app.run(main)
