"""electra_tf.finetune: fine-tunes a pre-trained discriminator in this process.

Each seed trains one model: the dev set is scored after every epoch, the best
checkpoint (by the task metric) is kept in <model_dir>/seed_<seed>/best, and its
predictions on the dev (and test) files are written beside it.
<model_dir>/results.json holds the per-seed scores with their median, mean and
standard deviation; finetune() returns the same dict.

Like pre-training, a seed checkpoints (weights, optimizer slots, step, RNG, input
position, dev history and best score) into its folder after every loop, stops
cleanly on SIGTERM/SIGINT (all workers after the same step), and the same command
resumes it; a seed whose results.json is written is not trained again.
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

from electra_tf import files
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
from electra_tf.pretraining import checkpoints
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


class WorkerLostError(RuntimeError):
    """A multi-worker fine-tune lost a worker; the message says how to resume."""


# The checkpoint's name for a seed's dev history and best score so far (JSON in a string).
PROGRESS = "progress"


def run_seed(settings, seed, data: TaskData, pretrained, strategy, stop) -> dict | None:
    """Trains one model, keeps its best dev checkpoint and writes its predictions.

    Resumes the seed's last checkpoint; a seed whose results.json holds a result of these
    settings is not trained again. Returns None when a stop request (`stop.requested` on
    any worker) ended the training first; its checkpoint is then saved.
    """
    seed_dir = os.path.join(settings.model_dir, f"{SEED_DIR_PREFIX}{seed}")
    finished = _finished_result(seed_dir, settings)
    if finished is not None:
        logging.info(
            "Seed %d: finished before (%s/%s), not trained again.", seed, seed_dir, RESULTS_FILE
        )
        return finished
    tf.io.gfile.makedirs(seed_dir)
    run = _SeedRun(settings, seed, data, pretrained, strategy, seed_dir)
    try:
        if not run.train(stop):
            return None
        return run.finish()
    except tf.errors.UnavailableError as e:
        # A collective failed (a step's, the stop agreement's or the barrier's): a peer
        # stopped (its heartbeats) or cannot be reached.
        raise WorkerLostError(
            f"Seed {seed} stopped after step {run.trainer.step}: lost contact with another "
            f"worker ({_collective_failure(e)}). Restart every worker with the same command; "
            f"training resumes from the last checkpoint in {seed_dir}."
        ) from e
    finally:
        run.close()


def _collective_failure(error):
    """The line of a failed collective's multi-line message that says which worker failed."""
    lines = [line.strip() for line in error.message.splitlines() if line.strip()]
    for line, following in zip(lines, lines[1:] + [""]):
        if "unhealthy" in line:  # TF names the workers on the next line
            return f"{line} {following}".strip()
    return lines[0] if lines else ""


