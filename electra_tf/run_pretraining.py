"""Pre-trains an ELECTRA generator + discriminator.

    python -m electra_tf.run_pretraining --flagfile=configs/small.flags \
        --pretrain_tfrecords='data/pretrain_tfrecords/pretraining_input.tfrecord*' \
        --vocab_file=data/vocab.txt --model_dir=runs/electra_small

Flag names and defaults follow google-research/electra's
configure_pretraining.py. Re-running the same command resumes from the last
checkpoint in --model_dir. At the end the discriminator is written on its own
to <model_dir>/discriminator for fine-tuning.
"""

import functools
import json
import signal
import sys
import time

import keras
import tensorflow as tf
from absl import app, flags, logging

import electra_tf  # noqa: F401  (selects the Keras backend before keras loads)
from electra_tf.data import pretraining_input, tokenization
from electra_tf.model import config as config_lib
from electra_tf.pretraining import flops as flops_lib
from electra_tf.pretraining import model as pretraining_model
from electra_tf.pretraining import two_stage
from electra_tf.pretraining.metrics import pretraining_metrics
from electra_tf.pretraining.model import ElectraPretrainer
from electra_tf.training import distribute
from electra_tf.training.optimization import AdamWeightDecay, learning_rate_at
from electra_tf.training.trainer import NonFiniteLossError, Trainer, accumulation_batches

FLAGS = flags.FLAGS

# Data and output.
flags.DEFINE_string(
    "pretrain_tfrecords",
    None,
    "Comma-separated globs of pre-training TFRecords "
    "(written by electra_tf.build_pretraining_dataset or the original code).",
)
flags.DEFINE_string("vocab_file", None, "The WordPiece vocabulary the data was built with.")
flags.DEFINE_string("model_dir", None, "Checkpoints, TensorBoard logs and the final discriminator.")
# Model.
flags.DEFINE_enum("model_size", "small", sorted(config_lib.PRESETS), "Discriminator size.")
flags.DEFINE_string(
    "model_hparam_overrides",
    "{}",
    'JSON dict overriding ElectraConfig fields, e.g. {"hidden_size": 128, "num_hidden_layers": 2}.',
)
flags.DEFINE_integer("embedding_size", None, "Embedding size (default: the size's own).")
flags.DEFINE_integer("vocab_size", None, "Must equal the vocab file's size when given.")
flags.DEFINE_integer("max_seq_length", 128, "Sequence length the data was built with.")
flags.DEFINE_float("generator_hidden_size", 0.25, "Generator hidden size, fraction of D's.")
flags.DEFINE_float("generator_layers", 1.0, "Generator depth, fraction of D's.")
flags.DEFINE_bool(
    "untied_generator_embeddings",
    False,
    "Give G its own embedding block (an alias of --embedding_sharing=none).",
)
# Pre-training variants (docs/pretraining_variants.md).
flags.DEFINE_enum(
    "objective",
    "electra",
    list(pretraining_model.OBJECTIVES),
    "electra (RTD), electra_15 (RTD loss on masked positions only), replace_mlm, "
    "all_tokens_mlm, mlm (BERT, no generator) or electric.",
)
flags.DEFINE_enum(
    "generator_training",
    "mle",
    list(pretraining_model.GENERATOR_TRAINING),
    "mle (joint MLM), two_stage (G alone, then D from G with G frozen) or "
    "adversarial (REINFORCE, G maximizes the RTD loss).",
)
flags.DEFINE_float(
    "two_stage_generator_fraction",
    0.5,
    "two_stage: fraction of --num_train_steps that trains the generator.",
)
flags.DEFINE_bool("uniform_generator", False, "Replace masked tokens uniformly at random.")
flags.DEFINE_bool(
    "untied_generator",
    True,
    "False: G and D share all weights (same size; an alias of --embedding_sharing=all).",
)
flags.DEFINE_enum(
    "embedding_sharing",
    None,
    list(pretraining_model.EMBEDDING_SHARING),
    "none, embeddings (default), all, or gdes (DeBERTaV3 gradient-disentangled).",
)
# Objective.
flags.DEFINE_float("mask_prob", 0.15, "Fraction of tokens masked per sequence.")
flags.DEFINE_integer(
    "max_predictions_per_seq",
    None,
    "Masked positions per sequence (default int((mask_prob+0.005)*max_seq_length)).",
)
flags.DEFINE_float("gen_weight", 1.0, "Weight of the generator's MLM loss.")
flags.DEFINE_float("disc_weight", 50.0, "Weight of the discriminator's loss.")
flags.DEFINE_float("temperature", 1.0, "Sampling temperature of the generator.")
flags.DEFINE_bool("disallow_correct", False, "Never sample the original token.")
# Optimization.
flags.DEFINE_float("learning_rate", 5e-4, "Peak learning rate.")
flags.DEFINE_float("lr_decay_power", 1.0, "Power of the polynomial decay (1: linear).")
flags.DEFINE_float("weight_decay_rate", 0.01, "Decoupled weight decay.")
flags.DEFINE_integer("num_warmup_steps", 10000, "Linear warmup steps.")
flags.DEFINE_integer("num_train_steps", 1000000, "Total optimizer steps.")
flags.DEFINE_integer("train_batch_size", 128, "Global batch per optimizer step.")
flags.DEFINE_integer("gradient_accumulation_steps", 1, "Micro-batches per optimizer step.")
# Loop, checkpoints, logging.
flags.DEFINE_integer("iterations_per_loop", 200, "Steps per host call; also the logging period.")
flags.DEFINE_integer("save_checkpoints_steps", 1000, "Checkpoint period in steps.")
flags.DEFINE_integer("keep_checkpoint_max", 5, "Checkpoints kept (0 keeps all).")
flags.DEFINE_integer("seed", 0, "Seed of initialization, data order, masking and sampling.")
flags.DEFINE_integer(
    "max_train_steps_this_run",
    None,
    "Stop (with a checkpoint) after this many steps in this process.",
)
distribute.define_flags()
flags.adopt_module_key_flags(distribute)

