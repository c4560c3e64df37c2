import numpy as np
import pytest
import torch

from lit_mrl import hear
from lit_mrl.embed.extractor import TimelineEmbedder

SR = 16000


@pytest.fixture(scope="module")
def audio():
    rng = np.random.default_rng(0)
    return torch.from_numpy(rng.uniform(-0.5, 0.5, (3, 5 * SR)).astype(np.float32))


def test_model_has_the_hear_attributes(tiny_checkpoint):
    model = hear.load_model(str(tiny_checkpoint))
    assert isinstance(model, torch.nn.Module)
    assert model.sample_rate == 16000
    assert model.scene_embedding_size == 8
    assert model.timestamp_embedding_size == 8


def test_timestamp_embeddings_every_half_second_in_milliseconds(tiny_checkpoint, audio):
    model = hear.load_model(str(tiny_checkpoint))
    emb, stamps = hear.get_timestamp_embeddings(audio, model)
    # 5 s = 500 frames: windows start at 0, 50, ..., 200 and are centred 1.5 s later
    assert emb.shape == (3, 5, 8)
    assert emb.dtype == torch.float32
    assert stamps.shape == (3, 5)
    torch.testing.assert_close(stamps, torch.tensor([1500.0, 2000, 2500, 3000, 3500]).expand(3, 5))
    model.scene_hop_seconds = 0.5  # a scene averaging the timestamps
    torch.testing.assert_close(hear.get_scene_embeddings(audio, model), emb.mean(dim=1))


def test_scene_embedding_is_the_embed_track_embedding_by_default(tiny_checkpoint, audio):
    model = hear.load_model(str(tiny_checkpoint), batch_windows=4)  # timestamps every 0.5 s
    assert model.scene_hop_seconds == 2.0  # the encoder's embedding rule
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (3, 8)
    embedder = TimelineEmbedder(model.audio_encoder)  # embed's defaults: the same rule
    rows = list(embedder.embed_tracks({"audio": a} for a in audio))
    expected = torch.from_numpy(np.stack([r["embedding"] for r in rows]))
    torch.testing.assert_close(scene, expected, atol=1e-5, rtol=1e-5)


def test_sounds_shorter_than_a_window_get_one_timestamp(tiny_checkpoint):
    model = hear.load_model(str(tiny_checkpoint))
    emb, stamps = hear.get_timestamp_embeddings(torch.zeros(2, SR // 4), model)
    assert emb.shape == (2, 1, 8)
    torch.testing.assert_close(stamps, torch.full((2, 1), 125.0))
    assert torch.isfinite(emb).all()


def test_load_model_needs_a_path():
    with pytest.raises(ValueError, match="checkpoint path"):
        hear.load_model("")
