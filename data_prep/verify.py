"""Check a shard folder against its info.json: ``python -m data_prep.verify ROOT``.

Decodes every sample of every listed shard and checks keys, metadata, labels,
sample rate, per-shard and per-split counts and seconds, and which shards are
on disk. Shards may come from outside, so every tar member is checked too: a
regular file, named ``{key}.flac`` or ``{key}.json`` with a safe key (no folders,
no ``..``). Prints the sha256 of the sorted keys, so two runs can be compared.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import math
import re
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from tqdm import tqdm

from data_prep.core.flags import EXIT_CODES_HELP, FlagParser, add_debug_flag, run_main
from lit_mrl.errors import UsageError
from lit_mrl.formats.audio import decode_audio
from lit_mrl.formats.files import atomic_write
from lit_mrl.formats.info import DatasetInfo, read_info
from lit_mrl.formats.shards import iter_shard, parse_shard_name
from lit_mrl.signals import DeferredInterrupt

PROG = "python -m data_prep.verify"
SECONDS_TOLERANCE = 0.01  # info.json rounds seconds to milliseconds
MAX_PRINTED_PROBLEMS = 50
MEMBER_EXTENSIONS = ("flac", "json")
_SAFE_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclass
class Report:
    """What :func:`verify` found."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    counts: dict[str, tuple[int, float, int]] = field(default_factory=dict)

    @property
    def keys_sha256(self) -> str:
        """sha256 of the newline-joined sorted keys."""
        return hashlib.sha256("\n".join(sorted(self.keys)).encode()).hexdigest()


def check_meta(meta: dict[str, Any], key: str, split: str, info: DatasetInfo) -> list[str]:
    """Problems with one sample's ``{key}.json``."""
    problems = []
    if meta.get("key") != key or meta.get("split") != split:
        problems.append(f"key/split in json are {meta.get('key')!r}/{meta.get('split')!r}")
    labels = meta.get("labels")
    if not isinstance(labels, list):
        return [*problems, "'labels' is not a list"]
    unknown = sorted(set(labels) - set(info.vocabulary))
    if unknown and info.task != "regression":
        problems.append(f"labels {unknown} are not in the vocabulary")
    if info.task == "multiclass" and len(labels) != 1:
        problems.append(f"multiclass sample has {len(labels)} labels")
    targets = meta.get("targets")
    if info.task == "regression" and (
        not isinstance(targets, list)
        or len(targets) != len(info.vocabulary)
        or not all(isinstance(t, (int, float)) and math.isfinite(t) for t in targets)
    ):
        problems.append(f"needs {len(info.vocabulary)} finite targets, has {targets!r}")
    return problems


def check_members(path: Path) -> list[str]:
    """Problems with a shard's tar members, each naming the shard and the member.

    Every member must be a regular file named ``{key}.flac`` or ``{key}.json``, with
    ``key`` of ``[A-Za-z0-9_-]`` only: a path (``../evil.flac``, ``/abs/x.json``) or
    another extension (``.pickle``) fails. The reader skips such members unread.
    """
    try:
        with tarfile.open(path, "r:") as tar:
            found = [(member.name, _member_problem(member)) for member in tar]  # headers only
    except tarfile.TarError as err:
        return [f"{path.name}: not a readable tar shard ({err})"]
    return [f"{path.name}: member {name!r}: {problem}" for name, problem in found if problem]


def _member_problem(member: tarfile.TarInfo) -> str | None:
    key, dot, extension = member.name.partition(".")
    if not _SAFE_KEY.fullmatch(key):
        return "unsafe name (keys are [A-Za-z0-9_-]+: no folders, no '..', not absolute)"
    if not dot or extension not in MEMBER_EXTENSIONS:
        return f"unknown extension {'.' + extension if dot else '(none)'} (only .flac and .json)"
    if not member.isfile():
        return "not a regular file"
    return None


DECODE_BLOCK = 1 << 16  # samples per read: memory never follows a header's claim


