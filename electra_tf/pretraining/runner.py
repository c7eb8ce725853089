"""`pretrain(settings)`: ELECTRA pre-training in this process; run_pretraining's engine.

Resumes from the last checkpoint in settings.model_dir, checkpoints and
stops cleanly on SIGTERM/SIGINT (all workers after the same step), and at
the end writes the discriminator alone to <model_dir>/discriminator.
"""

import contextlib
import dataclasses
import logging as std_logging
import time

import keras
import tensorflow as tf
from absl import logging

from electra_tf import files
from electra_tf.data import pretraining_input, tokenization
from electra_tf.filenames import DISCRIMINATOR_DIR, TRAIN_SUMMARY_DIR, VOCAB_FILE
from electra_tf.pretraining import checkpoints, two_stage
from electra_tf.pretraining import flops as flops_lib
from electra_tf.pretraining.metrics import pretraining_metrics
from electra_tf.pretraining.model import ElectraPretrainer
from electra_tf.pretraining.settings import PretrainingSettings, SettingsError
from electra_tf.training import distribute, setup
from electra_tf.training.trainer import NonFiniteLossError, accumulation_batches


class PretrainingError(RuntimeError):
    """Training cannot go on (unreadable data, a lost worker); the message says what to do."""


@dataclasses.dataclass(frozen=True)
class PretrainingResult:
    """What a `pretrain` call did.

    step: the optimizer step reached; metrics: the last logged window (empty
    when no step ran); discriminator_dir: the encoder for fine-tuning (None on
    workers other than the chief); checkpoint: the last checkpoint written;
    stopped_on_request: a SIGTERM/SIGINT ended the run before its last step.
    """

    step: int
    metrics: dict
    model_dir: str
    discriminator_dir: str | None
    checkpoint: str | None
    stopped_on_request: bool


def pretrain(settings: PretrainingSettings) -> PretrainingResult:
    """Pre-trains (or resumes pre-training) as `settings` say; returns what it reached.

    Raises SettingsError or setup.SetupError for bad settings or inputs
    (before any training), trainer.NonFiniteLossError when the loss
    diverges, checkpoints.CheckpointError for a damaged checkpoint and
    PretrainingError for unreadable data or a lost worker.

    >>> import electra_tf
    >>> result = electra_tf.pretrain(electra_tf.PretrainingSettings(  # doctest: +SKIP
    ...     pretrain_tfrecords="data/pretrain_tfrecords/pretrain_data.tfrecord*",
    ...     vocab_file="data/vocab.txt", model_dir="runs/tiny", num_train_steps=100,
    ...     model_hparam_overrides={"hidden_size": 64, "num_hidden_layers": 2}))
    >>> result.step, result.metrics["disc_auc"], result.discriminator_dir  # doctest: +SKIP
    """
    settings.require_inputs()
    vocab = settings.load_vocabulary()
    try:
        special = tokenization.special_token_ids(vocab)
    except ValueError as e:
        raise SettingsError(f"--vocab_file: {e}") from e
    discriminator_config, generator_config = settings.model_configs(len(vocab))
    strategy = setup.create_strategy(
        settings.distribution_strategy, settings.tpu, settings.num_gpus
    )
    try:
        pretraining_input.check_shards(settings.pretrain_tfrecords, settings.max_seq_length)
    except (FileNotFoundError, ValueError) as e:
        raise SettingsError(f"--pretrain_tfrecords: {e}") from e
    try:
        pretraining_input.check_vocabulary(settings.pretrain_tfrecords, settings.vocab_file, vocab)
    except ValueError as e:
        raise SettingsError(str(e)) from e
    settings.check_resumable(settings.model_dir, tokenization.vocab_sha256(vocab))
    checkpoints.latest_checkpoint(settings.model_dir)  # a bad state file fails before the build
    setup.set_precision(settings.mixed_precision)
    micro_batch = setup.micro_batch_size(
        strategy, settings.train_batch_size, settings.gradient_accumulation_steps
    )
    keras.utils.set_random_seed(settings.seed)
    setup.quiet_checkpoint_timings()
    model = build_model(settings, strategy, discriminator_config, generator_config, special)
    return _Run(settings, strategy, model, micro_batch, vocab).train()


