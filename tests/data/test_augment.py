import pytest
import torch

from lit_mrl.data.augment import (
    Compose,
    Gain,
    Noise,
    PeakingEQ,
    PitchShift,
    RandomApply,
    TimeStretch,
)


@pytest.fixture
def audio():
    t = torch.arange(8000) / 16000
    freqs = torch.tensor([[220.0], [440.0], [880.0], [330.0]])
    return 0.3 * torch.sin(2 * torch.pi * freqs * t)


@pytest.mark.parametrize(
    "transform",
    [Gain(), Noise(), PeakingEQ(), PitchShift(max_semitones=3), TimeStretch()],
    ids=lambda t: type(t).__name__,
)
def test_transforms_keep_shape_and_change_audio(audio, transform):
    torch.manual_seed(1)
    out = transform(audio)
    assert out.shape == audio.shape
    assert torch.isfinite(out).all()
    if not isinstance(transform, PitchShift):  # may draw a zero shift
        assert not torch.allclose(out, audio)


def test_gain_range_in_db(audio):
    out = Gain(-6.0, 6.0)(audio)
    ratio_db = 20 * torch.log10(out.abs().amax(1) / audio.abs().amax(1))
    assert ((ratio_db >= -6.001) & (ratio_db <= 6.001)).all()


def test_pitch_shift_moves_the_spectral_peak(audio):
    torch.manual_seed(0)
    shift = PitchShift(max_semitones=12)
    while True:
        out = shift(audio[:1])
        if not torch.equal(out, audio[:1]):
            break
    peak_in = torch.fft.rfft(audio[0]).abs().argmax()
    peak_out = torch.fft.rfft(out[0]).abs().argmax()
    assert peak_in != peak_out


def test_random_apply_with_p0_is_identity_and_compose_chains(audio):
    torch.testing.assert_close(RandomApply(Noise(), p=0.0)(audio), audio)
    out = Compose([RandomApply(Gain(), p=1.0), Noise()])(audio)
    assert out.shape == audio.shape
