import numpy as np
import pytest
import torch

from lit_mrl.models.frontend import LogMelSpectrogram, standardize


def reference_logmel(audio: np.ndarray, sr=16000, n_fft=2048, win=400, hop=160, n_mels=96):
    """MULE's frontend written from the formula, in float64 numpy."""
    padded = np.pad(audio, n_fft // 2, mode="reflect")
    n = np.arange(win)
    window = np.zeros(n_fft)
    left = (n_fft - win) // 2
    window[left : left + win] = 0.5 - 0.5 * np.cos(2 * np.pi * n / win)  # periodic Hann
    num_frames = 1 + (len(padded) - n_fft) // hop
    frames = np.stack([padded[i * hop : i * hop + n_fft] * window for i in range(num_frames)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (frames, n_freqs)

    def hz_to_mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel_to_hz(m):
        return 700.0 * (10 ** (m / 2595.0) - 1.0)

    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(8000.0), n_mels + 2))
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    fbank = np.zeros((n_mels, len(freqs)))
    for m in range(n_mels):
        lo, mid, hi = edges[m : m + 3]
        rising = (freqs - lo) / (mid - lo)
        falling = (hi - freqs) / (hi - mid)
        fbank[m] = np.maximum(0, np.minimum(rising, falling))
    fbank /= np.linalg.norm(fbank, axis=1, keepdims=True)  # unit L2 norm per filter
    mel = power @ fbank.T  # (frames, n_mels)
    return np.log10(1e4 * mel + 1).T[:, : len(audio) // hop]


@pytest.fixture
def audio():
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    return (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))).astype(
        np.float32
    )


def test_frontend_matches_reference_formula(audio):
    frontend = LogMelSpectrogram(standardize=False)
    ours = frontend(torch.from_numpy(audio)[None])[0].double().numpy()
    ref = reference_logmel(audio.astype(np.float64))
    assert ours.shape == ref.shape == (96, 100)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4)


def test_mel_filters_have_unit_l2_norm():
    fbank = LogMelSpectrogram().mel_fbank
    assert fbank.shape == (1025, 96)
    torch.testing.assert_close(fbank.norm(dim=0), torch.ones(96))


def test_three_seconds_give_300_frames_standardised():
    spec = LogMelSpectrogram()(torch.randn(2, 1, 48000) * 0.1)
    assert spec.shape == (2, 96, 300)
    torch.testing.assert_close(spec.mean(dim=(1, 2)), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(spec.std(dim=(1, 2)), torch.ones(2), atol=1e-4, rtol=0)


def test_standardize_floors_std_of_silence():
    silent = torch.zeros(1, 96, 300) + 2.0
    out = standardize(silent)
    assert torch.isfinite(out).all()
    assert out.abs().max() == 0


def test_frontend_under_bf16_autocast_stays_float32(audio):
    frontend = LogMelSpectrogram(standardize=False)
    x = torch.from_numpy(audio)[None]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        spec = frontend(x)
    assert spec.dtype == torch.float32
    torch.testing.assert_close(spec, frontend(x))


def stft_logmel(frontend: LogMelSpectrogram, audio: torch.Tensor) -> torch.Tensor:
    """The frontend as it was computed before: torch.stft, then one dense mel product."""
    stft = frontend.spectrogram(audio)  # (B, n_freqs, 1 + T // hop), complex
    power = stft.real.square() + stft.imag.square()
    mel = torch.matmul(power.transpose(-1, -2), frontend.mel_fbank).transpose(-1, -2)
    return torch.log10(1e4 * mel + 1.0)[..., : frontend.num_frames(audio.shape[-1])]


def signals() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    t = torch.arange(48000) / 16000
    return {
        "noise": 0.1 * torch.randn(4, 48000, generator=g),  # 1200 frames: several chunks
        # 80 dB between the tone and the noise floor: quiet bands next to a loud one
        "loud tone": 0.9 * torch.sin(2 * torch.pi * 3000 * t)
        + 1e-4 * torch.randn(2, 48000, generator=g),
        "half silent": torch.cat(
            [torch.zeros(2, 24000), 0.5 * torch.randn(2, 24000, generator=g)], 1
        ),
        "odd length": 0.1 * torch.randn(3, 17777, generator=g),
        "one clip, no batch": 0.1 * torch.randn(5000, generator=g),
    }


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"final_frame": True},
        {"n_fft": 512},
        {"n_fft": 1024, "win_length": 1024},
        {"win_length": 401, "hop_length": 100},  # odd window: unequal reflect padding
        {"n_fft": 1024, "n_mels": 128},
        {"sample_rate": 22050, "f_max": 11025.0, "win_length": 551, "hop_length": 220},
    ],
)
def test_logmel_equals_the_torch_stft_computation(kwargs):
    frontend = LogMelSpectrogram(standardize=False, **kwargs)
    for name, audio in signals().items():
        ours, reference = frontend.logmel(audio), stft_logmel(frontend, audio)
        assert ours.shape == reference.shape, name
        scale = reference.abs().max().item()
        torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5 * scale, msg=name)


def test_mel_blocks_hold_every_filter_weight_and_skip_most_zeros():
    frontend = LogMelSpectrogram()
    covered = torch.zeros_like(frontend.mel_fbank, dtype=torch.bool)
    for first_band, end_band, first_bin, end_bin in frontend.mel_blocks:
        covered[first_bin:end_bin, first_band:end_band] = True
    assert covered[frontend.mel_fbank != 0].all()
    assert covered.float().mean() < 0.15  # 13 % of the dense product's multiply-adds


def test_checkpoints_keep_their_frontend_keys():
    assert list(LogMelSpectrogram().state_dict()) == ["spectrogram.window"]
