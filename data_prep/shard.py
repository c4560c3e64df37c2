"""Shard a folder or manifest of audio into WebDataset tars: ``python -m data_prep.shard --help``.

The command line only: its flags become a :class:`~data_prep.core.options.ShardOptions`,
its ``--input`` folder or ``--manifest`` a list of
:class:`~data_prep.core.rows.InputRow`, and :func:`data_prep.core.sharder.shard_rows`
does the rest.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from data_prep.core.flags import (
    EXIT_CODES_HELP,
    FlagParser,
    add_debug_flag,
    argv_of,
    default_workers,
    nonnegative_int,
    positive_float,
    positive_int,
    run_main,
)
from data_prep.core.inputs import infer_task
from data_prep.core.manifest import list_folder, read_manifest
from data_prep.core.options import ShardOptions
from data_prep.core.sharder import merge_info, shard_rows
from lit_mrl.errors import UsageError
from lit_mrl.formats.info import TASKS

PROG = "python -m data_prep.shard"
DESCRIPTION = """\
Decode, downmix, resample and FLAC-encode audio into WebDataset shards, with
info.json and errors.jsonl ({"path", "reason"} per failed input) in --out.
Rerun the same command after a crash or a full disk to resume; if inputs that
are already sharded changed since, the run stops: rerun with --overwrite.

manifest .jsonl: one object per line: path (required; relative to the
  manifest's folder or absolute), split (default train), labels (list or
  string), targets (list of numbers), key, track_id, meta (an object kept
  verbatim); any other key is an error
manifest .csv: header with path, split, labels (';'-separated), targets, key,
  track_id, meta (a JSON object in the cell); any other column is an error

partitions: run with --num_partitions K --partition_index I for each I, then
  python -m data_prep.shard merge_info OUT [--num_partitions K]

The kebab-case flags of earlier releases (--sample-rate, ...) still work for
this release, with a note; they will be removed.
"""


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Flags of the sharding command."""
    parser = FlagParser(prog=PROG, description=DESCRIPTION, epilog=EXIT_CODES_HELP)
    add = parser.add_argument
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", metavar="DIR", help="folder of audio, searched recursively")
    source.add_argument("--manifest", metavar="FILE", help=".jsonl or .csv manifest (see above)")
    add("--out", metavar="DIR", required=True, help="output folder (one dataset per folder)")
    add("--split", default="train", help="split of all --input files (default: train)")
    add("--labels_from_parent", action="store_true", help="--input: label = parent folder name")
    add("--dataset", metavar="NAME", help="shard name prefix (default: name of --out)")
    add("--sample_rate", metavar="HZ", type=positive_int, default=16000, help="(default: 16000)")
    add("--task", choices=TASKS, help="(default: multilabel if there are labels, else none)")
    add("--vocabulary", metavar="FILE", help="one label per line (default: sorted labels seen)")
    add("--workers", metavar="N", type=nonnegative_int, default=default_workers(),
        help="decoding processes, 0: none (default: min(4, CPUs))")  # fmt: skip
    add("--max_shard_mb", metavar="MB", type=positive_float, default=500.0, help="(default: 500)")
    add("--max_shard_samples", metavar="N", type=positive_int, help="also bound samples per shard")
    add("--max_seconds", metavar="S", type=positive_float, help="keep the first S s of each track")
    add("--num_partitions", metavar="K", type=positive_int, default=1, help="(default: 1)")
    add("--partition_index", metavar="I", type=nonnegative_int, default=0,
        help="process inputs i %% K == I")  # fmt: skip
    add("--overwrite", action="store_true",
        help="delete this dataset's shards, info and errors in --out first, and shard from scratch")  # fmt: skip
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.manifest is not None and (args.labels_from_parent or args.split != "train"):
        parser.error("--split and --labels_from_parent apply to --input only")
    if args.partition_index >= args.num_partitions:
        parser.error("argument --partition_index: must be less than --num_partitions")
    return args


def read_vocabulary_file(path: str) -> tuple[str, ...]:
    """The labels of a ``--vocabulary`` file, one per line, in order."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UsageError(f"--vocabulary {path} does not exist") from None
    return tuple(line.strip() for line in lines if line.strip())


def shard(args: argparse.Namespace) -> int:
    """The sharding command; returns the exit status."""
    out = Path(args.out)
    if args.input is not None:
        root = Path(args.input)
        if not root.is_dir():
            raise UsageError(f"--input {root} is not a folder")
        rows, skipped = list_folder(root, args.split, args.labels_from_parent, out.resolve())
        if not rows:
            found = _files(len(skipped), "other ") if skipped else "no files"
            raise UsageError(
                f"no audio files in --input {root} ({found}; audio is told by its extension, "
                ".wav .flac .mp3 .m4a ..., or its first bytes, recursively)"
            )
        if skipped:
            names = ", ".join(path.name for path in skipped[:3]) + ", ..." * (len(skipped) > 3)
            print(f"--input: skipped {_files(len(skipped))} that are not audio ({names})")
        task = args.task
    else:
        rows = read_manifest(Path(args.manifest))
        if not rows:
            raise UsageError(f"manifest {args.manifest} lists no inputs")
        task = args.task or infer_task(rows)
    options = ShardOptions(
        out=out,
        dataset=args.dataset,
        sample_rate=args.sample_rate,
        task=task,
        vocabulary=None if args.vocabulary is None else read_vocabulary_file(args.vocabulary),
        vocabulary_source=args.vocabulary or "the labels seen",
        workers=args.workers,
        max_shard_mb=args.max_shard_mb,
        max_shard_samples=args.max_shard_samples,
        max_seconds=args.max_seconds,
        num_partitions=args.num_partitions,
        partition_index=args.partition_index,
        overwrite=args.overwrite,
    )
    return shard_rows(rows, options, origin=str(args.input or args.manifest))


def _files(count: int, kind: str = "") -> str:
    return f"{count} {kind}file{'s' * (count != 1)}"


def parse_merge_args(argv: Sequence[str]) -> argparse.Namespace:
    """Flags of ``merge_info``."""
    parser = FlagParser(
        prog=f"{PROG} merge_info",
        description="Combine the info.pNNN.json files of partition runs into info.json.",
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("out", type=Path, help="the shared output folder")
    parser.add_argument(
        "--num_partitions", type=positive_int, help="fail unless all K partitions are there"
    )
    add_debug_flag(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (see ``--help``)."""
    argv = argv_of(argv)
    if argv[:1] in (["merge_info"], ["merge-info"]):  # merge-info: the old spelling
        prog = f"{PROG} merge_info"
        if argv[0] == "merge-info":
            print(f"{prog}: note: merge-info is deprecated, use merge_info", file=sys.stderr)
        return run_main(
            lambda: parse_merge_args(argv[1:]),
            lambda args: merge_info(args.out, args.num_partitions),
            prog,
        )
    return run_main(lambda: parse_args(argv), shard, PROG)


if __name__ == "__main__":
    sys.exit(main())
