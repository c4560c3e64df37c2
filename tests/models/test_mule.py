"""MULE import and the MULE pipeline mode, against the mule-torch port (GPL, test-only).

One mule-torch model with seeded random weights is built, saved in its safetensors layout
and imported once per module; the tests compare lit_mrl's embeddings with mule-torch's own.
"""

import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from lightning import Callback, Trainer
from torch.utils.data import DataLoader

import lit_mrl
from lit_mrl.cli import main
from lit_mrl.embed.extractor import TimelineEmbedder
from lit_mrl.embed.windows import (
    cut_windows,
    mule_window_starts,
    settled_starts,
    timeline_starts,
)
from lit_mrl.formats.embeddings import load_split
from lit_mrl.methods import ContrastiveModule
from lit_mrl.methods.base import load_encoder_weights
from lit_mrl.models import AudioEncoder, LogMelSpectrogram
from lit_mrl.models.sfnfnet import SFNFNetF0
from lit_mrl.mule.mapping import (
    MULE_ENCODER_ARGS,
    MULE_FRONTEND_ARGS,
    MuleImportError,
    convert_state,
)

mule_torch = pytest.importorskip("mule_torch")
safetensors_torch = pytest.importorskip("safetensors.torch")
from mule_torch.frontend import MuleMelSpectrogram, slice_mel  # noqa: E402

SR = 16000