SETTINGS_FILE = "pretraining_settings.json"
# The checkpoint's name for the tf.data iterator (the input position).
INPUT_POSITION = "input_pipeline"
_ARCHITECTURE_FLAGS = (
    "model_size",
    "model_hparam_overrides",
    "embedding_size",
    "max_seq_length",
    "generator_hidden_size",
    "generator_layers",
    "untied_generator_embeddings",
    "objective",
    "generator_training",
    "uniform_generator",
    "untied_generator",
    "embedding_sharing",
)


def _require(condition, flag, message):
    if not condition:
        raise app.UsageError(f"--{flag}: {message}")


def validate_flags():
    """Fails before any work with a message naming the offending flag."""
    for name in ("pretrain_tfrecords", "vocab_file", "model_dir"):
        _require(FLAGS[name].value, name, "is required")
    _require(0.0 < FLAGS.mask_prob < 1.0, "mask_prob", "must be in (0, 1)")
    _require(FLAGS.temperature > 0.0, "temperature", "must be positive")
    _require(FLAGS.num_train_steps > 0, "num_train_steps", "must be positive")
    _require(FLAGS.num_warmup_steps >= 0, "num_warmup_steps", "must be >= 0")
    _require(FLAGS.learning_rate > 0.0, "learning_rate", "must be positive")
    _require(FLAGS.iterations_per_loop > 0, "iterations_per_loop", "must be positive")
    _require(FLAGS.save_checkpoints_steps > 0, "save_checkpoints_steps", "must be positive")
    _require(
        FLAGS.gradient_accumulation_steps > 0, "gradient_accumulation_steps", "must be positive"
    )
    _require(FLAGS.max_seq_length > 2, "max_seq_length", "must leave room for [CLS] and [SEP]")
    for name in ("generator_hidden_size", "generator_layers"):
        _require(
            0.0 < FLAGS[name].value <= 1.0, name, "is a fraction of the discriminator, in (0, 1]"
        )
    if FLAGS.max_predictions_per_seq is not None:
        _require(
            0 < FLAGS.max_predictions_per_seq <= FLAGS.max_seq_length,
            "max_predictions_per_seq",
            "must be in [1, max_seq_length]",
        )
    try:
        overrides = json.loads(FLAGS.model_hparam_overrides)
    except json.JSONDecodeError as e:
        raise app.UsageError(f"--model_hparam_overrides is not valid JSON: {e}") from e
    _require(isinstance(overrides, dict), "model_hparam_overrides", "must be a JSON object")


