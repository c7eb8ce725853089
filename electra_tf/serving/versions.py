"""TF Serving's version folders: listing them, picking the next, and writing one atomically.

A version is written into ``<export_dir>/.tmp-<version>-<pid>`` (TF Serving ignores names that are
not integers), then renamed.  An existing version is replaced only with ``overwrite=True``.
"""

from __future__ import annotations

import os
import shutil
import tempfile

from electra_tf.serving.common import ExportError


def existing_versions(export_dir: str) -> list:
    if not os.path.isdir(export_dir):
        return []
    return sorted(
        int(name)
        for name in os.listdir(export_dir)
        if name.isdigit() and os.path.isdir(os.path.join(export_dir, name))
    )


def resolve_version(export_dir: str, version: int | None, overwrite: bool) -> int:
    """The version to write: `version`, or one more than the highest existing one."""
    if version is None:
        return max(existing_versions(export_dir), default=0) + 1
    if version < 0:
        raise ExportError(f"version must be a non-negative integer, got {version}")
    target = os.path.join(export_dir, str(version))
    if os.path.exists(target) and not overwrite:
        raise ExportError(
            f"{target} already exists; pass --overwrite to replace it, or leave "
            f"--version out to write version "
            f"{max(existing_versions(export_dir), default=0) + 1}"
        )
    return version


def write_version(export_dir: str, version: int | None, overwrite: bool, write_fn) -> str:
    os.makedirs(export_dir, exist_ok=True)
    version = resolve_version(export_dir, version, overwrite)
    target = os.path.join(export_dir, str(version))
    temp = tempfile.mkdtemp(prefix=f".tmp-{version}-", dir=export_dir)
    try:
        write_fn(temp)
        if os.path.exists(target):
            if not overwrite:  # appeared meanwhile (another export)
                raise ExportError(
                    f"{target} was written by someone else during this export; not overwriting it"
                )
            old = tempfile.mkdtemp(prefix=f".old-{version}-", dir=export_dir)
            os.rename(target, os.path.join(old, "previous"))
            os.rename(temp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.rename(temp, target)
            except OSError as e:
                raise ExportError(f"could not move the export into {target}: {e}") from e
    finally:
        if os.path.exists(temp):
            shutil.rmtree(temp, ignore_errors=True)
    return target