def pretrain_or_exit(settings: PretrainingSettings) -> PretrainingResult:
    """`pretrain` for the commands users type: errors end the program with their message.

    Bad settings or inputs exit with one `error:` line naming them; a diverged
    loss, a damaged checkpoint, unreadable data or a lost worker exit with the
    message that says how to recover (no traceback).
    """
    try:
        return pretrain(settings)
    except (SettingsError, setup.SetupError) as e:
        raise SystemExit(f"error: {e}") from None
    except NonFiniteLossError as e:
        raise SystemExit(f"Stopped: {e}") from None
    except (checkpoints.CheckpointError, PretrainingError) as e:
        raise SystemExit(str(e)) from None


@contextlib.contextmanager
def log_lines_to(path):
    """While inside, absl's log lines (pretrain's progress among them) are also appended to `path`.

    >>> with log_lines_to("runs/tiny/log.txt"):  # doctest: +SKIP
    ...     pretrain(settings)
    """
    handler = std_logging.FileHandler(path)
    handler.setFormatter(std_logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    absl_logger = logging.get_absl_logger()
    absl_logger.addHandler(handler)
    # The progress lines are INFO: they reach the file also where absl logs warnings only
    # (outside app.run).
    verbosity = logging.get_verbosity()
    logging.set_verbosity(max(verbosity, logging.INFO))
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        absl_logger.removeHandler(handler)
        handler.close()


def build_model(settings, strategy, discriminator_config, generator_config, special):
    """The ElectraPretrainer of `settings`, built under `strategy`."""
    with strategy.scope():
        try:
            model = ElectraPretrainer(
                discriminator_config,
                generator_config,
                special,
                mask_prob=settings.mask_prob,
                max_predictions_per_seq=settings.max_predictions,
                gen_weight=settings.gen_weight,
                disc_weight=settings.disc_weight,
                temperature=settings.temperature,
                disallow_correct=settings.disallow_correct,
                untied_generator_embeddings=settings.untied_generator_embeddings,
                objective=settings.objective,
                generator_training=settings.generator_training,
                uniform_generator=settings.uniform_generator,
                untied_generator=settings.untied_generator,
                embedding_sharing=settings.embedding_sharing,
                two_stage_switch_step=settings.two_stage_switch_step,
            )
        except ValueError as e:
            raise SettingsError(f"pre-training variant flags: {e}") from e
        model.build()
    return model


def train_flops(settings, model):
    """The run's FLOPs accounting (logged once, and summed into every window's metrics)."""
    accounting = flops_lib.variant_train_flops(
        model.discriminator_config,
        model.generator_config,
        seq_length=settings.max_seq_length,
        batch_size=settings.train_batch_size,
        max_predictions=settings.max_predictions,
        objective=model.objective,
        generator_training=model.generator_training,
        uniform_generator=model.uniform_generator,
        embedding_sharing=model.embedding_sharing,
        two_stage_switch_step=settings.two_stage_switch_step,
    )
    logging.info(
        "Training FLOPs (forward + backward = 3x forward): %s per step, %s for %d "
        "steps (objective %s, generator_training %s, embedding_sharing %s).",
        flops_lib.describe(accounting.per_step),
        flops_lib.describe(accounting.cumulative(settings.num_train_steps)),
        settings.num_train_steps,
        model.objective,
        model.generator_training,
        model.embedding_sharing,
    )
    return accounting


class _Run:
    """One pretrain() call's training state: trainer, input, checkpoints, summaries."""

    def __init__(self, settings, strategy, model, micro_batch, vocab):
        self.settings, self.strategy, self.model = settings, strategy, model
        self.micro_batch, self.vocab_size = micro_batch, len(vocab)
        self.chief = distribute.is_chief(strategy)
        self.flops = train_flops(settings, model)
        with strategy.scope():
            self.optimizer = setup.build_optimizer(
                model.trainable_variables,
                learning_rate=settings.learning_rate,
                num_train_steps=settings.num_train_steps,
                num_warmup_steps=settings.num_warmup_steps,
                lr_decay_power=settings.lr_decay_power,
                weight_decay_rate=settings.weight_decay_rate,
            )
        self.trainer = self._build_trainer()
        latest = checkpoints.latest_checkpoint(settings.model_dir)
        try:
            self.iterator, position_saved = self._input(latest)
        except ValueError as e:
            raise SettingsError(f"--pretrain_tfrecords: {e}") from e
        self.input_position = self.iterator if position_saved else None
        # Every worker saves (saving is collective) but only the chief into model_dir.
        self.save_dir = distribute.checkpoint_dir(strategy, settings.model_dir)
        # Saves stay on the uninterrupted run's steps after a resume.
        self._checkpointing(checkpoints.checkpoint_step(latest))
        if latest:
            checkpoints.restore_checkpoint(
                latest, self.trainer.checkpoint_objects(), self.input_position
            )
            logging.info("Resumed from %s at step %d", latest, self.trainer.step)
        elif self.chief:
            settings.write(settings.model_dir, tokenization.vocab_sha256(vocab))
        self.writer = (
            tf.summary.create_file_writer(f"{settings.model_dir}/{TRAIN_SUMMARY_DIR}")
            if self.chief
            else tf.summary.create_noop_writer()
        )

    def _build_trainer(self):
        with self.strategy.scope():
            return setup.build_trainer(
                self.strategy,
                self.model,
                self.optimizer,
                seed=self.settings.seed,
                use_xla=self.settings.use_xla,
                mixed_precision=self.settings.mixed_precision,
            )

    def _input(self, latest):
        """(distributed iterator, whether checkpoints hold its position)."""
        s = self.settings
        # The default strategy reads through a plain tf.data iterator, whose
        # position (shuffle buffers included) the checkpoint holds: a resumed run
        # sees exactly the batches an uninterrupted one would. tf.distribute's
        # distributed iterators cannot be checkpointed (TF 2.20); with them a
        # resumed run reshuffles, seeded by its start step, so it does not replay
        # the batches it has already trained on.
        position_saved = s.distribution_strategy == "default"
        data_seed = s.seed if position_saved else s.seed + checkpoints.checkpoint_step(latest)

        def dataset_fn(input_context):
            dataset = pretraining_input.pretraining_dataset(
                s.pretrain_tfrecords,
                s.max_seq_length,
                self.micro_batch,
                is_training=True,
                input_context=input_context,
                seed=data_seed,
                vocab_size=self.vocab_size,
                vocab_file=s.vocab_file,
            )
            return accumulation_batches(dataset, s.gradient_accumulation_steps)

        return iter(self.strategy.distribute_datasets_from_function(dataset_fn)), position_saved

    def _checkpointing(self, last_checkpoint_step):
        """The checkpoint of the current trainer and its manager."""
        position = {}
        if self.input_position is not None:
            position = {checkpoints.INPUT_POSITION: self.iterator}
        self.checkpoint = tf.train.Checkpoint(**self.trainer.checkpoint_objects(), **position)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint,
            self.save_dir,
            max_to_keep=self.settings.keep_checkpoint_max or None,
            checkpoint_interval=self.settings.save_checkpoints_steps,
            step_counter=self.optimizer.iterations,
            last_checkpoint_step=last_checkpoint_step,
        )

    def train(self) -> PretrainingResult:
        s = self.settings
        start_step = self.trainer.step
        last_step = s.num_train_steps
        if s.max_train_steps_this_run is not None:
            last_step = min(last_step, start_step + s.max_train_steps_this_run)
        self._log_start(start_step)
        stop_agreement = distribute.StopAgreement(self.strategy)
        metrics, stopping = {}, False
        run_start = time.time()
        with distribute.stop_requests() as stop:
            while self.trainer.step < last_step and not stopping:
                try:
                    steps = self._window_steps(last_step)
                    metrics = self._train_window(steps)
                    stop.handled_in_loop.set()
                    step = self.trainer.step
                    eta = (last_step - step) * (time.time() - run_start) / max(1, step - start_step)
                    _log_window(step, s.num_train_steps, steps, eta, metrics)
                    self.manager.save(checkpoint_number=step)
                    stopping = stop_agreement.any_worker(stop.requested)
                except tf.errors.UnavailableError as e:
                    # A collective failed (the step's or the stop agreement's): a peer stopped
                    # (its heartbeats) or cannot be reached.
                    raise PretrainingError(
                        f"Stopped after step {self.trainer.step}: lost contact with another "
                        f"worker. {' '.join(e.message.split())} Restart every worker with the same "
                        f"command; training resumes from the last checkpoint in {s.model_dir}."
                    ) from e
        if stopping:
            logging.info("Stopping at step %d on request.", self.trainer.step)
        return self._finish(metrics, stopping)

    def _log_start(self, start_step):
        s = self.settings
        logging.info(
            "Training %s from step %d to %d: %d replica(s), %d example(s) per replica "
            "micro-batch, %d accumulation step(s), global batch %d.",
            s.model_size,
            start_step,
            s.num_train_steps,
            self.strategy.num_replicas_in_sync,
            self.micro_batch,
            s.gradient_accumulation_steps,
            s.train_batch_size,
        )

    def _window_steps(self, last_step):
        """Steps of the next host call; a two_stage run switches stages at its boundary."""
        steps = min(self.settings.iterations_per_loop, last_step - self.trainer.step)
        model = self.model
        if model.generator_training == "two_stage" and not model.in_second_stage():
            switch = self.settings.two_stage_switch_step
            if self.trainer.step < switch:
                return min(steps, switch - self.trainer.step)
            step = self.trainer.step
            self.writer.flush()
            self.trainer = two_stage.start_second_stage(
                model,
                lambda: checkpoints.save_again(self.manager, self.checkpoint, step),
                self._build_trainer,
            )
            self._checkpointing(step)
        return steps

    def _train_window(self, steps) -> dict:
        """Trains `steps` steps; their metrics, also written as TensorBoard scalars."""
        s = self.settings
        loop_start = time.time()
        try:
            sums = self.trainer.train(self.iterator, steps)
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
            message = pretraining_input.describe_data_error(e, s.pretrain_tfrecords)
            raise PretrainingError(message) from e
        elapsed = time.time() - loop_start
        step = self.trainer.step
        metrics = {k: float(v) for k, v in pretraining_metrics(sums, steps).items()}
        metrics["learning_rate"] = float(self.optimizer.learning_rate)
        metrics["grad_norm"] = float(sums["grad_norm"]) / steps
        metrics["examples_per_second"] = steps * s.train_batch_size / elapsed
        metrics["steps_per_second"] = steps / elapsed
        metrics["train_flops"] = float(self.flops.cumulative(step))
        with self.writer.as_default(step=step):
            for name, value in metrics.items():
                if name != "steps_per_second":
                    tf.summary.scalar(name, value)
        return metrics

    def _finish(self, metrics, stopped) -> PretrainingResult:
        s = self.settings
        self.writer.flush()
        self.writer.close()
        self.manager.save(checkpoint_number=self.trainer.step, check_interval=False)
        saved = self.manager.latest_checkpoint
        # Replicas must hold identical weights; the fingerprint lets workers be compared.
        fingerprint = sum(
            float(tf.reduce_sum(tf.square(v))) for v in self.model.trainable_variables
        )
        logging.info(
            "Step %d weights fingerprint (sum of squares): %.10e", self.trainer.step, fingerprint
        )
        discriminator_dir = None
        if not self.chief:
            tf.io.gfile.rmtree(self.save_dir)
            saved = None
        else:
            discriminator_dir = f"{s.model_dir}/{DISCRIMINATOR_DIR}"
            self._save_discriminator(discriminator_dir)
            logging.info("Checkpoint: %s", saved)
            logging.info("TensorBoard logs: %s/%s", s.model_dir, TRAIN_SUMMARY_DIR)
            logging.info("Discriminator for fine-tuning: %s", discriminator_dir)
        return PretrainingResult(
            step=self.trainer.step,
            metrics=metrics,
            model_dir=s.model_dir,
            discriminator_dir=discriminator_dir,
            checkpoint=saved,
            stopped_on_request=stopped,
        )

    def _save_discriminator(self, discriminator_dir):
        """Writes the encoder and its vocab beside, then swaps them in for the previous ones.

        --vocab_file may be <model_dir>/discriminator/vocab.txt itself (a resumed run);
        the previous folder stays until the new one is complete.
        """
        staging = files.temporary_dir_beside(discriminator_dir)
        try:
            self.model.discriminator_for_export().save_pretrained(staging)
            files.copy_file(self.settings.vocab_file, f"{staging}/{VOCAB_FILE}")
        except BaseException:
            tf.io.gfile.rmtree(staging)
            raise
        files.replace_dir(staging, discriminator_dir)


def _log_window(step, num_train_steps, steps, eta, metrics):
    logging.info(
        "step %d/%d (%.1f%%) | %.2f steps/s | %.1f examples/s | ETA %s | loss %.4f | "
        "masked_lm_accuracy %.4f | sampled_masked_lm_accuracy %.4f | disc_accuracy %.4f | "
        "disc_auc %.4f | lr %.2e",
        step,
        num_train_steps,
        100.0 * step / num_train_steps,
        metrics["steps_per_second"],
        metrics["examples_per_second"],
        _format_duration(eta),
        metrics["loss"],
        metrics["masked_lm_accuracy"],
        metrics["sampled_masked_lm_accuracy"],
        metrics["disc_accuracy"],
        metrics["disc_auc"],
        metrics["learning_rate"],
    )


def _format_duration(seconds):
    seconds = int(max(0, seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{days}d " if days else "") + f"{hours:d}:{minutes:02d}:{secs:02d}"