def decoded_length(data: bytes) -> tuple[int, int]:
    """Samples a FLAC holds (decoded a block at a time, checked) and its rate in Hz.

    Memory stays at one block whatever the header claims.

    Raises:
        ValueError: undecodable, NaN/Inf, a header claiming 0 samples (FLAC's "unknown
            length", which lit_mrl's seek-reads cannot use), or data that breaks off
            before the samples the header claims.
    """
    try:
        file = sf.SoundFile(io.BytesIO(data))
    except sf.SoundFileError as err:
        decode_audio(data)  # raises, with a message that says what the bytes are
        raise ValueError(f"cannot open audio: {err}") from err  # a whole read worked
    count = 0
    with file:
        claimed, rate = file.frames, file.samplerate
        if claimed == 0 or claimed >= 2**62:  # libsndfile: SF_COUNT_MAX when unknown
            raise ValueError("FLAC header claims 0 samples (zero-length or unknown length)")
        try:
            while len(block := file.read(DECODE_BLOCK, dtype="float32", always_2d=True)):
                if not np.isfinite(block).all():
                    raise ValueError("audio contains NaN or Inf")
                count += len(block)
        except sf.SoundFileError as err:
            raise ValueError(
                f"FLAC header claims {claimed} samples, decoding fails after {count} ({err})"
            ) from err
    return count, rate


def check_shard(
    path: Path,
    split: str,
    info: DatasetInfo,
    report: Report,
    ctrl_c: DeferredInterrupt | None = None,
) -> tuple[int, float]:
    """Check the members, then decode and check every sample of one shard.

    ``ctrl_c``, when given, is checked after every sample: a Ctrl-C pressed inside a
    decode (where soundfile's read callbacks would drop it and the sample would look
    corrupt) stops the check there instead.

    Returns:
        ``(num_samples, seconds)`` of the samples the reader yields.
    """
    report.problems.extend(check_members(path))
    count, seconds = 0, 0.0
    for sample in iter_shard(path):
        if ctrl_c is not None:
            ctrl_c.check()
        key, meta = sample["key"], sample["json"]
        where = f"{path.name}: {key}"
        try:
            frames, sample_rate = decoded_length(sample["flac"])
            if ctrl_c is not None:
                ctrl_c.check()  # pressed inside this decode: its verdict is not trusted
        except ValueError as err:
            if ctrl_c is not None:
                ctrl_c.check()
            report.problems.append(f"{where}: {err}")
            continue
        duration = frames / sample_rate
        problems = check_meta(meta, key, split, info)
        if sample_rate != info.sample_rate:
            problems.append(f"sample rate {sample_rate} Hz, info.json says {info.sample_rate}")
        if (
            not isinstance(meta.get("duration"), (int, float))
            or abs(meta["duration"] - duration) > 1e-3
        ):
            problems.append(f"duration {meta.get('duration')!r} in json, {duration:.3f} s decoded")
        report.problems.extend(f"{where}: {problem}" for problem in problems)
        report.keys.append(key)
        count, seconds = count + 1, seconds + duration
    return count, seconds


def verify(root: str | Path) -> Report:
    """Check every shard listed in ``root/info.json``; see the module docstring.

    Raises:
        UsageError: ``root`` is not a folder.
        FileNotFoundError: it has no ``info.json``.
    """
    root, report = Path(root), Report()
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder (expected a dataset folder with info.json)")
    try:
        info = read_info(root)
    except ValueError as err:
        report.problems.append(str(err))
        return report
    listed = {name for split in info.splits.values() for name in split.shards}
    for path in sorted(root.iterdir()):
        if path.name.endswith(".tar") and path.name not in listed:
            report.problems.append(f"{path.name} is on disk but not in info.json")
        elif path.name.endswith(".tar.tmp"):
            report.notes.append(f"{path.name}: unfinished shard from an interrupted run")
    total = sum(split.num_samples for split in info.splits.values())
    with (
        DeferredInterrupt("stopping after this sample") as ctrl_c,
        tqdm(total=len(listed), unit="shard", desc="verifying", disable=total == 0) as bar,
    ):
        for name in info.splits:
            report.counts[name] = check_split(root, name, info, report, bar, ctrl_c)
    seconds = sum(split.seconds for split in info.splits.values())
    if abs(seconds - info.total_seconds) > SECONDS_TOLERANCE:
        report.problems.append(f"total_seconds {info.total_seconds} != sum of splits {seconds:.3f}")
    repeated = len(report.keys) - len(set(report.keys))
    if repeated:
        report.problems.append(f"{repeated} keys appear more than once")
    return report


