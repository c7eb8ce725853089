"""One readable report of everything that differs between a checkpoint and a model."""

from collections.abc import Sequence

import tensorflow as tf

# What TF's checkpoint reader raises for a truncated or corrupt file.
UNREADABLE_CHECKPOINT = (tf.errors.OpError, IndexError)


class ConversionError(ValueError):
    """A conversion cannot proceed; the message says everything that is wrong at once."""


def _shape(shape) -> str:
    if shape is None:
        return "-"
    dims = [str(int(d)) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def first_line(error: Exception) -> str:
    """The first line of an error's message (TF's run to pages), or its type's name."""
    text = str(error.message if isinstance(error, tf.errors.OpError) else error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def read_checkpoint(reader, checkpoint, *args, **kwargs):
    """`reader(checkpoint, ...)`, with a damaged TF checkpoint a ConversionError naming it."""
    try:
        return reader(checkpoint, *args, **kwargs)
    except UNREADABLE_CHECKPOINT as e:
        raise ConversionError(
            f"Cannot read the TF checkpoint {checkpoint} ({first_line(e)}): its .index or "
            ".data-* file is damaged or incomplete; download or copy it again"
        ) from None


class MismatchReport:
    """Collects (name, expected shape, found shape) rows and raises them together."""

    def __init__(self, source: str, target: str):
        self.source = source
        self.target = target
        self.rows: list[tuple[str, Sequence[int] | None, Sequence[int] | None, str]] = []
        self.notes: list[str] = []

    def missing(self, name, expected_shape):
        self.rows.append((name, expected_shape, None, "missing"))

    def unexpected(self, name, found_shape):
        self.rows.append((name, None, found_shape, "unexpected"))

    def shape(self, name, expected_shape, found_shape):
        self.rows.append((name, expected_shape, found_shape, "shape differs"))

    def value(self, name, expected, found, why="differs"):
        self.rows.append((name, expected, found, why))

    def note(self, text: str):
        self.notes.append(text)

    def __bool__(self):
        return bool(self.rows)

    def compare(self, expected: dict, found: dict, allow_unexpected=False):
        """Rows for every name missing, extra, or of another shape (dicts of name -> shape)."""
        for name in sorted(expected):
            if name not in found:
                self.missing(name, expected[name])
            elif tuple(found[name]) != tuple(expected[name]):
                self.shape(name, expected[name], found[name])
        if not allow_unexpected:
            for name in sorted(set(found) - set(expected)):
                self.unexpected(name, found[name])

    def message(self) -> str:
        width = max([len("name")] + [len(r[0]) for r in self.rows])
        lines = [
            f"Cannot convert {self.source} to {self.target}: {len(self.rows)} difference(s) "
            "between what the target expects and what the source holds:",
            f"  {'name'.ljust(width)}  {'expected':<18}  {'found':<18}  problem",
        ]
        for name, expected, found, why in self.rows:
            exp = _shape(expected) if not isinstance(expected, (str, int, float)) else str(expected)
            fnd = _shape(found) if not isinstance(found, (str, int, float)) else str(found)
            lines.append(f"  {name.ljust(width)}  {exp:<18}  {fnd:<18}  {why}")
        lines.extend(self.notes)
        return "\n".join(lines)

    def raise_if_any(self):
        if self.rows:
            raise ConversionError(self.message())
