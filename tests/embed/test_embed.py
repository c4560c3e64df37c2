import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from lit_mrl.cli import main
from lit_mrl.data.labels import encode_labels
from lit_mrl.embed.extractor import TimelineEmbedder
from lit_mrl.embed.models import from_training_configs
from lit_mrl.embed.windows import cut_windows, window_centres, window_starts
from lit_mrl.formats.embeddings import load_split, read_index
from lit_mrl.formats.info import read_info, shard_paths
from lit_mrl.formats.shard_writer import write_dataset
from lit_mrl.formats.shards import iter_shard
from lit_mrl.models import AudioEncoder, LogMelStats, SmallCNN
from lit_mrl.models.frontend import LogMelSpectrogram, standardize

ROOT = Path(__file__).resolve().parents[2]
SR = 16000


@pytest.fixture(scope="module")
def two_tracks(tmp_path_factory):
    """Two 0.5 s clips in one split: for tests that only need the command to run."""
    root = tmp_path_factory.mktemp("two_tracks")
    rng = np.random.default_rng(0)
    clips = [(f"k{i}", rng.uniform(-0.5, 0.5, SR // 2).astype(np.float32), {}) for i in range(2)]
    write_dataset(root, "two", {"test": clips}, SR)
    return root


def timeline(seconds: float) -> tuple[np.ndarray, np.ndarray]:
    frames = round(seconds * SR) // 160
    starts = window_starts(frames, 300, 200)
    return starts, window_centres(starts, frames, 300, 100.0)


@pytest.mark.parametrize(
    ("seconds", "starts", "centres"),
    [
        (1.0, [0], [0.5]),  # padded into one window; stamped at the centre of its audio
        (3.0, [0], [1.5]),  # exactly one window
        (10.0, [0, 200, 400, 600, 700], [1.5, 3.5, 5.5, 7.5, 8.5]),  # last one flush with the end
        (10.5, [0, 200, 400, 600, 750], [1.5, 3.5, 5.5, 7.5, 9.0]),
    ],
)
def test_timeline_of_short_and_medium_tracks(seconds, starts, centres):
    got_starts, got_centres = timeline(seconds)
    np.testing.assert_array_equal(got_starts, starts)
    np.testing.assert_allclose(got_centres, centres)


def test_timeline_of_95_s_has_47_windows_every_2_s():
    starts, centres = timeline(95.0)
    assert len(starts) == 47
    np.testing.assert_array_equal(starts, 200 * np.arange(47))  # last start 9200 = 9500 - 300
    np.testing.assert_allclose(centres, 1.5 + 2.0 * np.arange(47))  # 1.5 ... 93.5 s


def test_every_frame_is_covered_and_no_window_passes_the_end():
    for frames in (301, 499, 500, 501, 1234, 9999):
        starts = window_starts(frames, 300, 200)
        assert starts[0] == 0
        assert starts[-1] + 300 == frames
        assert np.all(np.diff(starts) <= 200)
        assert np.all(np.diff(starts) > 0)


def test_cut_windows_pads_short_tracks_with_silence_then_the_encoder_standardises():
    spec = torch.rand(96, 100) + 1.0
    (raw,) = cut_windows(spec, window_starts(100, 300, 200), 300)
    torch.testing.assert_close(raw, torch.cat([spec, torch.zeros(96, 200)], dim=1))
    window = AudioEncoder(LogMelStats()).standardize(raw)
    expected = standardize(torch.cat([spec, torch.zeros(96, 200)], dim=1))
    torch.testing.assert_close(window, expected)
    std, mean = torch.std_mean(window)
    assert abs(mean.item()) < 1e-5
    assert abs(std.item() - 1.0) < 1e-4


def test_cut_windows_takes_the_frames_of_each_start():
    spec = torch.randn(8, 1000)
    starts = window_starts(1000, 300, 200)
    windows = cut_windows(spec, starts, 300)
    assert windows.shape == (5, 8, 300)
    torch.testing.assert_close(windows[-1], spec[:, 700:])


@pytest.mark.parametrize("samples", [200, 900, 3 * SR + 123])
def test_track_logmel_in_chunks_equals_one_pass(samples):
    frontend = LogMelSpectrogram()
    audio = 0.1 * torch.randn(samples, generator=torch.Generator().manual_seed(samples))
    chunked = frontend.track_logmel(audio, chunk_frames=150)
    assert chunked.shape == (96, samples // 160)
    if samples > 1024:  # shorter clips are zero-padded for the reflect padding
        torch.testing.assert_close(chunked, frontend.logmel(audio[None])[0], atol=1e-4, rtol=1e-4)


def tiny_module() -> AudioEncoder:
    torch.manual_seed(0)
    return AudioEncoder(SmallCNN([4, 8])).eval()


def per_window_loop(encoder: AudioEncoder, audio: torch.Tensor) -> np.ndarray:
    """The released code's way: one track, one window, batch 1."""
    spec = LogMelSpectrogram().logmel(audio[None])[0]
    out = []
    for start in window_starts(spec.shape[1], 300, 200):
        window = spec[:, start : start + 300]
        window = torch.nn.functional.pad(window, (0, 300 - window.shape[1]))
        with torch.no_grad():
            out.append(encoder.encode(standardize(window)[None])[0])
    return torch.stack(out).numpy()


def test_batched_windows_of_many_tracks_match_a_per_window_loop():
    module = tiny_module()
    rng = np.random.default_rng(0)
    lengths = [1.0, 10.0, 4.2, 0.3, 3.0]
    audio = [rng.uniform(-0.5, 0.5, int(s * SR)).astype(np.float32) for s in lengths]
    items = [{"key": f"t{i}", "audio": a, "label": i} for i, a in enumerate(audio)]
    embedder = TimelineEmbedder(module, batch_windows=3, chunk_seconds=2.0)
    rows = list(embedder.embed_tracks(iter(items)))
    assert [r["key"] for r in rows] == ["t0", "t1", "t2", "t3", "t4"]  # input order
    assert [r["label"] for r in rows] == [0, 1, 2, 3, 4]  # other fields pass through
    assert [len(r["timeline"]) for r in rows] == [1, 5, 2, 1, 1]
    for row, clip in zip(rows, audio, strict=True):
        expected = per_window_loop(module, torch.from_numpy(clip))
        np.testing.assert_allclose(row["timeline"], expected, atol=1e-4)
        np.testing.assert_allclose(row["embedding"], row["timeline"].mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(rows[1]["timestamps"], [1.5, 3.5, 5.5, 7.5, 8.5])


def test_embedder_rejects_non_finite_audio():
    audio = np.zeros(SR, dtype=np.float32)
    audio[10] = np.nan
    embedder = TimelineEmbedder(tiny_module())
    with pytest.raises(ValueError, match="NaN or Inf"):
        list(embedder.embed_tracks([{"key": "bad", "audio": audio}]))


def run_embed(args, capsys=None, code=0):
    """``python -m lit_mrl embed ARGS``; checks the exit code, returns stdout + stderr."""
    assert main(["embed", *map(str, args), "--trainer.accelerator", "cpu"]) == code
    if capsys is None:
        return None
    captured = capsys.readouterr()
    return captured.out + captured.err


def test_embed_shards_writes_parts_labels_and_index(tiny_shards, tiny_checkpoint, tmp_path):
    out = tmp_path / "emb"
    args = ["--checkpoint", tiny_checkpoint, "--input", tiny_shards, "--out", out]
    run_embed([*args, "--part_size", 5, "--num_workers", 2])
    index = read_index(out)
    info = read_info(tiny_shards)
    made = index.settings
    assert index.embed_dim == 8
    assert index.task == "multilabel"
    assert index.vocabulary == info.vocabulary
    assert (made["window_seconds"], made["hop_seconds"], made["sample_rate"]) == (3, 2, 16000)
    assert made["checkpoint"] == str(Path(tiny_checkpoint).resolve())
    assert made["encoder_class"].endswith("SmallCNN")
    assert len(made["fingerprint"]) == 64  # sha256 of the checkpoint
    assert index.splits["train"].num_samples == 16
    assert [p.num_samples for p in index.splits["train"].parts] == [5, 5, 5, 1]
    assert not list(out.glob("parts*.jsonl"))  # merged into the index
    for split in ("train", "valid", "test"):
        data = load_split(out, split, timeline=True)
        samples = {
            s["key"]: s["json"] for p in shard_paths(tiny_shards, split) for s in iter_shard(p)
        }
        assert sorted(data.keys) == sorted(samples)
        for i, key in enumerate(data.keys):
            label = encode_labels(samples[key], "multilabel", info.vocabulary).numpy()
            np.testing.assert_array_equal(data.labels[i], label)
            timeline, stamps = data.track_timeline(i)
            assert timeline.shape == (1, 8)  # 0.5-1 s clips: one padded window
            np.testing.assert_allclose(data.embeddings[i], timeline.mean(axis=0), atol=1e-6)
            assert 0.25 <= stamps[0] <= 0.5


def test_rerun_skips_embedded_tracks_and_refills_a_lost_part(
    tiny_shards, tiny_checkpoint, tmp_path, capsys
):
    out = tmp_path / "emb"
    args = ["--checkpoint", tiny_checkpoint, "--input", tiny_shards, "--out", out]
    args += ["--splits", "valid", "--part_size", 3, "--num_workers", 0]
    run_embed(args)
    first = load_split(out, "valid")
    (out / "valid-000001.npz").unlink()
    text = run_embed(args, capsys)
    assert "valid: 5 tracks already embedded (skipped), 3 to embed" in text
    again = load_split(out, "valid")
    assert sorted(again.keys) == sorted(first.keys)  # none lost, none twice
    order = [first.keys.index(k) for k in again.keys]
    np.testing.assert_allclose(again.embeddings, first.embeddings[order], atol=1e-6)
    assert read_index(out).splits["valid"].parts[-1].name == "valid-000003.npz"
    assert "0 to embed" in run_embed(args, capsys)


def test_rerun_with_other_settings_is_refused(two_tracks, tiny_checkpoint, tmp_path, capsys):
    args = ["--checkpoint", tiny_checkpoint, "--input", two_tracks, "--out", tmp_path]
    args += ["--num_workers", 0]
    run_embed(args)
    text = run_embed([*args, "--hop_seconds", 1], capsys, code=2)
    assert "hop_seconds=2.0, this run has hop_seconds=1.0" in text


def write_audio_folder(root: Path) -> None:
    rng = np.random.default_rng(0)
    (root / "sub").mkdir(parents=True)
    sf.write(root / "a.wav", rng.uniform(-0.5, 0.5, int(1.5 * SR)), SR)
    sf.write(root / "sub" / "b.flac", rng.uniform(-0.5, 0.5, 4 * 22050), 22050)  # resampled
    (root / "c.wav").write_bytes(b"RIFF not really a wav")
    nan = np.zeros(SR, dtype=np.float32)
    nan[5] = np.nan
    sf.write(root / "d.wav", nan, SR, subtype="FLOAT")
    sf.write(root / "e.wav", np.zeros(50, dtype=np.float32), SR)  # under one frame
    (root / "notes.txt").write_text("not audio")


def test_embed_audio_folder_resamples_and_reports_bad_files(tiny_checkpoint, tmp_path):
    write_audio_folder(tmp_path / "audio")
    out = tmp_path / "emb"
    args = ["--checkpoint", tiny_checkpoint, "--input", tmp_path / "audio", "--out", out]
    run_embed([*args, "--num_workers", 0], code=1)  # some inputs failed
    index = read_index(out)
    assert index.task == "none"
    assert index.settings["input_kind"] == "files"
    data = load_split(out, "all", timeline=True)
    assert data.keys == ["a.wav", "sub/b.flac"]
    assert data.labels.shape == (2, 0)
    assert len(data.track_timeline(1)[0]) == 2  # 4 s at 22.05 kHz -> 400 frames at 16 kHz
    errors = {e["key"]: e for e in map(json.loads, (out / "errors.jsonl").read_text().splitlines())}
    assert set(errors) == {"c.wav", "d.wav", "e.wav"}
    assert "not audio (starts like a text file)" in errors["c.wav"]["error"]
    assert "NaN or Inf" in errors["d.wav"]["error"]
    assert "less than one frame" in errors["e.wav"]["error"]
    assert errors["c.wav"]["source"] == str((tmp_path / "audio" / "c.wav").resolve())


def test_embed_a_list_of_files_reports_missing_ones(tiny_checkpoint, tmp_path):
    write_audio_folder(tmp_path / "audio")
    (tmp_path / "list.txt").write_text("# tracks\naudio/a.wav\n\naudio/missing.wav\n")
    out = tmp_path / "emb"
    args = ["--checkpoint", tiny_checkpoint, "--input", tmp_path / "list.txt", "--out", out]
    run_embed([*args, "--num_workers", 0, "--splits", "[mine]"], code=1)
    assert load_split(out, "mine").keys == ["audio/a.wav"]
    (error,) = map(json.loads, (out / "errors.jsonl").read_text().splitlines())
    assert error["key"] == "audio/missing.wav"
    assert "file not found" in error["error"]


def test_shards_at_another_rate_are_refused_naming_both(tiny_checkpoint, tmp_path, capsys):
    clip = np.zeros(8000, dtype=np.float32)
    write_dataset(tmp_path / "sh", "low", {"test": [("k", clip, {})]}, 8000)
    args = ["--checkpoint", tiny_checkpoint, "--input", tmp_path / "sh", "--out", tmp_path]
    text = run_embed(args, capsys, code=2)
    assert "are at 8000 Hz but the model expects 16000 Hz" in text


def test_random_init_baseline_is_seeded(two_tracks, tmp_path):
    configs = [ROOT / "configs/pretrain/supervised.yaml", ROOT / "tests/configs/tiny.yaml"]
    common = ["--input", two_tracks, "--num_workers", 0, "--seed", 0]
    listed = "[" + ", ".join(map(str, configs)) + "]"
    for name in "ab":
        run_embed(["--random_init", listed, "--out", tmp_path / name, *common])
    a, b = (load_split(tmp_path / n, "test").embeddings for n in "ab")
    np.testing.assert_array_equal(a, b)
    paths = list(map(str, configs))
    weights = [from_training_configs(paths, seed)[0].state_dict() for seed in (0, 0, 1)]
    for name, value in weights[0].items():
        torch.testing.assert_close(value, weights[1][name], rtol=0, atol=0)
    assert any(not torch.equal(v, weights[2][n]) for n, v in weights[0].items())
    index = read_index(tmp_path / "a")
    assert "checkpoint" not in index.settings
    assert index.settings["seed"] == 0
    assert index.embed_dim == 8
    assert len(index.settings["random_init"]) == 2


def test_embed_is_a_registered_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["embed", "--help"])
    assert exit_info.value.code == 0
    assert "--checkpoint" in capsys.readouterr().out


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_embeddings_are_close_to_cpu_float32():
    module = tiny_module()
    audio = np.random.default_rng(0).uniform(-0.5, 0.5, 7 * SR).astype(np.float32)
    cpu = next(TimelineEmbedder(module).embed_tracks([{"audio": audio}]))
    gpu = next(TimelineEmbedder(module, device="cuda", bf16=True).embed_tracks([{"audio": audio}]))
    np.testing.assert_allclose(gpu["timeline"], cpu["timeline"], rtol=0.05, atol=0.05)


def test_a_file_and_its_shard_embed_identically(tiny_checkpoint, tmp_path):
    """One audio loader: embedding the file and embedding its shard give the same numbers."""
    from data_prep import shard

    rng = np.random.default_rng(3)
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "song.wav", rng.uniform(-0.5, 0.5, (5 * 22050, 2)), 22050)
    assert shard.main(["--input", str(tmp_path / "audio"), "--out", str(tmp_path / "sh"),
                       "--dataset", "songs", "--workers", "0"]) == 0  # fmt: skip
    for name, source in (("direct", tmp_path / "audio"), ("sharded", tmp_path / "sh")):
        args = ["--checkpoint", tiny_checkpoint, "--input", source, "--out", tmp_path / name]
        run_embed([*args, "--num_workers", 0])
    direct = load_split(tmp_path / "direct", "all", timeline=True)
    (split,) = read_index(tmp_path / "sharded").splits
    sharded = load_split(tmp_path / "sharded", split, timeline=True)
    np.testing.assert_array_equal(direct.timeline, sharded.timeline)


def test_long_tracks_stream_in_blocks_with_the_same_result(tiny_checkpoint, tmp_path):
    rng = np.random.default_rng(4)
    clip = (np.round(rng.uniform(-0.3, 0.3, 37 * SR) * 32767) / 32768).astype(np.float32)
    write_dataset(tmp_path / "sh", "long", {"test": [("long", clip, {})]}, SR)
    outs = {}
    for seconds in (2.5, 60):
        out = tmp_path / f"chunk{seconds}"
        args = ["--checkpoint", tiny_checkpoint, "--input", tmp_path / "sh", "--out", out]
        run_embed([*args, "--num_workers", 0, "--chunk_seconds", seconds])
        outs[seconds] = load_split(out, "test", timeline=True)
    assert len(outs[60].timeline) == 18  # 37 s: windows every 2 s, the last flush with the end
    np.testing.assert_allclose(outs[2.5].timeline, outs[60].timeline, atol=1e-5)
    np.testing.assert_array_equal(outs[2.5].timestamps, outs[60].timestamps)


def test_two_processes_embed_exactly_what_one_does(tiny_shards, tiny_checkpoint, tmp_path):
    """torchrun, 2 CPU processes (gloo): disjoint shares, one merged index, same embeddings."""
    import subprocess
    import sys

    args = ["embed", "--checkpoint", str(tiny_checkpoint), "--input", str(tiny_shards),
            "--num_workers", "0", "--part_size", "3", "--trainer.accelerator", "cpu"]  # fmt: skip
    assert main([*args, "--out", str(tmp_path / "one")]) == 0
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                "--master-port", "29517", "-m", "lit_mrl"]  # fmt: skip
    proc = subprocess.run(
        [*torchrun, *args, "--out", str(tmp_path / "two"), "--trainer.devices", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    index = read_index(tmp_path / "two")
    for split in ("train", "valid", "test"):
        one, two = load_split(tmp_path / "one", split), load_split(tmp_path / "two", split)
        assert sorted(two.keys) == sorted(one.keys)  # none lost, none twice
        order = [two.keys.index(key) for key in one.keys]
        np.testing.assert_allclose(two.embeddings[order], one.embeddings, atol=1e-6)
        parts = index.splits[split].parts
        assert {p.name.split("-")[1] for p in parts} == {"r000", "r001"}  # both ranks wrote
        assert index.splits[split].num_samples == len(one.keys)


def test_the_log_mel_baseline_embeds_through_a_model_file(two_tracks, tmp_path, capsys):
    out = tmp_path / "base"
    args = ["--model", ROOT / "configs/baselines/logmel_stats.yaml", "--input", two_tracks]
    run_embed([*args, "--out", out, "--num_workers", 0])
    index = read_index(out)
    assert index.embed_dim == 192  # 96 band means + 96 stds
    assert index.settings["encoder_class"].endswith("LogMelStats")
    assert load_split(out, "test").embeddings.shape == (2, 192)
    evil = tmp_path / "evil.yaml"
    evil.write_text("encoder:\n  class_path: subprocess.Popen\n  init_args: {args: 'true'}\n")
    text = run_embed([*args[:1], evil, *args[2:], "--out", tmp_path / "x"], capsys, code=2)
    assert "'subprocess.Popen', which lit_mrl does not build" in text
