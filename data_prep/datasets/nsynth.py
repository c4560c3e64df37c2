"""NSynth instrument family or pitch: ``python -m data_prep.datasets.nsynth --root NSYNTH --task pitch --out OUT``.

``--root`` holds the three official folders ``nsynth-{train,valid,test}``,
each with ``examples.json`` (an object keyed by ``note_str``; every note has
``pitch``, ``instrument_family_str``, ...) and ``audio/<note_str>.wav`` (4 s,
16 kHz). Splits are the official ones.

Tasks (one shard set each, so give each its own ``--out``):

- ``family``: multiclass over the 11 instrument families, in NSynth's index order.
- ``pitch``: multiclass over MIDI 9-120 (112 classes, labels ``"9"`` .. ``"120"``);
  notes outside that range are skipped and listed in ``skipped.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from data_prep.core.rows import InputRow
from data_prep.datasets.adapter import Prepared, Skipped, make_parser, run_adapter
from data_prep.datasets.metadata import MetadataError, require_file
from lit_mrl.formats.shards import sanitize_key

# instrument_family 0..10 in the dataset's own numbering
FAMILIES = ("bass", "brass", "flute", "guitar", "keyboard", "mallet", "organ", "reed", "string", "synth_lead", "vocal")  # fmt: skip
PITCHES = range(9, 121)
SPLITS = {"train": "nsynth-train", "valid": "nsynth-valid", "test": "nsynth-test"}


def read_examples(path: Path) -> dict[str, dict[str, Any]]:
    """The notes of one ``examples.json``, each checked for the fields the tasks need."""
    text = require_file(path, "NSynth examples.json").read_text(encoding="utf-8")
    try:
        notes = json.loads(text)
    except json.JSONDecodeError as err:
        raise MetadataError(path, f"invalid JSON ({err.msg})", err.lineno) from None
    if not isinstance(notes, dict):
        raise MetadataError(path, "expected an object keyed by note_str", 1)
    for name, note in notes.items():
        problem = _check_note(name, note)
        if problem:
            raise MetadataError(path, f"note {name!r}: {problem}", _line_of(text, name))
    return notes


def _check_note(name: str, note: Any) -> str | None:
    if not isinstance(note, dict):
        return "expected an object"
    if note.get("note_str", name) != name:
        return f"note_str {note['note_str']!r} differs from its key"
    pitch = note.get("pitch")
    if not isinstance(pitch, int) or isinstance(pitch, bool):
        return f"'pitch' must be an integer, got {pitch!r}"
    if note.get("instrument_family_str") not in FAMILIES:
        return f"'instrument_family_str' {note.get('instrument_family_str')!r} is not a family"
    return None


def _line_of(text: str, name: str) -> int:
    """Line of the first ``"name":`` in ``text`` (1 if absent): JSON errors point there."""
    index = text.find(json.dumps(name) + ":")
    return text.count("\n", 0, max(index, 0)) + 1


def prepare(args: argparse.Namespace) -> Prepared:
    vocabulary = list(FAMILIES) if args.task == "family" else [str(p) for p in PITCHES]
    entries, skipped = [], []
    for split, folder in SPLITS.items():
        notes = read_examples(args.root / folder / "examples.json")
        for name, note in sorted(notes.items()):
            audio = args.root / folder / "audio" / f"{name}.wav"
            if args.task == "family":
                label = note["instrument_family_str"]
            elif note["pitch"] in PITCHES:
                label = str(note["pitch"])
            else:
                reason = f"pitch {note['pitch']} outside MIDI {PITCHES[0]}-{PITCHES[-1]}"
                skipped.append(Skipped(f"{folder}/audio/{name}.wav", reason))
                continue
            entries.append(InputRow(audio, split, sanitize_key(name), name, [label]))
    what = "instrument family (11 classes)" if args.task == "family" else "pitch (MIDI 9-120)"
    return Prepared(
        task="multiclass",
        vocabulary=vocabulary,
        rows=entries,
        skipped=skipped,
        description=f"NSynth {what}, official splits",
        notes={"nsynth_task": args.task},
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser("python -m data_prep.datasets.nsynth", __doc__)
    parser.add_argument("--task", choices=["family", "pitch"], required=True)
    return run_adapter(parser, prepare, argv)


if __name__ == "__main__":
    sys.exit(main())
