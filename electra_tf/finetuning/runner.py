"""electra_tf.finetune: fine-tunes a pre-trained discriminator in this process.

Each seed trains one model: the dev set is scored after every epoch, the best
checkpoint (by the task metric) is kept in <model_dir>/seed_<seed>/best, and its
predictions on the dev (and test) files are written beside it.
<model_dir>/results.json holds the per-seed scores with their median, mean and
standard deviation; finetune() returns the same dict.
"""

import json
import math
import os
import statistics
import time
import weakref

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from electra_tf.convert.load import copy_encoder_weights, load_encoder
from electra_tf.data import tokenization
from electra_tf.filenames import (
    BEST_CHECKPOINT_DIR,
    BEST_CHECKPOINT_PREFIX,
    CONFIG_FILE,
    FINETUNING_SETTINGS_FILE,
    LABEL_MAP_FILE,
    RESULTS_FILE,
    SEED_DIR_PREFIX,
    VOCAB_FILE,
)
from electra_tf.finetuning.models import check_vocab_size
from electra_tf.finetuning.settings import FinetuningSettings, SettingsError
from electra_tf.finetuning.tasks import INPUT_KEYS, TaskData, load_task
from electra_tf.training import distribute, setup
from electra_tf.training.optimization import layerwise_lr_multipliers
from electra_tf.training.trainer import accumulation_batches

_PREDICT_FNS = weakref.WeakKeyDictionary()


def predict(model, arrays, batch_size, jit_compile):
    """Model outputs for every row, in order (numpy; dict for QA)."""
    call = _PREDICT_FNS.get(model)
    if call is None:  # one traced (and compiled) function per model, reused every epoch
        call = tf.function(
            lambda features: model(features, training=False), jit_compile=jit_compile
        )
        _PREDICT_FNS[model] = call
    n = len(arrays["input_ids"])
    chunks = []
    for start in range(0, n, batch_size):
        batch = {k: arrays[k][start : start + batch_size] for k in INPUT_KEYS}
        rows = len(batch["input_ids"])
        if rows < batch_size:  # pad to one shape: a single compilation
            batch = {
                k: np.concatenate([v, np.zeros((batch_size - rows,) + v.shape[1:], v.dtype)])
                for k, v in batch.items()
            }
        out = call({k: tf.constant(v) for k, v in batch.items()})
        chunks.append(tf.nest.map_structure(lambda t, rows=rows: t.numpy()[:rows], out))
    return tf.nest.map_structure(lambda *parts: np.concatenate(parts), *chunks)


def _train_dataset(arrays, micro_batch, accumulation, seed):
    def dataset_fn(input_context):
        dataset = tf.data.Dataset.from_tensor_slices(arrays)
        if input_context.num_input_pipelines > 1:
            dataset = dataset.shard(
                input_context.num_input_pipelines, input_context.input_pipeline_id
            )
        dataset = dataset.shuffle(
            len(arrays["input_ids"]), seed=seed, reshuffle_each_iteration=True
        ).repeat()
        dataset = dataset.batch(micro_batch, drop_remainder=True)
        return accumulation_batches(dataset, accumulation).prefetch(tf.data.AUTOTUNE)

    return dataset_fn


def train_steps_for(settings: FinetuningSettings, num_examples):
    """(total optimizer steps, the steps after which the dev set is scored: each epoch's end)."""
    epochs = settings.num_train_epochs
    exact = epochs * num_examples / settings.train_batch_size
    total = max(1, int(exact))
    if settings.max_train_steps is not None:
        total = min(total, settings.max_train_steps)
    per_epoch = exact / epochs
    points = {
        min(total, max(1, int(round(k * per_epoch)))) for k in range(1, math.ceil(epochs) + 1)
    }
    return total, sorted(points | {total})


