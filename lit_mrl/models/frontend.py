"""Log-mel frontend of the released MULE pipeline, as a device-side ``nn.Module``."""

import itertools
import math
from typing import Literal

import torch
import torch.nn.functional as F
import torchaudio
from torch import Tensor, nn

MEL_BLOCKS = 8
"""Blocks of mel bands per matrix product. A band's triangle covers only the FFT bins
between its neighbours' centres, so each block multiplies just the bins under it: with
MULE's 96 bands and 1025 bins, 8 blocks of 12 bands do 13 % of the multiply-adds of one
``(n_freqs, n_mels)`` product (the same non-zero products, summed in another order)."""

CPU_CHUNK_FRAMES = 256
"""Frames per FFT on the CPU: a chunk's ``(frames, n_freqs)`` spectrum (2 MiB) stays in
cache between the FFT, the power and the mel products: on 2 cores, 3-4x faster than one
FFT over a batch of 48 clips of 3 s (14,400 frames). Other devices transform all frames
at once."""


def standardize(spec: Tensor, min_std: float = 0.01, correction: int = 1) -> Tensor:
    """Standardise each example of a batch of spectrogram windows on its own.

    Every window gets one mean and one std over all its bins and frames (MULE's
    per-slice normalisation); the std is floored so silent windows do not blow up.

    Args:
        spec: ``(..., n_mels, frames)`` windows; each leading index is one window.
        min_std: floor of the divisor.
        correction: Bessel's correction of the std: 1 divides by ``n - 1`` (lit_mrl),
            0 by ``n`` (MULE's population std).

    Returns:
        Tensor of the same shape with zero mean and unit std per window.
    """
    std, mean = torch.std_mean(spec, dim=(-2, -1), correction=correction, keepdim=True)
    return (spec - mean) / std.clamp_min(min_std)