def max_predictions_per_seq():
    if FLAGS.max_predictions_per_seq is not None:
        return FLAGS.max_predictions_per_seq
    return int((FLAGS.mask_prob + 0.005) * FLAGS.max_seq_length)


def model_configs(vocab_size):
    """(discriminator config, generator config) from the flags."""
    overrides = json.loads(FLAGS.model_hparam_overrides)
    if FLAGS.embedding_size is not None:
        overrides["embedding_size"] = FLAGS.embedding_size
    overrides["vocab_size"] = vocab_size
    try:
        discriminator = config_lib.preset(FLAGS.model_size, **overrides)
    except (TypeError, ValueError) as e:
        raise app.UsageError(f"--model_size/--model_hparam_overrides: {e}") from e
    _require(
        FLAGS.max_seq_length <= discriminator.max_position_embeddings,
        "max_seq_length",
        f"{FLAGS.max_seq_length} exceeds the model's max_position_embeddings "
        f"({discriminator.max_position_embeddings})",
    )
    generator = config_lib.generator_config(
        discriminator,
        FLAGS.generator_hidden_size,
        FLAGS.generator_layers,
        FLAGS.untied_generator_embeddings or FLAGS.embedding_sharing == "none",
    )
    return discriminator, generator


def load_vocab_checked():
    try:
        vocab = tokenization.load_vocab(FLAGS.vocab_file)
    except (FileNotFoundError, ValueError) as e:
        raise app.UsageError(f"--vocab_file: {e}") from e
    if FLAGS.vocab_size is not None:
        _require(
            FLAGS.vocab_size == len(vocab),
            "vocab_size",
            f"is {FLAGS.vocab_size} but {FLAGS.vocab_file} has {len(vocab)} tokens",
        )
    return vocab


def check_settings_match(model_dir):
    """A resumed run must build the same architecture it checkpointed."""
    path = f"{model_dir}/{SETTINGS_FILE}"
    current = {name: FLAGS[name].value for name in _ARCHITECTURE_FLAGS}
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            saved = json.load(f)
        differing = [
            f"--{k}: checkpoint has {saved.get(k)!r}, flags say {v!r}"
            for k, v in current.items()
            if k in saved and saved[k] != v
        ]
        if differing:
            raise app.UsageError(
                f"{model_dir} holds a run with another architecture:\n  "
                + "\n  ".join(differing)
                + "\nUse a new --model_dir or the original flags."
            )
    return current


def write_settings(model_dir, settings):
    tf.io.gfile.makedirs(model_dir)
    all_flags = {f.name: f.value for f in FLAGS.get_key_flags_for_module(__name__)}
    with tf.io.gfile.GFile(f"{model_dir}/{SETTINGS_FILE}", "w") as f:
        f.write(json.dumps({**all_flags, **settings}, indent=2, sort_keys=True) + "\n")


class _StopRequest:
    """Turns SIGTERM/SIGINT into "checkpoint and exit cleanly" at the next loop boundary.

    With several workers the request is shared at that boundary
    (`distribute.StopAgreement`), so all of them stop after the same step.
    """

    def __init__(self):
        self.requested = False
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        logging.warning("Received signal %d: checkpointing and stopping after this loop.", signum)
        self.requested = True


def checkpoint_step(path):
    """The step a checkpoint of this runner holds (its number), 0 for none."""
    return int(path.rsplit("-", 1)[1]) if path else 0


def latest_checkpoint(model_dir):
    """The checkpoint to resume from: the one model_dir's `checkpoint` file names, or None.

    Exits when that checkpoint's index is missing (tf.train.latest_checkpoint
    would then return None and the run would silently start over).
    """
    state = tf.train.get_checkpoint_state(model_dir)
    if state is None or not state.model_checkpoint_path:
        return None
    path = state.model_checkpoint_path
    if not tf.io.gfile.exists(f"{path}.index"):
        raise SystemExit(_cannot_resume(path, f"{path}.index does not exist"))
    return path


