"""Musical key names and their canonical class order (no torch: data preparation uses it).

The 24 keys are ordered by tonic pitch class (C=0 ... B=11) plus 12 for minor:
0-11 = C major ... B major, 12-23 = C minor ... B minor, sharp spellings.
"""

from __future__ import annotations

PITCH_CLASS_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
KEY_NAMES = tuple(f"{pc} {mode}" for mode in ("major", "minor") for pc in PITCH_CLASS_NAMES)
_LETTERS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_ACCIDENTALS = {"": 0, "#": 1, "♯": 1, "b": -1, "♭": -1}
_MODES = {"major": 0, "maj": 0, "minor": 1, "min": 1}


def key_index(name: str) -> int:
    """Canonical class index of a key name such as ``"C major"``, ``"Db major"``, ``"a minor"``.

    Flats and sharps are mapped enharmonically (``"Db major"`` and ``"C# major"`` are both
    1; ``"Cb"`` is B, ``"E#"`` is F). Case is ignored; ``maj``/``min`` are accepted.

    Raises:
        ValueError: the name is not ``"<tonic> <mode>"``.
    """
    parts = name.strip().split()
    tonic = parts[0].lower() if parts else ""
    if (
        len(parts) != 2
        or tonic[:1] not in _LETTERS
        or tonic[1:] not in _ACCIDENTALS
        or parts[1].lower() not in _MODES
    ):
        raise ValueError(f"key name {name!r} is not '<tonic> <major|minor>', e.g. 'F# minor'")
    pitch_class = (_LETTERS[tonic[0]] + _ACCIDENTALS[tonic[1:]]) % 12
    return pitch_class + 12 * _MODES[parts[1].lower()]