def librosa_mel(sr=16000, n_fft=2048, n_mels=96, fmin=0.0, fmax=8000.0):
    """librosa.filters.mel(htk=True, norm=2.0) from its formula, float64 (no torchaudio)."""
    mels = np.linspace(2595 * np.log10(1 + fmin / 700), 2595 * np.log10(1 + fmax / 700), n_mels + 2)
    edges = 700 * (10 ** (mels / 2595) - 1)
    ramps = edges[:, None] - np.linspace(0, sr / 2, n_fft // 2 + 1)[None]
    fdiff = np.diff(edges)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    return weights / np.linalg.norm(weights, axis=1, keepdims=True)


def make_audio(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise, a tone and a chirp, on the PCM_16 grid (what lit_mrl's loader decodes to)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    audio = 0.1 * rng.standard_normal(len(t)) + 0.3 * np.sin(2 * np.pi * 440 * t)
    audio += 0.2 * np.sin(2 * np.pi * 1234 * t * (1 + 0.1 * t))
    return (np.round(audio * 32767) / 32768).astype(np.float32)


def randomize(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial gains, biases and skip gains (mule-torch starts skip gains at 0)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("skip_gain"):
                p.copy_(0.2 + 0.8 * torch.rand(p.shape, generator=gen))
            elif name.endswith(".gain"):
                p.copy_(0.5 + torch.rand(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


@pytest.fixture(scope="module")
def mule(tmp_path_factory):
    """mule-torch's MULE with random weights, its safetensors, and the imported encoder folder."""
    root = tmp_path_factory.mktemp("mule")
    torch.manual_seed(0)
    fbank = torch.from_numpy(librosa_mel()).float()
    model = mule_torch.MuleModel(mule_torch.MuleConfig(), mel_fb=fbank).eval()
    randomize(model, seed=1)
    model.save_pretrained(root / "mule")
    ckpt = root / "mule_encoder"
    assert main(["import_mule", str(root / "mule" / "model.safetensors"), "--out", str(ckpt)]) == 0
    return {"model": model, "weights": root / "mule" / "model.safetensors", "ckpt": ckpt}


@pytest.fixture(scope="module")
def tensors(mule):
    return safetensors_torch.load_file(str(mule["weights"]))


def test_import_writes_an_encoder_folder_that_from_pretrained_rebuilds(mule, capsys):
    config = json.loads((mule["ckpt"] / "config.json").read_text())
    assert config["provenance"]["license"] == "cc-by-nc-4.0"
    assert "not included" in config["provenance"]["projector"]  # no fake projector
    assert config["embedding"]["placement"] == "mule"
    assert config["embedding"]["hop_seconds"] == 2.0
    tensors = safetensors_torch.load_file(str(mule["ckpt"] / "model.safetensors"))
    assert all(name.startswith(("encoder.", "frontend.")) for name in tensors)
    encoder = AudioEncoder.from_pretrained(mule["ckpt"])
    assert encoder.embed_dim == 1728
    assert sum(p.numel() for p in encoder.encoder.parameters()) == 62_345_742
    assert (encoder.timeline, encoder.std_correction, encoder.num_frames(3 * SR)) == (
        "mule",
        0,
        301,
    )
    backbone = mule["model"].backbone
    ours = encoder.encoder
    torch.testing.assert_close(ours.slow_stages[2][3].conv2.weight, backbone.slow_stages[2].blocks[3].convs[1].weight, rtol=0, atol=0)  # fmt: skip
    torch.testing.assert_close(ours.fusions[3].expand.gain, backbone.fusions[3].conv2.gain, rtol=0, atol=0)  # fmt: skip
    assert (
        ours.fast_stages[1][1].skip_gain.item()
        == backbone.fast_stages[1].blocks[1].skip_gain.item()
    )


def test_embed_of_imported_mule_matches_mule_torch(mule, tmp_path):
    audio = make_audio(4.5)  # 451 frames: centres 200 and 400 -> clamped to 301: two windows
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "x.wav", audio, SR, subtype="PCM_16")
    args = ["--checkpoint", mule["ckpt"], "--input", tmp_path / "audio", "--out", tmp_path / "emb"]
    assert (
        main(["embed", *map(str, args), "--num_workers", "0", "--trainer.accelerator", "cpu"]) == 0
    )
    data = load_split(tmp_path / "emb", "all", timeline=True)
    with torch.inference_mode():
        (ref,) = mule["model"].embed_timeline(torch.from_numpy(audio)[None])
    ref = ref.numpy()
    assert data.timeline.shape == ref.shape == (2, 1728)
    np.testing.assert_allclose(data.timestamps, [2.0, 3.01])
    scale = np.abs(ref).max()
    assert np.abs(data.timeline - ref).max() <= 1e-4 * scale
    assert np.abs(data.embeddings[0] - ref.mean(axis=0)).max() <= 1e-4 * scale


@pytest.mark.parametrize("seconds", [3.0, 4.5, 6.0, 7.77, 10.0])
def test_mule_frontend_and_windows_equal_mule_torch_slices(seconds):
    config = mule_torch.MuleConfig()
    audio = torch.from_numpy(make_audio(seconds))
    mel = MuleMelSpectrogram(config, mel_fb=torch.from_numpy(librosa_mel()).float())(audio[None])
    expected = slice_mel(mel[0], config)[:, 0]  # (N, 96, 300)
    encoder = AudioEncoder(SFNFNetF0.tiny(), LogMelSpectrogram(**MULE_FRONTEND_ARGS))
    spec = encoder.track_logmel(audio)
    assert spec.shape[1] == mel.shape[2]  # 1 + T // 160 frames
    starts = timeline_starts(encoder.timeline, spec.shape[1], 300, 200)
    windows = encoder.standardize(cut_windows(spec, starts, 300))
    assert windows.shape == expected.shape
    # mule-torch's float32 STFT (a DFT as a conv1d) is 2e-4 from a float64 log-mel in a few
    # near-silent bins (log10(1e4 x + 1) amplifies them), lit_mrl's FFT 2e-5; a window one
    # frame off would differ by O(1) everywhere
    torch.testing.assert_close(windows, expected, rtol=0, atol=1e-3)
    assert (windows - expected).abs().mean() < 5e-5


@pytest.mark.parametrize(
    ("frames", "hop", "starts"),
    [
        (301, 200, [1]),  # 3 s: frames 1..300
        (601, 200, [50, 250, 301]),  # 6 s: MULE's README shape (1728, 3)
        (300, 200, [0]),
        (250, 200, [0]),  # under 3 s: one window padded with silence (lit_mrl's choice)
        (501, 50, [0, 0, 0, 50, 100, 150, 200, 201, 201, 201]),  # hop under W/2: repeats
        (400, 600, [100]),  # no centre below F: one window ending at F
    ],
)
def test_mule_window_placement(frames, hop, starts):
    np.testing.assert_array_equal(mule_window_starts(frames, 300, hop), starts)


@pytest.mark.parametrize("timeline", ["lit_mrl", "mule"])
@pytest.mark.parametrize("hop", [50, 200, 333])
def test_settled_starts_are_a_prefix_of_every_longer_track(timeline, hop):
    for frames in range(1, 1400, 37):
        full = timeline_starts(timeline, frames, 300, hop).tolist()
        for known in range(0, frames, 29):
            settled = settled_starts(timeline, 0, known, 300, hop)
            assert full[: len(settled)] == settled
            if settled:
                assert settled_starts(timeline, 1, known, 300, hop) == settled[1:]


@pytest.mark.parametrize("hop_seconds", [0.5, 2.0])
def test_streamed_mule_timeline_equals_whole_track(hop_seconds):
    torch.manual_seed(0)
    encoder = AudioEncoder(SFNFNetF0.tiny(), LogMelSpectrogram(**MULE_FRONTEND_ARGS)).eval()
    audio = make_audio(13.3)
    embedder = TimelineEmbedder(encoder, hop_seconds=hop_seconds, batch_windows=7)
    blocks = [
        {"key": "a", "block": audio[i : i + 9000], "start": i, "last": i + 9000 >= len(audio)}
        for i in range(0, len(audio), 9000)
    ]
    (row,) = embedder.embed_tracks(blocks)
    spec = encoder.track_logmel(torch.from_numpy(audio))
    starts = mule_window_starts(spec.shape[1], 300, round(hop_seconds * 100))
    with torch.inference_mode():
        expected = encoder.encode(encoder.standardize(cut_windows(spec, starts, 300))).numpy()
    np.testing.assert_allclose(row["timeline"], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(row["timestamps"], (starts + 150) / 100)


def test_baked_kernels_import_to_the_same_convolutions(mule, tensors):
    backbone = mule["model"].backbone
    baked = dict(tensors)
    for name in [n for n in tensors if n.endswith(".gain")]:
        conv = name.removesuffix(".gain")
        module = backbone.get_submodule(conv.removeprefix("backbone."))
        baked[f"{conv}.weight"] = module.standardized_weight().detach()
        del baked[name]
    encoder = SFNFNetF0(**MULE_ENCODER_ARGS)
    encoder.load_state_dict(convert_state(baked, encoder.state_dict()))
    pairs = [
        (encoder.slow_stem[0], backbone.slow_stem.convs[0]),
        (encoder.slow_stages[3][0].shortcut, backbone.slow_stages[3].blocks[0].skip_conv),
        (encoder.fast_stages[2][5].conv3, backbone.fast_stages[2].blocks[5].convs[2]),
    ]
    for ours, theirs in pairs:
        expected = theirs.standardized_weight().detach()
        got = ours.standardized_weight().detach()
        assert (got - expected).abs().max() <= 1e-6 * expected.abs().max()


def test_baked_file_with_raw_kernels_is_refused(tensors):
    raw_without_gains = {n: v for n, v in tensors.items() if not n.endswith(".gain")}
    name = "backbone.slow_stem.convs.0.weight"
    raw_without_gains[name] = tensors[name] + 1.0  # channel means far from 0
    with pytest.raises(MuleImportError, match=rf"{re.escape(name)}: the file stores no gains"):
        convert_state(raw_without_gains, SFNFNetF0(**MULE_ENCODER_ARGS).state_dict())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("extra", r"1 unknown tensors: backbone\.extra\.weight"),
        ("missing", r"1 missing tensors: backbone\.fast_stages\.3\.blocks\.2\.se\.fc2\.bias"),
    ],
    ids=["extra", "missing"],
)
def test_import_refuses_unknown_and_missing_tensors(
    mule, tensors, tmp_path, capsys, change, message
):
    edited = dict(tensors)
    if change == "extra":
        edited["backbone.extra.weight"] = torch.zeros(3)
    else:
        del edited["backbone.fast_stages.3.blocks.2.se.fc2.bias"]
    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file(edited, str(path))
    out = tmp_path / "x"
    assert main(["import_mule", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err
    assert len(err.strip().splitlines()) == 1
    assert re.search(message, err)
    assert not out.exists()


def test_hear_load_model_accepts_the_import(mule):
    from lit_mrl import hear

    model = hear.load_model(str(mule["ckpt"]), hop_seconds=2.0)
    assert model.scene_embedding_size == model.timestamp_embedding_size == 1728
    assert model.sample_rate == SR
    assert model.embedder(torch.device("cpu")).timeline == "mule"


def test_hear_scene_embedding_of_the_imported_folder_is_mule_torchs_clip_embedding(mule):
    from lit_mrl import hear

    audio = torch.from_numpy(np.stack([make_audio(9.3), make_audio(9.3, seed=1)]))
    model = hear.load_model(str(mule["ckpt"]))  # the encoder's rule: 2 s hop, MULE windows
    scene = hear.get_scene_embeddings(audio, model)
    with torch.inference_mode():
        ref = mule["model"](audio)  # mean-pooled clip embedding
    relative = ((scene - ref).abs().max() / ref.abs().max()).item()
    assert relative < 1e-5, relative  # last round: 9.7e-7 at a 2 s hop, 2.7e-2 at 0.5 s


def test_fit_from_init_weights_starts_from_the_checkpoint(mule):
    state = safetensors_torch.load_file(str(mule["ckpt"] / "model.safetensors"))
    module = ContrastiveModule(
        SFNFNetF0(**MULE_ENCODER_ARGS), projection_dim=4, projector_dims=[],
        init_weights=str(mule["ckpt"]),
    )  # fmt: skip
    seen = {}

    class FirstStep(Callback):
        def on_train_start(self, trainer, pl_module):
            ours = pl_module.audio_encoder.state_dict()
            seen["equal"] = all(torch.equal(v, state[k]) for k, v in ours.items())
            trainer.should_stop = True  # the weights before any step are what is checked

    trainer = Trainer(
        max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, callbacks=[FirstStep()],
    )  # fmt: skip
    batches = DataLoader([{"audio": torch.zeros(2, SR)}], batch_size=1)
    trainer.fit(module, train_dataloaders=batches)
    assert seen["equal"]


def test_init_weights_refuses_another_shape_naming_the_tensor(tmp_path):
    encoder = AudioEncoder(SFNFNetF0.tiny())
    state = {f"audio_encoder.{k}": v for k, v in encoder.state_dict().items()}
    state["audio_encoder.encoder.fusions.1.expand.bias"] = torch.zeros(5)
    torch.save({"state_dict": state}, tmp_path / "x.ckpt")
    with pytest.raises(
        ValueError, match=r"audio_encoder\.encoder\.fusions\.1\.expand\.bias has shape \(5,\)"
    ):
        load_encoder_weights(encoder, tmp_path / "x.ckpt")
    del state["audio_encoder.encoder.fusions.1.expand.bias"]
    torch.save({"state_dict": state}, tmp_path / "x.ckpt")
    with pytest.raises(
        ValueError,
        match=r"misses audio_encoder tensors: audio_encoder\.encoder\.fusions\.1\.expand\.bias",
    ):
        load_encoder_weights(encoder, tmp_path / "x.ckpt")


def test_lit_mrl_never_imports_mule_torch():
    """mule-torch is GPL-3.0: only these tests may use it."""
    offenders = []
    for path in Path(lit_mrl.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            offenders += [path.name for n in names if n.split(".")[0] == "mule_torch"]
    assert not offenders