def _finished_result(seed_dir, settings):
    """The result in seed_dir's results.json when it is a result of these settings, else None."""
    path = os.path.join(seed_dir, RESULTS_FILE)
    if settings.overwrite or not tf.io.gfile.exists(path):
        return None
    try:
        with tf.io.gfile.GFile(path) as f:
            record = json.load(f)
        if record["settings"] != settings.run_identity():
            return None
        return record["result"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
        raise SettingsError(
            f"--model_dir: {path} is not a seed's results file ({type(e).__name__}: {e}). Move "
            "it away to train that seed again, or pass --overwrite to start over"
        ) from None


def _checkpoint_to_resume(seed_dir, settings):
    """The seed's latest checkpoint when it belongs to a run of these settings, else None.

    Another run's checkpoints are there after --overwrite started over with other settings
    and stopped before reaching this seed; the new run's saves replace them.
    """
    if settings.overwrite:
        return None
    latest = checkpoints.latest_checkpoint(seed_dir)
    if latest is None:
        return None
    try:
        saved = tf.train.load_checkpoint(latest).get_tensor(
            f"{PROGRESS}/.ATTRIBUTES/VARIABLE_VALUE"
        )
        identity = json.loads(saved)["settings"]
    except (tf.errors.OpError, ValueError, KeyError, TypeError):
        return latest  # restoring it names the damage
    if identity != settings.run_identity():
        logging.warning("%s is a checkpoint of a run with other settings: starting over.", latest)
        return None
    return latest


class _SeedRun:
    """One seed's training: trainer, input, resumable checkpoints and the best dev checkpoint."""

    def __init__(self, settings, seed, data: TaskData, pretrained, strategy, seed_dir):
        self.settings, self.seed, self.data, self.strategy = settings, seed, data, strategy
        self.seed_dir = seed_dir
        self.chief = distribute.is_chief(strategy)
        num_examples = len(data.train["input_ids"])
        self.num_train_steps, self.eval_points = train_steps_for(settings, num_examples)
        self.trainer, micro_batch = set_up_training(
            settings, strategy, data, pretrained, self.num_train_steps, seed
        )
        latest = _checkpoint_to_resume(seed_dir, settings)
        # As in pre-training: the default strategy's plain tf.data iterator is checkpointed,
        # so a resumed seed sees the batches an uninterrupted one would. tf.distribute's
        # distributed iterators cannot be (TF 2.20): a resumed seed reshuffles, seeded by
        # its start step.
        position_saved = settings.distribution_strategy == "default"
        data_seed = seed if position_saved else seed + checkpoints.checkpoint_step(latest)
        self.iterator = iter(
            strategy.distribute_datasets_from_function(
                _train_dataset(
                    data.train, micro_batch, settings.gradient_accumulation_steps, data_seed
                )
            )
        )
        progress = {"settings": settings.run_identity(), "best": None, "history": []}
        progress["train_wall_time_seconds"] = 0.0
        self.progress = tf.Variable(json.dumps(progress), dtype=tf.string, trainable=False)
        objects = {**self.trainer.checkpoint_objects(), PROGRESS: self.progress}
        position = {checkpoints.INPUT_POSITION: self.iterator} if position_saved else {}
        # Every worker saves (saving is collective), only the chief into the seed's folder.
        self.manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(**objects, **position),
            distribute.checkpoint_dir(strategy, seed_dir),
            max_to_keep=1,
        )
        if latest:
            checkpoints.restore_checkpoint(
                latest, objects, self.iterator if position_saved else None
            )
            logging.info("Seed %d: resumed from %s at step %d.", seed, latest, self.trainer.step)
        self.best_checkpoint = tf.train.Checkpoint(model=self.trainer.model)
        self.best_prefix = os.path.join(seed_dir, BEST_CHECKPOINT_DIR, BEST_CHECKPOINT_PREFIX)
        self.writer = (
            tf.summary.create_file_writer(seed_dir)
            if self.chief
            else tf.summary.create_noop_writer()
        )
        logging.info(
            "Seed %d: %d training inputs, %d steps, dev scored at steps %s, global batch %d.",
            seed,
            num_examples,
            self.num_train_steps,
            self.eval_points,
            settings.train_batch_size,
        )

    def _progress(self) -> dict:
        return json.loads(self.progress.numpy().decode("utf-8"))

    def train(self, stop) -> bool:
        """Trains to the last step, scoring dev at each eval point and checkpointing after
        every loop; False when a stop request on any worker ended it first."""
        stop_agreement = distribute.StopAgreement(self.strategy)
        while self.trainer.step < self.num_train_steps:
            loop_start = time.time()
            next_eval = min(p for p in self.eval_points if p > self.trainer.step)
            steps = min(self.settings.iterations_per_loop, next_eval - self.trainer.step)
            self._train_loop(steps)
            progress = self._progress()
            if self.trainer.step == next_eval:
                self._evaluate(progress)
            progress["train_wall_time_seconds"] += time.time() - loop_start
            self.progress.assign(json.dumps(progress))
            stop.handled_in_loop.set()
            self.manager.save(checkpoint_number=self.trainer.step)
            if stop_agreement.any_worker(stop.requested):
                logging.info(
                    "Seed %d: stopping at step %d on request.", self.seed, self.trainer.step
                )
                return False
        return True

    def _train_loop(self, steps):
        sums = self.trainer.train(self.iterator, steps)
        logging.info(
            "seed %d step %d/%d | loss %.4f | grad_norm %.3f | lr %.2e",
            self.seed,
            self.trainer.step,
            self.num_train_steps,
            sums["loss"] / steps,
            sums["grad_norm"] / steps,
            float(self.trainer.optimizer.learning_rate),
        )
        with self.writer.as_default(step=self.trainer.step):
            tf.summary.scalar("loss", sums["loss"] / steps)

    def _evaluate(self, progress):
        """Scores dev into `progress`; a better score replaces the best checkpoint (chief)."""
        score, scores = _score_dev(self.trainer, self.data, self.settings, self.seed, self.writer)
        progress["history"].append({"step": self.trainer.step, **scores})
        best = progress["best"]
        if best is None or score > best["score"] or math.isnan(best["score"]):
            progress["best"] = {"score": score, "step": self.trainer.step, "dev": scores}
            # Written before the checkpoint that records it: a kill in between replays
            # the same steps and writes the same best checkpoint again.
            if self.chief:
                self.best_checkpoint.write(self.best_prefix)

    def finish(self) -> dict:
        """The best checkpoint's result; its predictions and the seed's results.json written."""
        self.writer.flush()
        # The chief wrote the best checkpoint: every worker waits for it before reading it.
        distribute.barrier(self.strategy)
        self.best_checkpoint.read(self.best_prefix).assert_existing_objects_matched()
        progress = self._progress()
        best = progress["best"]
        logging.info(
            "seed %d: best dev %s %.4f at step %d",
            self.seed,
            self.data.metric,
            best["score"],
            best["step"],
        )
        result = {
            "seed": self.seed,
            "score": best["score"],
            "best_step": best["step"],
            "dev": best["dev"],
            "history": progress["history"],
            "steps": self.trainer.step,
            "train_wall_time_seconds": progress["train_wall_time_seconds"],
        }
        result.update(
            _write_predictions(self.trainer, self.data, self.settings, self.seed_dir, self.chief)
        )
        if self.chief:
            files.write_json(
                os.path.join(self.seed_dir, RESULTS_FILE),
                {"settings": self.settings.run_identity(), "result": result},
                indent=2,
            )
        return result

    def close(self):
        """Ends the summaries; a worker other than the chief removes its scratch checkpoints."""
        self.writer.close()
        if not self.chief and tf.io.gfile.exists(self.manager.directory):
            tf.io.gfile.rmtree(self.manager.directory)


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
    # The settings first: a folder holding anything of this run holds them, so a run
    # stopped at any point is recognised as one to resume.
    settings.save(os.path.join(model_dir, FINETUNING_SETTINGS_FILE))
    config.save(os.path.join(model_dir, CONFIG_FILE))
    files.copy_file(settings.vocab_file, os.path.join(model_dir, VOCAB_FILE))
    if data.labels is not None:
        files.write_json(
            os.path.join(model_dir, LABEL_MAP_FILE),
            {"labels": data.labels},
            indent=1,
            ensure_ascii=False,
        )


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
    files.write_json(path, results, indent=2)
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
    glue.DataFormatError or models.EncoderMismatchError on bad input, before training;
    files.OutputExistsError when settings.model_dir holds something else than a run of
    these settings (settings.overwrite starts over there), and
    checkpoints.CheckpointError when a seed's checkpoint cannot be restored, and
    WorkerLostError when another worker of a multi-worker run is lost.

    A run of the same settings in model_dir is resumed. SIGTERM or SIGINT checkpoints the
    seed in training and returns {"model_dir", "stopped_on_request": True, "per_seed"
    (the seeds finished)} without writing results.json.

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
    files.check_output_dir(
        settings.model_dir, "--model_dir", settings.overwrite, is_resumable=settings.is_run_in
    )
    data = _load_data(settings)
    tf.io.gfile.makedirs(settings.model_dir)
    if distribute.is_chief(strategy):
        write_export_metadata(settings, data, pretrained.config)
    policy = keras.mixed_precision.dtype_policy()
    setup.set_precision(settings.mixed_precision)
    setup.quiet_checkpoint_timings()
    per_seed = []
    try:
        with distribute.stop_requests() as stop:
            for seed in settings.seeds:
                result = run_seed(settings, seed, data, pretrained.encoder, strategy, stop)
                if result is None:
                    logging.info(
                        "Stopped on request; the same command (without --overwrite) resumes the run."
                    )
                    return {
                        "model_dir": settings.model_dir,
                        "stopped_on_request": True,
                        "per_seed": per_seed,
                    }
                per_seed.append(result)
    finally:  # an in-process caller keeps its own precision policy
        keras.mixed_precision.set_dtype_policy(policy)
    results = summarize(settings, data.metric, per_seed, data.baseline, time.time() - run_start)
    if distribute.is_chief(strategy):
        _write_results(settings, results)
    return results