class LogMelSpectrogram(nn.Module):
    """Waveform to compressed log-mel spectrogram, exactly as MULE computes it.

    STFT with a Hann window of ``win_length`` samples zero-padded to ``n_fft``, centred
    with reflect padding, power 2; HTK mel filters whose triangles are scaled to unit
    L2 norm (librosa ``norm=2.0``, not Slaney area normalisation); compression
    ``log10(1e4 * x + 1)``. With ``standardize=True`` every output window is then
    standardised (see :func:`standardize`).

    A clip of ``T`` samples gives ``T // hop_length`` frames: the STFT's extra centre
    frame is dropped so that 3 s at 16 kHz is exactly the 300-frame window the
    encoder expects. ``final_frame=True`` keeps it (``1 + T // hop_length`` frames,
    301 for 3 s), as librosa and the released MULE code do.

    The STFT is computed frame by frame rather than with ``torch.stft``: each frame's
    ``win_length`` windowed samples are zero-padded to ``n_fft`` as ``torch.stft`` pads
    the window (but no ``n_fft``-sample frame is ever built), and the mel products skip the
    zeros of the filter bank (see :data:`MEL_BLOCKS`). The output equals the
    ``torch.stft`` computation within float32 rounding (``tests/test_frontend.py``).

    The last three arguments choose between lit_mrl's conventions (the defaults) and
    the released MULE pipeline's (``std_correction=0, final_frame=True,
    timeline="mule"``, what ``python -m lit_mrl import_mule`` writes); see
    ``docs/mule.md``.

    Args:
        sample_rate: input rate in Hz.
        n_fft: FFT size in samples.
        win_length: Hann window length in samples (25 ms at 16 kHz).
        hop_length: frame hop in samples (10 ms at 16 kHz).
        n_mels: number of mel bands.
        f_min: lowest filter edge in Hz.
        f_max: highest filter edge in Hz.
        standardize: standardise each output window to zero mean, unit std.
        std_correction: Bessel's correction of the per-window std (see
            :func:`standardize`): 1 (lit_mrl) or 0 (MULE).
        final_frame: keep the STFT's final frame (``1 + T // hop_length`` frames).
        timeline: how a track is cut into windows
            (:mod:`lit_mrl.embed.windows`): ``"lit_mrl"`` or ``"mule"``. Only the
            timeline embedder reads it; the frontend carries it so that a checkpoint's
            frontend arguments record the whole pipeline.
    """

    def __init__(
        self,
        sample_rate: int = 16000,
        n_fft: int = 2048,
        win_length: int = 400,
        hop_length: int = 160,
        n_mels: int = 96,
        f_min: float = 0.0,
        f_max: float = 8000.0,
        standardize: bool = True,
        std_correction: int = 1,
        final_frame: bool = False,
        timeline: Literal["lit_mrl", "mule"] = "lit_mrl",
    ) -> None:
        super().__init__()
        for name, value in (("sample_rate", sample_rate), ("n_fft", n_fft),
                            ("win_length", win_length), ("hop_length", hop_length),
                            ("n_mels", n_mels)):  # fmt: skip
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if win_length > n_fft:
            raise ValueError(f"win_length ({win_length}) must not exceed n_fft ({n_fft})")
        if not 0 <= f_min < f_max <= sample_rate / 2:
            raise ValueError(
                f"need 0 <= f_min < f_max <= sample_rate / 2, got f_min={f_min}, "
                f"f_max={f_max}, sample_rate={sample_rate}"
            )
        if std_correction not in (0, 1):
            raise ValueError(f"std_correction must be 0 or 1, got {std_correction}")
        if timeline not in ("lit_mrl", "mule"):
            raise ValueError(f"timeline must be 'lit_mrl' or 'mule', got {timeline!r}")
        self.sample_rate = sample_rate
        self.n_fft = n_fft
        self.win_length = win_length
        self.hop_length = hop_length
        self.n_mels = n_mels
        self.standardize = standardize
        self.std_correction = std_correction
        self.final_frame = final_frame
        self.timeline = timeline
        # Holds the Hann window (checkpoints store it as ``spectrogram.window``); its
        # forward, torch.stft, is the reference the tests compare ``logmel`` with.
        self.spectrogram = torchaudio.transforms.Spectrogram(
            n_fft=n_fft,
            win_length=win_length,
            hop_length=hop_length,
            center=True,
            pad_mode="reflect",
            power=None,
        )
        fbank = torchaudio.functional.melscale_fbanks(
            n_freqs=n_fft // 2 + 1,
            f_min=f_min,
            f_max=f_max,
            n_mels=n_mels,
            sample_rate=sample_rate,
            norm=None,
            mel_scale="htk",
        )  # (n_freqs, n_mels)
        # librosa's norm=2.0: every triangle scaled to unit L2 norm over frequency bins.
        fbank = fbank / fbank.norm(dim=0, keepdim=True).clamp_min(1e-12)
        self.register_buffer("mel_fbank", fbank, persistent=False)
        self.mel_blocks = mel_blocks(fbank, min(MEL_BLOCKS, n_mels))

    @property
    def frame_rate(self) -> float:
        """Log-mel frames per second (100 at 16 kHz with a 160-sample hop)."""
        return self.sample_rate / self.hop_length

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for a clip of ``num_samples`` samples."""
        return num_samples // self.hop_length + int(self.final_frame)

    def forward(self, audio: Tensor) -> Tensor:
        """Compute the log-mel spectrogram.

        Args:
            audio: ``(B, T)`` or ``(B, 1, T)`` mono waveform in [-1, 1].

        Returns:
            ``(B, n_mels, num_frames(T))`` compressed (and optionally standardised)
            log-mel spectrogram.
        """
        spec = self.logmel(audio)
        return standardize(spec, correction=self.std_correction) if self.standardize else spec

    def logmel(self, audio: Tensor) -> Tensor:
        """The compressed log-mel spectrogram before any standardisation.

        Long tracks are cut into windows afterwards, each standardised on its own.

        Args:
            audio: ``(B, T)`` or ``(B, 1, T)`` mono waveform in [-1, 1].

        Returns:
            ``(B, n_mels, num_frames(T))``.
        """
        if audio.dim() == 3:
            audio = audio.squeeze(1)  # (B, 1, T) -> (B, T)
        # The STFT runs in float32 even under autocast: power spectra overflow bf16/fp16.
        with torch.autocast(device_type=audio.device.type, enabled=False):
            num_frames = self.num_frames(audio.shape[-1])
            frames = self.stft_frames(audio.float())[..., :num_frames, :]  # (..., F, win_length)
            leading = frames.shape[:-2]
            frames = frames.reshape(-1, self.win_length)  # (N, win_length)
            chunk = CPU_CHUNK_FRAMES if audio.device.type == "cpu" else max(len(frames), 1)
            pairs = self.mel_fbank.repeat_interleave(2, dim=0)  # (2 n_freqs, n_mels)
            mel = torch.cat([self._mel(part, pairs) for part in frames.split(chunk)])
            mel = mel.reshape(*leading, num_frames, self.n_mels).transpose(-1, -2)
            return torch.log10(1e4 * mel + 1.0)

    def stft_frames(self, audio: Tensor) -> Tensor:
        """The samples under each STFT frame's window, as ``torch.stft(center=True)`` frames them.

        ``torch.stft`` reflect-pads ``n_fft // 2`` samples on both sides and centres the
        ``win_length`` window in each ``n_fft`` frame, so only ``win_length`` samples of
        a frame are not multiplied by zero::

            frame t  |<--------------------- n_fft --------------------->|
                     |    zeros    |<---- win_length ---->|    zeros    |
                     ^ t * hop - n_fft // 2
                                   ^ t * hop - before

        Reflect-padding by ``before`` and ``after`` gives those samples, the same ones.

        Args:
            audio: ``(..., T)`` waveform, ``T > max(before, after)``.

        Returns:
            ``(..., 1 + T // hop_length, win_length)``, a strided view (no copy) of the
            padded audio.
        """
        left = (self.n_fft - self.win_length) // 2  # zeros before the window in a frame
        before = self.n_fft // 2 - left
        after = left + self.win_length - self.n_fft // 2
        flat = audio.reshape(-1, audio.shape[-1])  # (N, T), read by F.pad as (C, L)
        padded = F.pad(flat, (before, after), mode="reflect")
        padded = padded.reshape(*audio.shape[:-1], padded.shape[-1])
        return padded.unfold(-1, self.win_length, self.hop_length)

    def _mel(self, frames: Tensor, pairs: Tensor) -> Tensor:
        """Mel energies of ``(N, win_length)`` frames -> ``(N, n_mels)``.

        ``pairs`` is the filter bank with each row twice, for the squares of the real and
        the imaginary part of a bin.
        """
        left = (self.n_fft - self.win_length) // 2  # where torch.stft puts the window
        pad = (left, self.n_fft - self.win_length - left)
        windowed = F.pad(frames * self.spectrogram.window, pad)  # (N, n_fft)
        spec = torch.view_as_real(torch.fft.rfft(windowed))  # (N, n_freqs, 2)
        power = spec.square().flatten(-2)  # (N, 2 n_freqs): re^2, im^2 of each bin
        return torch.cat(
            [
                power[:, 2 * lo : 2 * hi] @ pairs[2 * lo : 2 * hi, a:b]
                for a, b, lo, hi in self.mel_blocks
            ],
            dim=1,
        )

    def track_logmel(self, audio: Tensor, chunk_frames: int = 6000) -> Tensor:
        """Log-mel of one track of any length, computed ``chunk_frames`` at a time.

        Equal to ``logmel(audio)`` on the whole track, with peak memory bounded by the
        chunk: each chunk is computed with ``margin`` extra frames of real audio on both
        sides (dropped afterwards), so only the track's own ends see reflect padding::

            audio  |.......[margin|---- chunk ----|margin].........|
            kept                  |---- chunk ----|

        Args:
            audio: ``(T,)`` waveform, ``T >= hop_length``.
            chunk_frames: frames computed per STFT call (6000 = 60 s at 16 kHz).

        Returns:
            ``(n_mels, num_frames(T))``.
        """
        hop, half_fft = self.hop_length, self.n_fft // 2
        num_frames = self.num_frames(audio.shape[-1])
        if audio.shape[-1] <= half_fft:
            # reflect padding needs more than n_fft / 2 samples: pad very short clips with zeros
            audio = nn.functional.pad(audio, (0, half_fft + 1 - audio.shape[-1]))
        if num_frames <= chunk_frames:
            return self.logmel(audio[None])[0, :, :num_frames]
        margin = math.ceil(half_fft / hop)  # frames whose STFT window reaches into a neighbour
        chunks = []
        for first in range(0, num_frames, chunk_frames):
            last = min(first + chunk_frames, num_frames)
            lo = max(first - margin, 0) * hop
            hi = min((last + margin) * hop, audio.shape[-1])
            spec = self.logmel(audio[None, lo:hi])[0]  # (n_mels, (hi - lo) // hop)
            offset = first - lo // hop
            chunks.append(spec[:, offset : offset + last - first])
        return torch.cat(chunks, dim=1)


def mel_blocks(fbank: Tensor, num_blocks: int) -> list[tuple[int, int, int, int]]:
    """Cut the mel bands into blocks and find the FFT bins each block's filters touch.

    Args:
        fbank: ``(n_freqs, n_mels)`` non-negative filter bank.
        num_blocks: blocks of about equal band counts.

    Returns:
        ``(first_band, end_band, first_bin, end_bin)`` per block (ends exclusive); every
        non-zero of ``fbank`` lies in one block's rectangle.
    """
    n_mels = fbank.shape[1]
    edges = [round(i * n_mels / num_blocks) for i in range(num_blocks + 1)]
    blocks = []
    for first, end in itertools.pairwise(edges):
        bins = fbank[:, first:end].ne(0).any(dim=1).nonzero().flatten().tolist()
        blocks.append((first, end, bins[0], bins[-1] + 1) if bins else (first, end, 0, 0))
    return blocks