def restore_checkpoint(path, training_objects, input_iterator=None):
    """Restores `path`, or exits naming the damaged checkpoint and how to recover.

    `input_iterator` gets the input position when the checkpoint holds one;
    a converted checkpoint (electra_tf.convert) holds none, and the data then
    starts from the beginning of its order.
    """
    try:
        status = tf.train.Checkpoint(**training_objects).restore(path)
        status.assert_existing_objects_matched().expect_partial()
        if input_iterator is None:
            return
        if any(name.startswith(f"{INPUT_POSITION}/") for name, _ in tf.train.list_variables(path)):
            tf.train.Checkpoint(**{INPUT_POSITION: input_iterator}).restore(
                path
            ).assert_existing_objects_matched().expect_partial()
        else:
            logging.warning("%s holds no input position: the data starts from the beginning.", path)
    # TF's reader raises IndexError on a truncated file, OpErrors on bad checksums
    # or missing data files, AssertionError when objects are absent.
    except (tf.errors.OpError, AssertionError, IndexError, ValueError) as e:
        raise SystemExit(_cannot_resume(path, f"{type(e).__name__}: {str(e).strip()}")) from None


def _cannot_resume(path, reason):
    files = sorted(tf.io.gfile.glob(f"{path}.*"))
    directory = path.rsplit("/", 1)[0]
    return (
        f"Cannot resume from the latest checkpoint {path}: {reason}\n"
        f"Its files: {', '.join(files) or 'none'} (a checkpoint is {path}.index and "
        f"{path}.data-*); they are damaged or missing, or were written by another version. "
        f"To resume from an earlier checkpoint, move {path}.* out of {directory} and point "
        f"model_checkpoint_path in {directory}/checkpoint at an intact ckpt-N listed there; "
        "to start over, use a new --model_dir. Nothing was deleted."
    )


def save_again(manager, checkpoint, step):
    """Writes the checkpoint of `step`, also when the manager has written one for it.

    The two_stage switch changes the model without a step: the manager would
    skip a second save at the same step, and the restarted process would
    resume in stage one and switch again, forever.
    """
    if manager.save(checkpoint_number=step, check_interval=False) is None:
        checkpoint.write(f"{manager.directory}/ckpt-{step}")