def check_split(
    root: Path,
    name: str,
    info: DatasetInfo,
    report: Report,
    bar: tqdm,
    ctrl_c: DeferredInterrupt | None = None,
) -> tuple[int, float, int]:
    """Check one split's shards and totals; returns ``(num_samples, seconds, num_shards)``."""
    split = info.splits[name]
    num_samples, seconds = 0, 0.0
    for shard, expected in zip(split.shards, split.shard_num_samples, strict=True):
        bar.update()
        if Path(shard).name != shard or shard in (".", ".."):
            report.problems.append(f"{shard!r} in info.json is not a file name in {root}")
            continue  # never read outside the dataset folder
        parsed = parse_shard_name(shard, info.dataset)
        if parsed is None or parsed.split != name:
            report.problems.append(f"{shard} is listed under split {name!r} but named otherwise")
        if not (root / shard).is_file():
            report.problems.append(f"{shard} is in info.json but missing on disk")
            continue
        try:
            count, shard_seconds = check_shard(root / shard, name, info, report, ctrl_c)
        except ValueError as err:
            report.problems.append(str(err))
            continue
        if count != expected:
            report.problems.append(f"{shard}: {count} samples, info.json says {expected}")
        num_samples, seconds = num_samples + count, seconds + shard_seconds
    if num_samples != split.num_samples:
        report.problems.append(
            f"split {name}: {num_samples} samples, info.json says {split.num_samples}"
        )
    if abs(seconds - split.seconds) > SECONDS_TOLERANCE:
        report.problems.append(f"split {name}: {seconds:.3f} s, info.json says {split.seconds}")
    return num_samples, seconds, len(split.shards)


def run(args: argparse.Namespace) -> int:
    """The command: print the report; 0 if the folder matches its info.json, 1 otherwise."""
    report = verify(args.root)
    for line in report.problems[:MAX_PRINTED_PROBLEMS]:
        print(f"problem: {line}")
    if len(report.problems) > MAX_PRINTED_PROBLEMS:
        print(f"... and {len(report.problems) - MAX_PRINTED_PROBLEMS} more problems")
    for line in report.notes:
        print(f"note: {line}")
    for name, (num_samples, seconds, num_shards) in report.counts.items():
        print(f"split {name}: samples={num_samples} seconds={seconds:.1f} shards={num_shards}")
    print(f"keys={len(report.keys)} sha256={report.keys_sha256}")
    if args.keys is not None:
        atomic_write(args.keys, "".join(f"{key}\n" for key in sorted(report.keys)).encode())
    print("consistent" if not report.problems else f"INCONSISTENT: {len(report.problems)} problems")
    return 1 if report.problems else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point: 0 if the folder matches its info.json, 1 if not, 2 for usage errors."""
    parser = FlagParser(
        prog=PROG,
        description="Decode every sample of every shard in info.json and check it matches.",
        epilog="for verify, 1 means: problems found (each printed as 'problem: ...')\n\n"
        + EXIT_CODES_HELP,
    )
    parser.add_argument("root", help="dataset folder holding info.json")
    parser.add_argument("--keys", help="write the sorted sample keys to this file")
    add_debug_flag(parser)
    return run_main(lambda: parser.parse_args(argv), run, PROG)


if __name__ == "__main__":
    sys.exit(main())
