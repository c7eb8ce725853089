"""Training FLOPs of every pre-training variant, counted as the ELECTRA paper counts them.

The counting rules are those of the original flops_computation.py (Clark et
al. 2020, appendix): a multiply-add is 2 FLOPs, a matrix multiply m x n by n
is 2mn, element-wise ops (dropout 4, LayerNorm 5, GELU 8, softmax 5 per
element) are counted per element, attention scores and the weighted sum are
included, and an MLM output layer only runs at the masked positions
(output_frac = max_predictions / seq_length).

Two conventions (`Convention`):
  - PAPER: what the original script computes and prints: training =
    2 x forward (it assumes the backward pass costs one forward pass) and
    embedding lookups counted as dense one-hot matmuls (2 * E * V per token).
    tests/test_flops.py checks ELECTRA-Small/Base against its printed totals.
  - DEFAULT (this project's logs and compute-matched experiments): a trained
    network costs forward + backward = 3 x forward (the backward pass of a
    matmul is two matmuls); a network that is only run forward (two_stage's
    frozen generator) costs 1 x forward; embedding lookups are gathers
    (0 FLOPs), since for small models a dense 2*E*V lookup would dominate and
    penalize ELECTRA's second lookup of the shared table.
"""

import dataclasses

DROPOUT_FLOPS = 4  # draw, compare, mask multiply, 1/(1-rate) multiply
LAYER_NORM_FLOPS = 5  # mean, variance (square + sum), scale, shift
ACTIVATION_FLOPS = 8  # GELU (tanh form)
SOFTMAX_FLOPS = 5  # max, subtract, exp, sum, divide


@dataclasses.dataclass(frozen=True)
class Convention:
    trained_multiplier: float = 3.0  # forward + backward, in forward passes
    dense_embedding_lookup: bool = False


DEFAULT = Convention()
PAPER = Convention(trained_multiplier=2.0, dense_embedding_lookup=True)


