"""Runner support for generator_training='two_stage'.

Stage one trains the generator alone; at the switch step the runner calls
`ElectraPretrainer.start_second_stage()` (freeze G, initialize D from G),
checkpoints, and restarts itself: the train step reads the stage when it is
traced, so stage two needs a fresh trace (a tf.cond on the stage does not
compile under XLA). The restarted process resumes from that checkpoint.
"""

import os
import sys

from absl import logging


def switch_step(generator_fraction, num_train_steps):
    """The first step of stage two."""
    return int(round(generator_fraction * num_train_steps))


def restart_command(argv, remaining_steps_this_run=None):
    """The command line that resumes this run (with the steps left of this run, if capped)."""
    command = [sys.executable, "-m", "electra_tf.run_pretraining"] + list(argv[1:])
    if remaining_steps_this_run is not None:
        # absl keeps the last value given: this overrides the original cap.
        command.append(f"--max_train_steps_this_run={remaining_steps_this_run}")
    return command


def restart(argv, remaining_steps_this_run=None):
    command = restart_command(argv, remaining_steps_this_run)
    logging.info(
        "two_stage: the discriminator stage starts; restarting to retrace the step: %s",
        " ".join(command),
    )
    logging.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, command)