def set_up_training(settings: FinetuningSettings, strategy, data, pretrained, steps, seed):
    """Micro-batch, model, schedule, optimizer and Trainer for one seed (finetune() sets the
    precision policy once for all seeds).

    Returns (trainer, micro_batch). The model starts from the pre-trained encoder.
    """
    try:
        micro_batch = setup.micro_batch_size(
            strategy, settings.train_batch_size, settings.gradient_accumulation_steps
        )
    except setup.SetupError as e:
        raise SettingsError(str(e)) from e
    config = pretrained.config
    keras.utils.set_random_seed(seed)
    with strategy.scope():
        model = data.make_model(config)
        model.build()
        copy_encoder_weights(pretrained, model.encoder)
        model.encoder.trainable = not settings.freeze_encoder
        variables = model.trainable_variables
        multipliers = None
        if settings.layerwise_lr_decay > 0:
            multipliers = layerwise_lr_multipliers(
                [v.path for v in variables],
                config.num_hidden_layers,
                settings.layerwise_lr_decay,
                original_off_by_one=settings.layerwise_lr_decay_original_off_by_one,
            )
        optimizer = setup.build_optimizer(
            variables,
            learning_rate=settings.learning_rate,
            num_train_steps=steps,
            num_warmup_steps=int(settings.warmup_proportion * steps),
            weight_decay_rate=settings.weight_decay_rate,
            lr_multipliers=multipliers,
        )
        trainer = setup.build_trainer(
            strategy, model, optimizer, seed=seed, use_xla=settings.use_xla
        )
    return trainer, micro_batch


def _train_until(trainer, iterator, stop, settings, seed, num_train_steps, writer):
    """Trains to step `stop` in loops of iterations_per_loop steps, logging each loop."""
    while trainer.step < stop:
        steps = min(settings.iterations_per_loop, stop - trainer.step)
        sums = trainer.train(iterator, steps)
        logging.info(
            "seed %d step %d/%d | loss %.4f | grad_norm %.3f | lr %.2e",
            seed,
            trainer.step,
            num_train_steps,
            sums["loss"] / steps,
            sums["grad_norm"] / steps,
            float(trainer.optimizer.learning_rate),
        )
        with writer.as_default(step=trainer.step):
            tf.summary.scalar("loss", sums["loss"] / steps)


def _score_dev(trainer, data: TaskData, settings, seed, writer):
    scores = data.dev.score(
        predict(trainer.model, data.dev.arrays, settings.eval_batch_size, trainer.jit_compile)
    )
    score = float(scores[data.metric])
    logging.info(
        "seed %d step %d dev %s %.4f (%s)",
        seed,
        trainer.step,
        data.metric,
        score,
        ", ".join(f"{k} {v:.4f}" for k, v in scores.items()),
    )
    with writer.as_default(step=trainer.step):
        tf.summary.scalar(f"dev_{data.metric}", score)
    return score, {k: float(v) for k, v in scores.items()}


