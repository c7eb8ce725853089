"""Settings dataclasses whose fields are their runner's absl flags.

A field made with `setting()` carries its flag's kind, help text and choices,
so one definition gives the field, its default and the flag. Fields made with
`distributed()` are the scale-out flags that `distribute.define_flags` defines
for every runner. `define_flags` defines a settings class's flags;
`parse_flags` reads a list of flag strings into a fresh FlagValues, so a
caller builds settings from "--name=value" strings without touching absl's
global FLAGS; `check_choices` refuses a value outside a field's choices.
"""

import dataclasses

from absl import flags

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored", "tpu")
MIXED_PRECISIONS = ("none", "bfloat16", "float16")


def setting(default, define, help_text, choices=None):
    """A settings field defined as a flag by `define` (flags.DEFINE_string, ...)."""
    metadata = {"define": define, "help": help_text, "choices": choices}
    return dataclasses.field(default=default, metadata=metadata)


def distributed(default, choices=None):
    """A settings field whose flag `distribute.define_flags` defines."""
    return dataclasses.field(default=default, metadata={"define": None, "choices": choices})


def check_choices(settings, error):
    """Raises `error` naming the flag when a field's value is not one of its choices."""
    for field in dataclasses.fields(settings):
        choices = field.metadata.get("choices")
        value = getattr(settings, field.name)
        if choices and value is not None and value not in choices:
            raise error(f"--{field.name}: is {value!r}; choose one of {', '.join(choices)}")


def define_flags(settings_class, flag_values=flags.FLAGS):
    """Defines one flag per field of `settings_class`, and the scale-out flags."""
    for field in dataclasses.fields(settings_class):
        define = field.metadata["define"]
        if define is None:
            continue
        kwargs = {"flag_values": flag_values}
        if field.metadata["choices"] is not None:
            kwargs["enum_values"] = list(field.metadata["choices"])
        default = field.default
        if define is flags.DEFINE_list and default is not None:
            default = [str(value) for value in default]
        define(field.name, default, help=field.metadata["help"], **kwargs)
    # Imported here so that a settings module stays free of TensorFlow until flags are defined.
    from electra_tf.training import distribute  # pylint: disable=import-outside-toplevel

    distribute.define_flags(flag_values)


def values_from_flags(settings_class, flag_values, only_given=False) -> dict:
    """{field: flag value} for `settings_class`; with only_given, the flags set explicitly."""
    return {
        field.name: flag_values[field.name].value
        for field in dataclasses.fields(settings_class)
        if not only_given or flag_values[field.name].present
    }


def parse_flags(settings_class, program, args, error):
    """A fresh FlagValues with `settings_class`'s flags parsed from `args` ("--name=value").

    A flag that does not parse or does not exist raises `error` with absl's message.
    """
    flag_values = flags.FlagValues()
    define_flags(settings_class, flag_values)
    try:
        flag_values([program, *args])
    except flags.Error as e:
        raise error(str(e)) from e
    return flag_values
