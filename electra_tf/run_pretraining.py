"""Pre-trains an ELECTRA generator + discriminator.

    python -m electra_tf.run_pretraining --flagfile=configs/small.flags \
        --pretrain_tfrecords='data/pretrain_tfrecords/pretrain_data.tfrecord*' \
        --vocab_file=data/vocab.txt --model_dir=runs/electra_small

Flag names and defaults follow google-research/electra's
configure_pretraining.py. Re-running the same command resumes from the last
checkpoint in --model_dir. At the end the discriminator is written on its own
to <model_dir>/discriminator for fine-tuning.

The flags fill a `PretrainingSettings` (electra_tf/pretraining/settings.py)
and `electra_tf.pretrain(settings)` trains; Python code calls that directly.
"""

from absl import app, flags

import electra_tf  # noqa: F401  (selects the Keras backend before keras loads)
from electra_tf.pretraining import runner
from electra_tf.pretraining import settings as settings_lib
from electra_tf.training import distribute, flag_fields

FLAGS = flags.FLAGS
flag_fields.define_flags(settings_lib.PretrainingSettings, FLAGS)
flags.adopt_module_key_flags(flag_fields)
flags.adopt_module_key_flags(distribute)


def settings_from_flags():
    """The parsed flags as PretrainingSettings; a bad flag exits with one line naming it."""
    try:
        settings = settings_lib.PretrainingSettings.from_flag_values(FLAGS)
        settings.require_inputs()
    except settings_lib.SettingsError as e:
        raise SystemExit(f"run_pretraining: error: {e}") from None
    return settings


def main(argv):
    del argv
    runner.pretrain_or_exit(settings_from_flags())


if __name__ == "__main__":
    app.run(main)