@dataclasses.dataclass(frozen=True)
class Encoder:
    """Forward FLOPs per example of one transformer encoder of sequence length s."""

    hidden: int
    layers: int
    seq_length: int
    vocab_size: int
    embedding: int | None = None
    intermediate: int | None = None
    heads: int | None = None

    @property
    def e(self):
        return self.hidden if self.embedding is None else self.embedding

    @property
    def i(self):
        return 4 * self.hidden if self.intermediate is None else self.intermediate

    @property
    def num_heads(self):
        return max(1, self.hidden // 64) if self.heads is None else self.heads

    def block(self):
        """One transformer layer, all positions."""
        h, s, i, n = self.hidden, self.seq_length, self.i, self.num_heads
        per_token = (
            3 * 2 * h * h
            + 3 * h  # q, k, v projections + biases
            + 2 * h * s  # scores q.k
            + (SOFTMAX_FLOPS + DROPOUT_FLOPS + 1) * s * n  # softmax, dropout, 1/sqrt(d) scale
            + 2 * h * s  # probabilities x values
            + 2 * h * h
            + h  # attention output + bias
            + (DROPOUT_FLOPS + 1 + LAYER_NORM_FLOPS) * h  # dropout, residual, LayerNorm
            + 2 * h * i
            + i
            + ACTIVATION_FLOPS * i  # intermediate + bias + GELU
            + 2 * h * i
            + h  # output + bias
            + (DROPOUT_FLOPS + 1 + LAYER_NORM_FLOPS) * h
        )  # dropout, residual, LayerNorm
        return per_token * s

    def embeddings(self, convention):
        """Input embeddings (+ the E -> H projection when they differ), all positions."""
        e, h, s = self.e, self.hidden, self.seq_length
        per_token = (
            2 * e * (s + 2)  # token type + position (the paper's count)
            + 2 * e
            + (LAYER_NORM_FLOPS + DROPOUT_FLOPS) * e
        )
        if convention.dense_embedding_lookup:
            per_token += 2 * e * self.vocab_size
        if e != h:
            per_token += 2 * h * e + h
        return per_token * s

    def forward(self, convention):
        return self.layers * self.block() + self.embeddings(convention)


def mlm_head(input_size, embedding, vocab_size, positions):
    """dense(input -> E) + GELU + LayerNorm + E x V logits + softmax at `positions` positions."""
    per_position = (
        2 * input_size * embedding
        + embedding
        + (ACTIVATION_FLOPS + LAYER_NORM_FLOPS) * embedding
        + 2 * embedding * vocab_size
        + (SOFTMAX_FLOPS + 2) * vocab_size
    )
    return per_position * positions


def binary_head(hidden, positions):
    """dense(H -> H) + GELU + dense(H -> 1) at every position."""
    return (2 * hidden * hidden + hidden + ACTIVATION_FLOPS * hidden + 2 * hidden) * positions


def encoder_from_config(config, seq_length):
    return Encoder(
        hidden=config.hidden_size,
        layers=config.num_hidden_layers,
        seq_length=seq_length,
        vocab_size=config.vocab_size,
        embedding=config.embedding_dim,
        intermediate=config.intermediate_size,
        heads=config.num_attention_heads,
    )


@dataclasses.dataclass(frozen=True)
class VariantFlops:
    """Training FLOPs per optimizer step; two_stage's two stages cost differently."""

    per_step: float  # every step (stage two's for two_stage)
    first_stage_per_step: float | None = None
    switch_step: int = 0

    def cumulative(self, step):
        if self.first_stage_per_step is None:
            return self.per_step * step
        first = min(step, self.switch_step)
        return self.first_stage_per_step * first + self.per_step * max(0, step - first)

    def steps_for(self, flops):
        """The first step whose cumulative FLOPs reach `flops`."""
        if self.first_stage_per_step is not None:
            first_total = self.first_stage_per_step * self.switch_step
            if flops <= first_total:
                return int(-(-flops // self.first_stage_per_step))
            return self.switch_step + int(-(-(flops - first_total) // self.per_step))
        return int(-(-flops // self.per_step))


def variant_train_flops(
    discriminator_config,
    generator_config,
    *,
    seq_length,
    batch_size,
    max_predictions,
    objective="electra",
    generator_training="mle",
    uniform_generator=False,
    embedding_sharing="embeddings",
    two_stage_switch_step=0,
    convention=DEFAULT,
):
    """FLOPs per optimizer step (global batch) of one variant (see ElectraPretrainer).

    Generator heads run at the masked positions only (max_predictions per
    sequence, as the original's output_frac); electric's cloze head and
    all_tokens_mlm's token head run at every position.
    """
    c = convention
    s, m = seq_length, max_predictions
    trained = c.trained_multiplier
    if embedding_sharing == "all" or generator_training == "two_stage":
        generator_config = discriminator_config.replace(
            embedding_size=discriminator_config.embedding_dim
        )
    d = encoder_from_config(discriminator_config, s)
    g = encoder_from_config(generator_config, s)
    v = discriminator_config.vocab_size

    def generator_forward():
        if objective == "mlm" or uniform_generator:
            return 0.0
        if objective == "electric":  # two towers, cloze head over 2H at every position
            return 2 * g.forward(c) + mlm_head(2 * g.hidden, g.e, v, s)
        return g.forward(c) + mlm_head(g.hidden, g.e, v, m)

    if objective in ("electra", "electra_15", "electric"):
        disc = d.forward(c) + binary_head(d.hidden, s)
    elif objective in ("mlm", "replace_mlm"):
        disc = d.forward(c) + mlm_head(d.hidden, d.e, v, m)
    elif objective == "all_tokens_mlm":
        disc = d.forward(c) + mlm_head(d.hidden, d.e, v, s) + binary_head(d.hidden, s)
    else:
        raise ValueError(f"Unknown objective {objective!r}")

    gen = generator_forward()
    if generator_training == "two_stage":
        return VariantFlops(
            per_step=batch_size * (gen + trained * disc),
            first_stage_per_step=batch_size * trained * gen,
            switch_step=two_stage_switch_step,
        )
    return VariantFlops(per_step=batch_size * trained * (gen + disc))


# --------------------------------------------------------------------- the paper's totals


def paper_transformer_train_flops(
    hidden,
    layers,
    batch_size,
    train_steps,
    *,
    seq_length=512,
    vocab_size=30522,
    embedding=None,
    discriminator=False,
    output_frac=0.15625,
):
    """The original's TransformerHparams(...).get_train_flops: PAPER convention."""
    enc = Encoder(hidden, layers, seq_length, vocab_size, embedding)
    head = (
        binary_head(hidden, seq_length)
        if discriminator
        else mlm_head(hidden, enc.e, vocab_size, output_frac * seq_length)
    )
    return PAPER.trained_multiplier * batch_size * train_steps * (enc.forward(PAPER) + head)


def paper_electra_train_flops(
    h_d, l_d, h_g, l_g, batch_size, train_steps, tied_embeddings, e=None, s=512, output_frac=0.15625
):
    """The original's get_electra_train_flops."""
    e = h_d if e is None else e
    return paper_transformer_train_flops(
        h_d,
        l_d,
        batch_size,
        train_steps,
        seq_length=s,
        embedding=e,
        discriminator=True,
        output_frac=output_frac,
    ) + paper_transformer_train_flops(
        h_g,
        l_g,
        batch_size,
        train_steps,
        seq_length=s,
        embedding=e if tied_embeddings else None,
        output_frac=output_frac,
    )


def describe(flops):
    return f"{flops:.3e}"