def run_seed(settings, seed, data: TaskData, pretrained, strategy) -> dict:
    """Trains one model, keeps its best dev checkpoint and writes its predictions."""
    seed_dir = os.path.join(settings.model_dir, f"{SEED_DIR_PREFIX}{seed}")
    tf.io.gfile.makedirs(seed_dir)
    num_examples = len(data.train["input_ids"])
    num_train_steps, eval_points = train_steps_for(settings, num_examples)
    trainer, micro_batch = set_up_training(
        settings, strategy, data, pretrained, num_train_steps, seed
    )
    iterator = iter(
        strategy.distribute_datasets_from_function(
            _train_dataset(data.train, micro_batch, settings.gradient_accumulation_steps, seed)
        )
    )
    best_prefix = os.path.join(seed_dir, BEST_CHECKPOINT_DIR, BEST_CHECKPOINT_PREFIX)
    model_checkpoint = tf.train.Checkpoint(model=trainer.model)
    chief = distribute.is_chief(strategy)
    writer = tf.summary.create_file_writer(seed_dir) if chief else tf.summary.create_noop_writer()
    logging.info(
        "Seed %d: %d training inputs, %d steps, dev scored at steps %s, global batch %d.",
        seed,
        num_examples,
        num_train_steps,
        eval_points,
        settings.train_batch_size,
    )
    best, history = None, []
    start = time.time()
    while trainer.step < num_train_steps:
        next_eval = min(p for p in eval_points if p > trainer.step)
        _train_until(trainer, iterator, next_eval, settings, seed, num_train_steps, writer)
        score, scores = _score_dev(trainer, data, settings, seed, writer)
        history.append({"step": trainer.step, **scores})
        if best is None or score > best["score"] or math.isnan(best["score"]):
            best = {"score": score, "step": trainer.step, "dev": scores}
            if chief:
                model_checkpoint.write(best_prefix)
    writer.flush()
    wall = time.time() - start
    model_checkpoint.read(best_prefix).assert_existing_objects_matched()
    logging.info(
        "seed %d: best dev %s %.4f at step %d", seed, data.metric, best["score"], best["step"]
    )
    result = {
        "seed": seed,
        "score": best["score"],
        "best_step": best["step"],
        "dev": best["dev"],
        "history": history,
        "steps": trainer.step,
        "train_wall_time_seconds": wall,
    }
    result.update(_write_predictions(trainer, data, settings, seed_dir, chief))
    return result


def _write_predictions(trainer, data: TaskData, settings, seed_dir, chief) -> dict:
    """The best model's dev (and test) predictions; their paths and the test scores."""
    written = {}
    for eval_set in (data.dev, data.test):
        if eval_set is None:
            continue
        outputs = predict(
            trainer.model, eval_set.arrays, settings.eval_batch_size, trainer.jit_compile
        )
        path = os.path.join(seed_dir, f"{eval_set.name}_predictions.{eval_set.suffix}")
        if chief:
            eval_set.write(outputs, path)
        written[f"{eval_set.name}_predictions"] = path
        if eval_set.name == "test" and eval_set.score is not None:
            written["test"] = {k: float(v) for k, v in eval_set.score(outputs).items()}
    return written


def summarize(settings, metric, per_seed, baseline, wall_time) -> dict:
    """results.json's content: the per-seed scores and their median, mean and std."""
    scores = [r["score"] for r in per_seed]
    return {
        "task": settings.task_name,
        "metric": metric,
        "model_dir": settings.model_dir,
        "scores": {str(r["seed"]): r["score"] for r in per_seed},
        "median": float(statistics.median(scores)),
        "mean": float(statistics.fmean(scores)),
        "std": float(statistics.pstdev(scores)) if len(scores) > 1 else 0.0,
        "majority_baseline": baseline,
        "steps": per_seed[0]["steps"],
        "wall_time_seconds": wall_time,
        "per_seed": per_seed,
    }


def write_export_metadata(settings: FinetuningSettings, data: TaskData, config):
    """What electra_tf.export needs beside the checkpoints of this run, and the settings."""
    model_dir = settings.model_dir
    config.save(os.path.join(model_dir, CONFIG_FILE))
    tf.io.gfile.copy(settings.vocab_file, os.path.join(model_dir, VOCAB_FILE), overwrite=True)
    if data.labels is not None:
        with tf.io.gfile.GFile(os.path.join(model_dir, LABEL_MAP_FILE), "w") as f:
            f.write(json.dumps({"labels": data.labels}, indent=1, ensure_ascii=False) + "\n")
    settings.save(os.path.join(model_dir, FINETUNING_SETTINGS_FILE))


