"""Fine-tunes a pre-trained ELECTRA discriminator on a tagging, GLUE or SQuAD task.

    python -m electra_tf.run_finetuning --flagfile=configs/finetune_ner.flags \
        --init_checkpoint=runs/electra_small/discriminator \
        --data_dir=/path/to/wikiann_en --model_dir=runs/ner

--init_checkpoint also takes a Hugging Face ELECTRA directory, a
google-research/electra (TF1) checkpoint or a tf-models-official checkpoint
as downloaded (see electra_tf.load_encoder).

Flag names and defaults follow google-research/electra's
configure_finetuning.py. Each seed in --seeds trains one model: the dev set
is scored after every epoch, the best checkpoint (by the task metric) is kept
in <model_dir>/seed_<seed>/best, and its predictions on the dev (and test)
files are written beside it. <model_dir>/results.json holds the per-seed
scores with their median, mean and standard deviation.

SIGTERM or SIGINT checkpoints and exits 0; the same command resumes the run
(finished seeds are not trained again). A --model_dir holding anything else
is refused unless --overwrite is given.

The flags fill an electra_tf.FinetuningSettings and call electra_tf.finetune,
which a Python caller can use directly.
"""

from absl import app, flags

import electra_tf  # noqa: F401  (selects the Keras backend before keras loads)
from electra_tf.finetuning.settings import FinetuningSettings, SettingsError
from electra_tf.training import distribute, flag_fields

FLAGS = flags.FLAGS
flag_fields.define_flags(FinetuningSettings, FLAGS)
flags.adopt_module_key_flags(flag_fields)
flags.adopt_module_key_flags(distribute)


def settings_from_flags(flag_values=FLAGS) -> FinetuningSettings:
    """The settings the parsed flags describe (validated; errors name the flag)."""
    return FinetuningSettings(**flag_fields.values_from_flags(FinetuningSettings, flag_values))


def main(argv):
    del argv
    try:
        settings = settings_from_flags()
    except SettingsError as e:
        raise SystemExit(f"run_finetuning: error: {e}") from None
    # Imported after the flags are checked: a usage error costs no TensorFlow start-up.
    from electra_tf.files import OutputExistsError  # pylint: disable=import-outside-toplevel
    from electra_tf.finetuning import conll, glue  # pylint: disable=import-outside-toplevel
    from electra_tf.finetuning.models import EncoderMismatchError  # pylint: disable=import-outside-toplevel
    from electra_tf.finetuning.runner import WorkerLostError, finetune  # pylint: disable=import-outside-toplevel
    from electra_tf.finetuning.tasks import InputError  # pylint: disable=import-outside-toplevel
    from electra_tf.pretraining.checkpoints import CheckpointError  # pylint: disable=import-outside-toplevel
    from electra_tf.training.trainer import NonFiniteLossError  # pylint: disable=import-outside-toplevel

    try:
        finetune(settings)
    except (NonFiniteLossError, WorkerLostError) as e:
        raise SystemExit(f"run_finetuning: stopped: {e}") from None
    except (
        OutputExistsError,
        CheckpointError,
        InputError,
        EncoderMismatchError,
        conll.ConllFormatError,
        glue.DataFormatError,
        FileNotFoundError,
        UnicodeDecodeError,
        ValueError,  # SettingsError; a vocabulary that does not parse; ConversionError
    ) as e:
        raise SystemExit(f"run_finetuning: error: {e}") from None


if __name__ == "__main__":
    app.run(main)
