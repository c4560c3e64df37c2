"""Waveform augmentations for contrastive positives, run on the device.

Every transform maps ``(B, T)`` audio to ``(B, T)`` and draws its parameters per
example (pitch shift and time stretch: per batch, since their kernels depend on the
amount). The paper trains without them; MULE's follow-up (McCallum et al., ICASSP
2024) adds pitch shift, time stretch and EQ to make key and tempo less "local".
"""

import math

import torch
import torchaudio.functional as AF
from torch import Tensor, nn


class RandomApply(nn.Module):
    """Apply ``transform`` to each example with probability ``p``.

    Args:
        transform: a ``(B, T) -> (B, T)`` module.
        p: probability per example.
    """

    def __init__(self, transform: nn.Module, p: float = 0.5) -> None:
        super().__init__()
        self.transform = transform
        self.p = p

    def forward(self, audio: Tensor) -> Tensor:
        """Transform a random subset of the ``(B, T)`` batch."""
        chosen = torch.rand(audio.shape[0], device=audio.device) < self.p
        if not chosen.any():
            return audio
        out = audio.clone()
        out[chosen] = self.transform(audio[chosen])
        return out


class Compose(nn.Sequential):
    """Apply transforms in order; build it in YAML as a list of ``class_path`` entries.

    Args:
        transforms: ``(B, T) -> (B, T)`` modules.
    """

    def __init__(self, transforms: list[nn.Module]) -> None:
        super().__init__(*transforms)


class Gain(nn.Module):
    """Random gain, uniform in decibels.

    Args:
        min_db: lowest gain in dB.
        max_db: highest gain in dB.
    """

    def __init__(self, min_db: float = -6.0, max_db: float = 6.0) -> None:
        super().__init__()
        self.min_db, self.max_db = min_db, max_db

    def forward(self, audio: Tensor) -> Tensor:
        """Scale each example of ``(B, T)`` by its own gain."""
        db = torch.empty(audio.shape[0], 1, device=audio.device).uniform_(self.min_db, self.max_db)
        return audio * 10 ** (db / 20)


class Noise(nn.Module):
    """Additive white noise at a random signal-to-noise ratio.

    Args:
        min_snr_db: lowest SNR in dB.
        max_snr_db: highest SNR in dB.
    """

    def __init__(self, min_snr_db: float = 20.0, max_snr_db: float = 40.0) -> None:
        super().__init__()
        self.min_snr_db, self.max_snr_db = min_snr_db, max_snr_db

    def forward(self, audio: Tensor) -> Tensor:
        """Add noise scaled to each example's power."""
        snr = torch.empty(audio.shape[0], 1, device=audio.device)
        snr.uniform_(self.min_snr_db, self.max_snr_db)
        power = audio.pow(2).mean(dim=1, keepdim=True).clamp_min(1e-10)
        noise = torch.randn_like(audio) * (power / 10 ** (snr / 10)).sqrt()
        return audio + noise


class PeakingEQ(nn.Module):
    """One random peaking-EQ band per example (biquad).

    Args:
        sample_rate: audio rate in Hz.
        min_freq: lowest centre frequency in Hz (drawn log-uniformly).
        max_freq: highest centre frequency in Hz.
        max_gain_db: largest boost or cut in dB.
        q: filter quality factor.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        min_freq: float = 100.0,
        max_freq: float = 6000.0,
        max_gain_db: float = 9.0,
        q: float = 1.0,
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.min_freq, self.max_freq = min_freq, max_freq
        self.max_gain_db, self.q = max_gain_db, q

    def forward(self, audio: Tensor) -> Tensor:
        """Filter each example of ``(B, T)`` with its own band."""
        batch, device = audio.shape[0], audio.device
        log_f = torch.empty(batch, device=device).uniform_(
            math.log(self.min_freq), math.log(self.max_freq)
        )
        gain = torch.empty(batch, device=device).uniform_(-self.max_gain_db, self.max_gain_db)
        # RBJ cookbook peaking filter, one set of coefficients per example.
        w0 = 2 * math.pi * log_f.exp() / self.sample_rate
        amp = 10 ** (gain / 40)
        alpha = torch.sin(w0) / (2 * self.q)
        b = torch.stack([1 + alpha * amp, -2 * torch.cos(w0), 1 - alpha * amp], dim=1)
        a = torch.stack([1 + alpha / amp, -2 * torch.cos(w0), 1 - alpha / amp], dim=1)
        # lfilter with batching=True filters row i of (B, T) with coefficients row i.
        return AF.lfilter(audio, a, b, clamp=False, batching=True)


class PitchShift(nn.Module):
    """Shift pitch by a random whole number of semitones, keeping the duration.

    Args:
        sample_rate: audio rate in Hz.
        max_semitones: shifts are drawn from ``[-max_semitones, max_semitones]``.
    """

    def __init__(self, sample_rate: int = 16000, max_semitones: int = 2) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.max_semitones = max_semitones

    def forward(self, audio: Tensor) -> Tensor:
        """Shift the whole ``(B, T)`` batch by one random amount."""
        steps = int(torch.randint(-self.max_semitones, self.max_semitones + 1, ()).item())
        if steps == 0:
            return audio
        return AF.pitch_shift(audio, self.sample_rate, steps)[..., : audio.shape[-1]]


class TimeStretch(nn.Module):
    """Change tempo by a random factor, keeping the pitch (phase vocoder).

    The output is cropped or zero-padded back to the input length.

    Args:
        min_rate: slowest rate (< 1 slows down).
        max_rate: fastest rate.
        n_fft: STFT size of the phase vocoder, in samples.
    """

    def __init__(self, min_rate: float = 0.8, max_rate: float = 1.25, n_fft: int = 512) -> None:
        super().__init__()
        self.min_rate, self.max_rate, self.n_fft = min_rate, max_rate, n_fft

    def forward(self, audio: Tensor) -> Tensor:
        """Stretch the whole ``(B, T)`` batch by one random rate."""
        rate = float(torch.empty(()).uniform_(self.min_rate, self.max_rate))
        hop = self.n_fft // 4
        window = torch.hann_window(self.n_fft, device=audio.device)
        spec = torch.stft(audio, self.n_fft, hop, window=window, return_complex=True)
        phase_advance = torch.linspace(0, math.pi * hop, spec.shape[-2], device=audio.device)
        stretched = AF.phase_vocoder(spec, rate, phase_advance[..., None])
        out = torch.istft(stretched, self.n_fft, hop, window=window)
        length = audio.shape[-1]
        if out.shape[-1] >= length:
            return out[..., :length]
        return torch.nn.functional.pad(out, (0, length - out.shape[-1]))