def _format_duration(seconds):
    seconds = int(max(0, seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{days}d " if days else "") + f"{hours:d}:{minutes:02d}:{secs:02d}"


def main(argv):
    del argv
    validate_flags()
    vocab = load_vocab_checked()
    special = tokenization.special_token_ids(vocab)
    discriminator_config, generator_config = model_configs(len(vocab))
    # First TF work of the process: multi-worker collectives must be configured
    # before anything initializes the runtime.
    try:
        strategy = distribute.create_strategy(
            FLAGS.distribution_strategy, FLAGS.tpu, FLAGS.num_gpus
        )
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    try:
        pretraining_input.check_shards(FLAGS.pretrain_tfrecords, FLAGS.max_seq_length)
    except (FileNotFoundError, ValueError) as e:
        raise app.UsageError(f"--pretrain_tfrecords: {e}") from e
    settings = check_settings_match(FLAGS.model_dir)

    if FLAGS.mixed_precision != "none":
        keras.mixed_precision.set_dtype_policy(f"mixed_{FLAGS.mixed_precision}")
    logging.info("%s", distribute.cpu_bf16_advice(FLAGS.mixed_precision))
    chief = distribute.is_chief(strategy)
    replicas = strategy.num_replicas_in_sync
    accumulation = FLAGS.gradient_accumulation_steps
    try:
        micro_batch = distribute.per_replica_batch_size(
            FLAGS.train_batch_size, replicas, accumulation
        )
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    keras.utils.set_random_seed(FLAGS.seed)

    switch_step = two_stage.switch_step(FLAGS.two_stage_generator_fraction, FLAGS.num_train_steps)
    with strategy.scope():
        try:
            model = ElectraPretrainer(
                discriminator_config,
                generator_config,
                special,
                mask_prob=FLAGS.mask_prob,
                max_predictions_per_seq=max_predictions_per_seq(),
                gen_weight=FLAGS.gen_weight,
                disc_weight=FLAGS.disc_weight,
                temperature=FLAGS.temperature,
                disallow_correct=FLAGS.disallow_correct,
                untied_generator_embeddings=FLAGS.untied_generator_embeddings,
                objective=FLAGS.objective,
                generator_training=FLAGS.generator_training,
                uniform_generator=FLAGS.uniform_generator,
                untied_generator=FLAGS.untied_generator,
                embedding_sharing=FLAGS.embedding_sharing,
                two_stage_switch_step=switch_step,
            )
        except ValueError as e:
            raise app.UsageError(f"pre-training variant flags: {e}") from e
        model.build()
    train_flops = flops_lib.variant_train_flops(
        model.discriminator_config,
        model.generator_config,
        seq_length=FLAGS.max_seq_length,
        batch_size=FLAGS.train_batch_size,
        max_predictions=max_predictions_per_seq(),
        objective=model.objective,
        generator_training=model.generator_training,
        uniform_generator=model.uniform_generator,
        embedding_sharing=model.embedding_sharing,
        two_stage_switch_step=switch_step,
    )
    logging.info(
        "Training FLOPs (forward + backward = 3x forward): %s per step, %s for %d "
        "steps (objective %s, generator_training %s, embedding_sharing %s).",
        flops_lib.describe(train_flops.per_step),
        flops_lib.describe(train_flops.cumulative(FLAGS.num_train_steps)),
        FLAGS.num_train_steps,
        model.objective,
        model.generator_training,
        model.embedding_sharing,
    )
    with strategy.scope():
        schedule = functools.partial(
            learning_rate_at,
            base_learning_rate=FLAGS.learning_rate,
            num_train_steps=FLAGS.num_train_steps,
            num_warmup_steps=FLAGS.num_warmup_steps,
            decay_power=FLAGS.lr_decay_power,
        )
        optimizer = AdamWeightDecay(
            model.trainable_variables, schedule, weight_decay_rate=FLAGS.weight_decay_rate
        )
        trainer = Trainer(
            strategy,
            model,
            optimizer,
            jit_compile=distribute.use_xla(FLAGS.use_xla, strategy),
            seed=FLAGS.seed,
            dynamic_loss_scale=FLAGS.mixed_precision == "float16",
        )
    latest = latest_checkpoint(FLAGS.model_dir)
    # The default strategy reads through a plain tf.data iterator, whose
    # position (shuffle buffers included) the checkpoint holds: a resumed run
    # sees exactly the batches an uninterrupted one would. tf.distribute's
    # distributed iterators cannot be checkpointed (TF 2.20); with them a
    # resumed run reshuffles, seeded by its start step, so it does not replay
    # the batches it has already trained on.
    input_position_saved = FLAGS.distribution_strategy == "default"
    data_seed = FLAGS.seed if input_position_saved else FLAGS.seed + checkpoint_step(latest)

    def dataset_fn(input_context):
        dataset = pretraining_input.pretraining_dataset(
            FLAGS.pretrain_tfrecords,
            FLAGS.max_seq_length,
            micro_batch,
            is_training=True,
            input_context=input_context,
            seed=data_seed,
        )
        return accumulation_batches(dataset, accumulation)

    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
    input_iterator = iterator if input_position_saved else None
    checkpoint = tf.train.Checkpoint(
        **trainer.checkpoint_objects(),
        **({INPUT_POSITION: iterator} if input_position_saved else {}),
    )
    # Every worker saves (saving is collective) but only the chief into model_dir.
    save_dir = distribute.checkpoint_dir(strategy, FLAGS.model_dir)
    manager = tf.train.CheckpointManager(
        checkpoint,
        save_dir,
        max_to_keep=FLAGS.keep_checkpoint_max or None,
        checkpoint_interval=FLAGS.save_checkpoints_steps,
        step_counter=optimizer.iterations,
        # Saves stay on the uninterrupted run's steps after a resume.
        last_checkpoint_step=checkpoint_step(latest),
    )
    if latest:
        restore_checkpoint(latest, trainer.checkpoint_objects(), input_iterator)
        logging.info("Resumed from %s at step %d", latest, trainer.step)
    elif chief:
        write_settings(FLAGS.model_dir, settings)

    writer = (
        tf.summary.create_file_writer(f"{FLAGS.model_dir}/train")
        if chief
        else tf.summary.create_noop_writer()
    )
    stop = _StopRequest()
    start_step = trainer.step
    logging.info(
        "Training %s from step %d to %d: %d replica(s), %d example(s) per replica "
        "micro-batch, %d accumulation step(s), global batch %d.",
        FLAGS.model_size,
        start_step,
        FLAGS.num_train_steps,
        replicas,
        micro_batch,
        accumulation,
        FLAGS.train_batch_size,
    )
    last_step = FLAGS.num_train_steps
    if FLAGS.max_train_steps_this_run is not None:
        last_step = min(last_step, start_step + FLAGS.max_train_steps_this_run)
    run_start = time.time()
    stop_agreement = distribute.StopAgreement(strategy)
    stopping = False
    while trainer.step < last_step and not stopping:
        steps = min(FLAGS.iterations_per_loop, last_step - trainer.step)
        if model.generator_training == "two_stage" and not model.in_second_stage():
            if trainer.step >= switch_step:
                model.start_second_stage()
                save_again(manager, checkpoint, trainer.step)
                writer.flush()
                two_stage.restart(
                    sys.argv,
                    None if FLAGS.max_train_steps_this_run is None else last_step - trainer.step,
                )
            steps = min(steps, switch_step - trainer.step)
        loop_start = time.time()
        try:
            sums = trainer.train(iterator, steps)
        except NonFiniteLossError as e:
            raise SystemExit(f"Stopped: {e}") from None
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
            raise SystemExit(
                pretraining_input.describe_data_error(e, FLAGS.pretrain_tfrecords)
            ) from None
        except tf.errors.UnavailableError as e:
            # A collective failed: a peer stopped (its heartbeats) or cannot be reached.
            raise SystemExit(
                f"Stopped after step {trainer.step}: lost contact with another worker. "
                f"{e.message.strip()}\nRestart every worker with the same command; training "
                f"resumes from the last checkpoint in {FLAGS.model_dir}."
            ) from None
        elapsed = time.time() - loop_start
        metrics = pretraining_metrics(sums, steps)
        metrics["learning_rate"] = float(optimizer.learning_rate)
        metrics["grad_norm"] = float(sums["grad_norm"]) / steps
        metrics["examples_per_second"] = steps * FLAGS.train_batch_size / elapsed
        step = trainer.step
        metrics["train_flops"] = train_flops.cumulative(step)
        with writer.as_default(step=step):
            for name, value in metrics.items():
                tf.summary.scalar(name, value)
        eta = (last_step - step) * (time.time() - run_start) / max(1, step - start_step)
        logging.info(
            "step %d/%d (%.1f%%) | %.2f steps/s | %.1f examples/s | ETA %s | loss %.4f | "
            "masked_lm_accuracy %.4f | sampled_masked_lm_accuracy %.4f | disc_accuracy %.4f | "
            "disc_auc %.4f | lr %.2e",
            step,
            FLAGS.num_train_steps,
            100.0 * step / FLAGS.num_train_steps,
            steps / elapsed,
            metrics["examples_per_second"],
            _format_duration(eta),
            metrics["loss"],
            metrics["masked_lm_accuracy"],
            metrics["sampled_masked_lm_accuracy"],
            metrics["disc_accuracy"],
            metrics["disc_auc"],
            metrics["learning_rate"],
        )
        manager.save(checkpoint_number=step)
        stopping = stop_agreement.any_worker(stop.requested)
    if stopping:
        logging.info("Stopping at step %d on request.", trainer.step)
    writer.flush()
    saved = manager.save(checkpoint_number=trainer.step, check_interval=False)
    # Replicas must hold identical weights; the fingerprint lets workers be compared.
    fingerprint = sum(float(tf.reduce_sum(tf.square(v))) for v in model.trainable_variables)
    logging.info("Step %d weights fingerprint (sum of squares): %.10e", trainer.step, fingerprint)
    if not chief:
        tf.io.gfile.rmtree(save_dir)
    if chief:
        discriminator_dir = f"{FLAGS.model_dir}/discriminator"
        model.discriminator_for_export().save_pretrained(discriminator_dir)
        tf.io.gfile.copy(FLAGS.vocab_file, f"{discriminator_dir}/vocab.txt", overwrite=True)
        logging.info("Checkpoint: %s", saved)
        logging.info("TensorBoard logs: %s/train", FLAGS.model_dir)
        logging.info("Discriminator for fine-tuning: %s", discriminator_dir)


if __name__ == "__main__":
    app.run(main)
