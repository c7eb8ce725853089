"""Writing files without losing what is there: atomic writes, safe copies, guarded outputs.

Every file electra-tf writes goes through `write_text` / `write_json` (a temporary name in the
same folder, then a rename), so a crash mid-write leaves the old file or the new one, never a
truncated one. `copy_file` is a no-op when source and target are the same file:
`tf.io.gfile.copy(p, p, overwrite=True)` truncates `p` to 0 bytes without raising.
`check_output_dir` refuses to write into a non-empty folder unless asked to. Paths may be local
or any filesystem `tf.io.gfile` reads (gs://, ...). This module imports nothing from electra_tf.
"""

import json
import os
import uuid

import tensorflow as tf


class OutputExistsError(RuntimeError):
    """An output folder or file already holds something the user did not ask to overwrite."""


def _is_local(path):
    return "://" not in os.fspath(path)


def same_file(a, b):
    """True when paths `a` and `b` name the same file (links and `..` resolved where local)."""
    a, b = os.fspath(a), os.fspath(b)
    if _is_local(a) and _is_local(b):
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
        return os.path.realpath(a) == os.path.realpath(b)
    return a.rstrip("/") == b.rstrip("/")


def _temporary_name(path):
    directory, name = os.path.split(os.fspath(path))
    return os.path.join(directory, f".{name}.tmp-{uuid.uuid4().hex[:12]}")


def _replace(temporary, path):
    try:
        tf.io.gfile.rename(temporary, path, overwrite=True)
    except BaseException:
        if tf.io.gfile.exists(temporary):
            tf.io.gfile.remove(temporary)
        raise


def write_bytes(path, data: bytes):
    """Writes `data` to `path` through a temporary file renamed into place."""
    temporary = _temporary_name(path)
    try:
        with tf.io.gfile.GFile(temporary, "wb") as f:
            f.write(data)
    except BaseException:
        if tf.io.gfile.exists(temporary):
            tf.io.gfile.remove(temporary)
        raise
    _replace(temporary, path)


def write_text(path, text: str):
    """Writes `text` (UTF-8) to `path` through a temporary file renamed into place."""
    write_bytes(path, text.encode("utf-8"))


def write_json(path, value, **dumps_kwargs):
    """Writes `value` as JSON (with a final newline) to `path`, atomically."""
    write_text(path, json.dumps(value, **dumps_kwargs) + "\n")


def copy_file(source, target):
    """Copies `source` to `target` atomically; a no-op when they are the same file."""
    if same_file(source, target):
        return
    temporary = _temporary_name(target)
    try:
        tf.io.gfile.copy(os.fspath(source), temporary, overwrite=True)
    except BaseException:
        if tf.io.gfile.exists(temporary):
            tf.io.gfile.remove(temporary)
        raise
    _replace(temporary, target)


def temporary_dir_beside(directory):
    """A new, empty hidden folder beside `directory` (same filesystem, so it renames in fast)."""
    staging = _temporary_name(os.fspath(directory).rstrip("/"))
    tf.io.gfile.makedirs(staging)
    return staging


def replace_dir(staging, directory):
    """Puts folder `staging` in place of `directory`, deleting the old one only after.

    A crash between the two renames leaves the old folder beside, under a hidden
    `.<name>.tmp-*` name, never a half-written one in place.
    """
    directory = os.fspath(directory).rstrip("/")
    previous = None
    if tf.io.gfile.exists(directory):
        previous = _temporary_name(directory)
        tf.io.gfile.rename(directory, previous)
    tf.io.gfile.rename(staging, directory)
    if previous is not None:
        tf.io.gfile.rmtree(previous)


def check_output_dir(directory, flag, overwrite, is_resumable=None):
    """Refuses a non-empty `directory` unless `overwrite`, or `is_resumable(directory)` is true.

    `flag` names the option that chose the folder (e.g. "--model_dir"), for the message.
    Nothing is deleted either way: with `overwrite` the files written replace their
    namesakes, and other files stay.
    """
    directory = os.fspath(directory)
    if overwrite or not tf.io.gfile.isdir(directory) or not tf.io.gfile.listdir(directory):
        return
    if is_resumable is not None and is_resumable(directory):
        return
    listing = sorted(tf.io.gfile.listdir(directory))
    shown = ", ".join(listing[:5]) + (", ..." if len(listing) > 5 else "")
    raise OutputExistsError(
        f"{flag}={directory} is not empty ({shown}) and holds no run of this command to resume. "
        f"Choose a new folder, or pass --overwrite to write over the files of the same names."
    )
