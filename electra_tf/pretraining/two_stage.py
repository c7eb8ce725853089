"""Runner support for generator_training='two_stage'.

Stage one trains the generator alone; at the switch step the runner calls
`start_second_stage`: the model freezes G and initializes D from G, the run
checkpoints, and the train step is rebuilt. The step reads the stage when it
is traced (a tf.cond on the stage does not compile under XLA), so stage two
needs a fresh trace: a new Trainer over the same model and optimizer, in the
same process, with the Trainer's own state (RNG, loss scale) read back from
the switch's checkpoint.
"""

import tensorflow as tf
from absl import logging


def switch_step(generator_fraction, num_train_steps):
    """The first step of stage two.

    >>> switch_step(0.5, 12)
    6
    """
    return int(round(generator_fraction * num_train_steps))


def start_second_stage(model, save_checkpoint, build_trainer):
    """Switches to the discriminator's stage; returns the Trainer that trains it.

    `save_checkpoint()` writes the switched model's checkpoint and returns its
    path; `build_trainer()` makes a Trainer of the same model and optimizer
    (a new one, so its step is traced anew in stage two).
    """
    model.start_second_stage()
    path = save_checkpoint()
    trainer = build_trainer()
    # The new Trainer continues the old one's RNG stream (and loss scale).
    tf.train.Checkpoint(**trainer.checkpoint_objects()).read(
        path
    ).assert_existing_objects_matched().expect_partial()
    logging.info("two_stage: the discriminator stage starts at %s; the step is retraced.", path)
    return trainer