def _load_pretrained(settings: FinetuningSettings):
    """(the pre-trained encoder, the settings with its vocab and casing filled in)."""
    pretrained = load_encoder(settings.init_checkpoint)
    logging.info(
        "Fine-tuning from %s (%s format).", pretrained.source.checkpoint, pretrained.format
    )
    do_lower_case = settings.do_lower_case
    if do_lower_case is None:
        do_lower_case = True if pretrained.do_lower_case is None else pretrained.do_lower_case
    elif pretrained.do_lower_case not in (None, do_lower_case):
        logging.warning(
            "do_lower_case=%s but %s says %s.",
            do_lower_case,
            settings.init_checkpoint,
            pretrained.do_lower_case,
        )
    settings = settings.replace(
        vocab_file=settings.vocab_file or pretrained.vocab_file, do_lower_case=do_lower_case
    )
    config = pretrained.config
    check_vocab_size(config.vocab_size, settings.vocab_file, settings.init_checkpoint)
    if settings.max_seq_length > config.max_position_embeddings:
        raise SettingsError(
            f"--max_seq_length: {settings.max_seq_length} exceeds the model's "
            f"max_position_embeddings ({config.max_position_embeddings})"
        )
    return pretrained, settings


def _load_data(settings: FinetuningSettings) -> TaskData:
    tokenizer = tokenization.FullTokenizer(
        settings.vocab_file, do_lower_case=settings.do_lower_case
    )
    data = load_task(settings, tokenizer)
    logging.info(
        "Task %s: %d training inputs, dev %s, metric %s (majority baseline %s).",
        settings.task_name,
        len(data.train["input_ids"]),
        data.dev.path,
        data.metric,
        data.baseline,
    )
    return data


def _write_results(settings, results):
    path = os.path.join(settings.model_dir, RESULTS_FILE)
    with tf.io.gfile.GFile(path, "w") as f:
        f.write(json.dumps(results, indent=2) + "\n")
    logging.info(
        "%s %s over %d seed(s): median %.4f, mean %.4f, std %.4f -> %s",
        results["task"],
        results["metric"],
        len(results["per_seed"]),
        results["median"],
        results["mean"],
        results["std"],
        path,
    )


def finetune(settings: FinetuningSettings) -> dict:
    """Fine-tunes settings.init_checkpoint on the task, one model per seed; returns the results.

    The result is what <model_dir>/results.json holds: "task", "metric", "model_dir",
    "scores" (seed -> best dev score), "median", "mean", "std", "majority_baseline",
    "steps" and "per_seed" (best step, dev metrics, history, prediction files).
    Raises SettingsError (naming the setting), InputError, conll.ConllFormatError,
    glue.DataFormatError or models.EncoderMismatchError on bad input, before training.

    Example:

    ```python
    import electra_tf

    result = electra_tf.finetune(
        electra_tf.FinetuningSettings(
            task_name="chunk",
            data_dir="conll2000_chunking",  # train.txt, test.txt
            init_checkpoint="electra-small-discriminator",  # any format load_encoder reads
            model_dir="runs/chunk",
            num_train_epochs=1,
        )
    )
    print(result["metric"], result["scores"], result["per_seed"][0]["best_step"])
    ```
    """
    run_start = time.time()
    settings.check_files()
    # First TF work: multi-worker collectives must be configured before the runtime starts.
    try:
        strategy = setup.create_strategy(
            settings.distribution_strategy, settings.tpu, settings.num_gpus
        )
    except setup.SetupError as e:
        raise SettingsError(str(e)) from e
    pretrained, settings = _load_pretrained(settings)
    data = _load_data(settings)
    tf.io.gfile.makedirs(settings.model_dir)
    if distribute.is_chief(strategy):
        write_export_metadata(settings, data, pretrained.config)
    policy = keras.mixed_precision.dtype_policy()
    setup.set_precision(settings.mixed_precision)
    setup.quiet_checkpoint_timings()
    try:
        per_seed = [
            run_seed(settings, seed, data, pretrained.encoder, strategy) for seed in settings.seeds
        ]
    finally:  # an in-process caller keeps its own precision policy
        keras.mixed_precision.set_dtype_policy(policy)
    results = summarize(settings, data.metric, per_seed, data.baseline, time.time() - run_start)
    if distribute.is_chief(strategy):
        _write_results(settings, results)
    return results
