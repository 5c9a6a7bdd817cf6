"""FunASR jsonl data lists: read as entry dicts (small lists, tools) or indexed (training).

A list line is ``{"key", "source", "source_len", "target", "target_len"}`` (extra fields are
kept). ``source_len`` is FunASR's: 10 ms frames of the audio; ``target_len`` counts words
when the text has a space, else characters. Relative ``source`` paths are taken relative to
the list's directory when the file is there, else to the working directory.

Training indexes its lists compactly (engine.data.list_index); :func:`read_jsonl` makes one dict
per line, for decoding inputs and the data tools.
"""

from __future__ import annotations

from engine.data.list_index import (  # noqa: F401  (the names data code imports from here)
    AUDIO_CHECK_THREADS,
    REQUIRED_FIELDS,
    DataError,
    index_list,
    parse_source_len,
    probe_audio,
    resolve_source,
    source_len_of,
    target_len_of,
)
from engine.data.report import DataReport


def read_jsonl(path, strict: bool = False, check_audio: bool = True, fs: int = 16000,
               progress: bool = False, require_target: bool = True) -> tuple[list[dict], DataReport]:
    """Read a jsonl list as entry dicts; bad entries are skipped and counted (``strict``: raise instead).

    ``require_target=False`` (decoding) keeps entries without a ``target``: they are decoded, not scored.

    With ``check_audio`` every audio header is read: missing or unreadable files are reported by
    key, and the entries that will be resampled to ``fs`` or downmixed to mono are counted in the
    report's notes. Without it only entries lacking ``source_len`` are probed.
    """
    index, report = index_list(path, strict=strict, check_audio=check_audio, fs=fs, progress=progress,
                               require_target=require_target)
    entries = [index.entry(i) for i in range(len(index))]
    for entry in entries:
        del entry["list"]
    index.close()
    return entries, report
