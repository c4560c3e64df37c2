"""Data a user crafted by hand (tarfile, soundfile, numpy, json; never lit_mrl's writers).

Each test builds the bad input at test time and checks the exact outcome: the error (one
line naming the file and the field), the exit code, and that no wrong number gets through.
"""

import io
import json
import os
import tarfile
import warnings

import numpy as np
import pytest
import soundfile as sf

from lit_mrl.cli import main
from lit_mrl.data.crops import Span, read_spans
from lit_mrl.data.shards import ShardChangedError, iter_shard

SR = 16000


def one_line(capsys) -> str:
    """The single line a command printed on stderr."""
    (line,) = capsys.readouterr().err.strip().splitlines()
    return line


def wav_bytes(seed: int, samples: int = SR // 2) -> bytes:
    """A WAV file of noise: every seed gives the same number of bytes."""
    audio = np.random.default_rng(seed).uniform(-0.5, 0.5, samples)
    buffer = io.BytesIO()
    sf.write(buffer, audio, SR, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def write_tar(path, members) -> None:
    """A plain tar of ``(name, bytes)`` members with fixed metadata."""
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            tar.addfile(info, io.BytesIO(data))


def members(*tracks):
    """``{key}.flac`` (a WAV inside: same size for every key) and ``{key}.json`` per track."""
    out = []
    for key, seed in tracks:
        out += [
            (f"{key}.flac", wav_bytes(seed)),
            (f"{key}.json", json.dumps({"labels": []}).encode()),
        ]
    return out


def write_info(root, shards: dict[str, list[str]], sizes: dict[str, list[int]]) -> None:
    splits = {
        split: {"num_samples": sum(sizes[split]), "seconds": 0.5 * sum(sizes[split]),
                "shards": names, "shard_num_samples": sizes[split]}
        for split, names in shards.items()
    }  # fmt: skip
    info = {"format_version": 1, "dataset": "x", "sample_rate": SR, "task": "none",
            "vocabulary": [], "total_seconds": 0.0, "splits": splits}  # fmt: skip
    (root / "info.json").write_text(json.dumps(info))


def decoded(seed: int) -> np.ndarray:
    return sf.read(io.BytesIO(wav_bytes(seed)), dtype="float32")[0]


# 1. a shard replaced on disk after it was scanned


@pytest.mark.parametrize("keep_mtime", [True, False])
def test_a_shard_replaced_after_its_scan_is_an_error_not_another_tracks_audio(tmp_path, keep_mtime):
    shard = tmp_path / "x-train-000000.tar"
    write_tar(shard, members(("a", 1), ("b", 2)))
    refs = {s["key"]: s["flac"] for s in iter_shard(shard, audio="ref")}
    np.testing.assert_array_equal(
        read_spans(refs["a"], [Span(0, 100, 0)], 100)[0], decoded(1)[:100]
    )
    before = os.stat(shard)
    write_tar(shard, members(("b", 2), ("a", 1)))  # same size, same offsets, swapped tracks
    if keep_mtime:  # as `cp -p` or rsync -t would: only the tar header can tell
        os.utime(shard, ns=(before.st_atime_ns, before.st_mtime_ns))
    else:
        os.utime(shard, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
    detail = (
        "the member at byte 512 is 'b.flac' (16044 bytes), not 'a.flac' (16044 bytes)"
        if keep_mtime
        else "modified since (another modification time)"
    )
    with pytest.raises(ShardChangedError) as error:
        read_spans(refs["a"], [Span(0, 100, 0)], 100)
    assert str(error.value) == (
        f"{shard}: changed on disk since it was read (sample 'a'): {detail}"
    )


def test_a_shard_of_another_size_is_an_error(tmp_path):
    shard = tmp_path / "x-train-000000.tar"
    write_tar(shard, members(("a", 1)))
    (ref,) = (s["flac"] for s in iter_shard(shard, audio="ref"))
    size = os.path.getsize(shard)
    write_tar(shard, members(("a", 1), ("b", 2)))
    with pytest.raises(ShardChangedError, match=rf"sample 'a'\): {size} bytes then, \d+ now$"):
        read_spans(ref, [Span(0, 10, 0)], 10)


def test_the_training_stream_skips_a_changed_shard_with_one_warning(tmp_path):
    from lit_mrl.data.stream import CropSample, ShardSamples

    shard = tmp_path / "x-train-000000.tar"
    write_tar(shard, members(("a", 1), ("b", 2), ("c", 3)))
    samples = list(ShardSamples({shard.name: 3})([{"url": str(shard)}]))  # scanned
    stat = os.stat(shard)
    write_tar(shard, members(("c", 3), ("b", 2), ("a", 1)))
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    crop = CropSample(100, 1, 0, "none", [], SR, train=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = list(crop(samples))
    # 'b' lies where it was, but it came from a scan of a shard that is gone: skipped too
    assert out == []
    (warning,) = caught
    assert str(warning.message) == (
        f"skipping a broken shard: {shard}: changed on disk since it was read (sample 'a'): "
        "the member at byte 512 is 'c.flac' (16044 bytes), not 'a.flac' (16044 bytes); the "
        "other samples read from it before the change are skipped too (the next pass reads "
        "it afresh)"
    )
    again = list(crop(ShardSamples({shard.name: 3})([{"url": str(shard)}])))  # a new scan
    assert [item["key"] for item in again] == ["c", "b", "a"]
    np.testing.assert_array_equal(again[2]["audio"][0].numpy(), decoded(1)[SR // 4 - 50 :][:100])


def test_embed_counts_the_tracks_of_a_changed_shard_as_failed(
    tiny_checkpoint, tmp_path, capsys, monkeypatch
):
    import lit_mrl.embed.sources as sources

    data = tmp_path / "data"
    data.mkdir()
    shard = data / "x-test-000000.tar"
    write_tar(shard, members(("a", 1), ("b", 2), ("c", 3)))
    write_info(data, {"test": [shard.name]}, {"test": [3]})
    replacement = tmp_path / "replacement.tar"
    write_tar(replacement, members(("a", 1), ("c", 3), ("b", 2)))
    original, calls = sources.flac_blocks, []

    def replace_after_first_track(source, *args):
        calls.append(source.key)
        if len(calls) == 2:  # 'b' was located in the old file; now the shard is replaced
            stat = os.stat(shard)  # by a copy that kept the modification time
            os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
            os.replace(replacement, shard)
        return original(source, *args)

    monkeypatch.setattr(sources, "flac_blocks", replace_after_first_track)
    out = tmp_path / "emb"
    args = ["embed", "--checkpoint", str(tiny_checkpoint), "--input", str(data), "--out", str(out),
            "--num_workers", "0", "--trainer.accelerator", "cpu"]  # fmt: skip
    assert main(args) == 1
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert [(e["key"], e["error"]) for e in errors] == [
        ("b", f"{shard}: changed on disk since it was read (sample 'b'): the member at byte "
              "18432 is 'c.flac' (16044 bytes), not 'b.flac' (16044 bytes)"),
        ("c", f"{shard}: changed on disk since it was read (sample 'c'): the member at byte "
              "36352 is 'b.flac' (16044 bytes), not 'c.flac' (16044 bytes)"),
    ]  # fmt: skip
    capsys.readouterr()


def test_an_empty_flac_member_is_named_without_a_python_repr(tmp_path):
    from lit_mrl.embed.sources import flac_blocks

    shard = tmp_path / "x-train-000000.tar"
    write_tar(shard, [("a.flac", b""), ("a.json", b"{}")])
    (sample,) = iter_shard(shard, audio="ref")
    with pytest.raises(ValueError, match=r"^cannot decode audio: 0 bytes$"):
        next(flac_blocks(sample["flac"], SR, 1000))
    write_tar(shard, [("a.flac", b"not audio at all"), ("a.json", b"{}")])
    (sample,) = iter_shard(shard, audio="ref")
    with pytest.raises(ValueError, match=r"^cannot decode audio: Format not recognised\.$"):
        read_spans(sample["flac"], [Span(0, 10, 0)], 10)
