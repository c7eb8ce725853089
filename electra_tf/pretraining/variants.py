"""The pre-training variants (docs/pretraining_variants.md): their names, and which combinations
of objective, generator training, embedding sharing and generator size are supported.

  objective            electra (default) | electra_15 | replace_mlm | all_tokens_mlm |
                       mlm | electric
  generator_training   mle (default) | two_stage | adversarial
  embedding_sharing    embeddings (default) | none | all | gdes
  uniform_generator    sample replacements uniformly (no generator network)
"""

OBJECTIVES = ("electra", "electra_15", "replace_mlm", "all_tokens_mlm", "mlm", "electric")
GENERATOR_TRAINING = ("mle", "two_stage", "adversarial")
EMBEDDING_SHARING = ("none", "embeddings", "all", "gdes")
# Objectives whose discriminator is a binary replaced-token classifier.
RTD_OBJECTIVES = ("electra", "electra_15", "electric")
# Objectives whose "discriminator" predicts token identities with an MLM head.
TOKEN_OBJECTIVES = ("replace_mlm", "all_tokens_mlm", "mlm")


def resolve_embedding_sharing(
    embedding_sharing=None, untied_generator_embeddings=False, untied_generator=True
):
    """The sharing mode from the new flag and its two legacy aliases; raises if they disagree.

    `untied_generator_embeddings=True` is an alias of "none" and
    `untied_generator=False` (the original's flag: G and D share all weights)
    of "all".
    """
    implied = []
    if untied_generator_embeddings:
        implied.append(("untied_generator_embeddings=True", "none"))
    if not untied_generator:
        implied.append(("untied_generator=False", "all"))
    if embedding_sharing is None:
        if len(implied) > 1:
            raise ValueError(
                "untied_generator_embeddings=True (no sharing) contradicts "
                "untied_generator=False (share all weights)"
            )
        return implied[0][1] if implied else "embeddings"
    if embedding_sharing not in EMBEDDING_SHARING:
        raise ValueError(
            f"embedding_sharing must be one of {EMBEDDING_SHARING}, got {embedding_sharing!r}"
        )
    for flag, mode in implied:
        if mode != embedding_sharing:
            raise ValueError(
                f"{flag} means embedding_sharing={mode!r}, but "
                f"embedding_sharing={embedding_sharing!r} was given"
            )
    return embedding_sharing


def same_architecture(a, b):
    """Whether two encoder configs have the same width and depth."""
    # Heads and FFN width follow from these (the generator's are derived from
    # its hidden size); a same-size generator takes the discriminator's config.
    return a.hidden_size == b.hidden_size and a.num_hidden_layers == b.num_hidden_layers


def needs_same_size(generator_training, embedding_sharing):
    """Whether the variant makes the generator the discriminator's size."""
    return generator_training == "two_stage" or embedding_sharing == "all"


def validate_variant(
    objective,
    generator_training,
    uniform_generator,
    embedding_sharing,
    discriminator_config,
    generator_config,
):
    """Raises ValueError naming the first unsupported combination."""
    _check_names(objective, generator_training, embedding_sharing)
    if objective == "mlm":
        _check_mlm(generator_training, uniform_generator, embedding_sharing)
    elif uniform_generator:
        _check_uniform_generator(objective, generator_training, embedding_sharing)
    else:
        _check_generator(
            objective, generator_training, embedding_sharing, discriminator_config, generator_config
        )


def _check_names(objective, generator_training, embedding_sharing):
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if generator_training not in GENERATOR_TRAINING:
        raise ValueError(
            f"generator_training must be one of {GENERATOR_TRAINING}, got {generator_training!r}"
        )
    if embedding_sharing not in EMBEDDING_SHARING:
        raise ValueError(
            f"embedding_sharing must be one of {EMBEDDING_SHARING}, got {embedding_sharing!r}"
        )


def _check_mlm(generator_training, uniform_generator, embedding_sharing):
    if uniform_generator or generator_training != "mle" or embedding_sharing in ("all", "gdes"):
        raise ValueError(
            "objective='mlm' has no generator: it takes neither "
            "uniform_generator, generator_training other than 'mle', nor "
            "embedding_sharing 'all'/'gdes'"
        )


def _check_uniform_generator(objective, generator_training, embedding_sharing):
    if generator_training != "mle" or objective == "electric":
        raise ValueError(
            "uniform_generator has no parameters to train: it needs "
            "generator_training='mle' and an objective other than 'electric'"
        )
    if embedding_sharing in ("all", "gdes"):
        raise ValueError(
            f"uniform_generator has no weights to share (embedding_sharing={embedding_sharing!r})"
        )


def _check_generator(
    objective, generator_training, embedding_sharing, discriminator_config, generator_config
):
    """A generator network: which training, sharing and size fit the objective."""
    if objective == "electric" and (
        generator_training != "mle" or embedding_sharing not in ("none", "embeddings")
    ):
        raise ValueError(
            "objective='electric' (two-tower generator) supports "
            "generator_training='mle' and embedding_sharing 'none'/'embeddings'"
        )
    if generator_training in ("two_stage", "adversarial") and objective not in (
        "electra",
        "electra_15",
    ):
        raise ValueError(
            f"generator_training={generator_training!r} needs objective 'electra' or 'electra_15'"
        )
    if generator_training == "two_stage":
        _check_two_stage(embedding_sharing, discriminator_config, generator_config)
    if generator_training == "adversarial" and embedding_sharing == "all":
        raise ValueError(
            "generator_training='adversarial' needs a generator with its own "
            "transformer (embedding_sharing other than 'all')"
        )
    if embedding_sharing == "all" and not same_architecture(discriminator_config, generator_config):
        raise ValueError(
            "embedding_sharing='all' (untied_generator=False) shares every weight, "
            "so the generator must be the discriminator's size: "
            "generator_hidden_size=1.0 and generator_layers=1.0"
        )
    if (
        embedding_sharing == "gdes"
        and generator_config.embedding_dim != discriminator_config.embedding_dim
    ):
        raise ValueError(
            "embedding_sharing='gdes' needs the generator's embedding size to be "
            "the discriminator's"
        )


def _check_two_stage(embedding_sharing, discriminator_config, generator_config):
    if embedding_sharing not in ("none", "embeddings"):
        raise ValueError(
            "generator_training='two_stage' needs embedding_sharing 'none' or 'embeddings'"
        )
    if not same_architecture(discriminator_config, generator_config):
        raise ValueError(
            "generator_training='two_stage' initializes the discriminator from the "
            "generator, so they must be the same size: use generator_hidden_size=1.0 and "
            f"generator_layers=1.0 (generator {generator_config.hidden_size}x"
            f"{generator_config.num_hidden_layers}, discriminator "
            f"{discriminator_config.hidden_size}x{discriminator_config.num_hidden_layers})"
        )
