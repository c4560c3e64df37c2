import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lit_mrl.catalog.neighbours import build_index, read_neighbour_index
from lit_mrl.catalog.retrieval import exact_top_k, precision_at_k, recall_at_k, without_self
from lit_mrl.cli import main as cli_main
from lit_mrl.data.embedding_datamodule import write_arrays
from lit_mrl.formats.embeddings import read_index, write_index


def clustered_store(root, size=600, dim=16, classes=6, parts=3, seed=0):
    """Tight clusters, one class each: a track's neighbours are its class."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim))
    labels = rng.integers(0, classes, size)
    emb = centres[labels] + 0.2 * rng.standard_normal((size, dim))
    keys = [f"t{i:04d}" for i in range(size)]
    for rows in np.array_split(np.arange(size), parts):
        write_arrays(root, "all", emb[rows], labels[rows], [keys[i] for i in rows])
    write_index(root, {"embed_dim": dim, "task": "multiclass", "fingerprint": "model-a",
                       "vocabulary": [f"c{i}" for i in range(classes)]})  # fmt: skip
    return root, emb, labels


def similar_main(*args):
    return cli_main(["similar", *map(str, args)])


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_index_answers_as_exact_cosine_search(tmp_path, kind):
    root, emb, _ = clustered_store(tmp_path / "emb")
    build_index(root, read_index(root), ["all"], tmp_path / "index", kind, nlist=16)
    index = read_neighbour_index(tmp_path / "index")
    scores, rows = index.search(emb[:20], 5, nprobe=16)  # every cell: exact
    unit = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    stored = unit.astype(np.float16 if kind == "ivf" else np.float32).astype(np.float32)
    exact = unit[:20] @ stored.T
    assert (rows == np.argsort(-exact, axis=1, kind="stable")[:, :5]).all()
    assert np.allclose(scores, np.sort(exact, axis=1)[:, ::-1][:, :5], atol=1e-5)


def test_exact_streaming_search_and_retrieval_metrics(tmp_path):
    root, emb, _ = clustered_store(tmp_path / "emb", parts=4)
    scores, rows = exact_top_k(root, read_index(root), ["all"], emb[:7], 4)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    assert (rows == np.argsort(-(unit[:7] @ unit.T), axis=1)[:, :4]).all()
    assert np.allclose(scores[:, 0], 1, atol=1e-5)  # each query finds itself first
    labels = np.array([0, 0, 1, 1])
    neighbours = np.array([[1, 2], [0, 3], [3, 0], [2, -1]])
    assert precision_at_k(labels, np.arange(4), neighbours) == pytest.approx(
        4 / 8
    )  # a miss (-1) is not a hit
    assert recall_at_k(np.array([[1, 2]]), np.array([[2, 3]]), 2) == 0.5
    assert without_self(np.array([[0, 1, 2], [3, 1, 2]]), np.array([0, 1]), 2).tolist() == [
        [1, 2],
        [3, 2],
    ]


def test_similar_builds_queries_by_key_and_evaluates(tmp_path, capsys):
    root, _, labels = clustered_store(tmp_path / "emb")
    index = tmp_path / "index"
    assert similar_main("--embeddings", root, "--index", index, "--kind", "ivf", "--nlist", 16,
                        "--keys", "[t0000, t0005]", "--k", 3, "--evaluate", "true",
                        "--queries", 50) == 0  # fmt: skip
    lines = capsys.readouterr().out.strip().splitlines()
    results = [json.loads(line) for line in lines if line.startswith('{"query"')]
    assert [r["query"] for r in results] == ["t0000", "t0005"]
    for result in results:
        own = labels[int(result["query"][1:])]
        assert len(result["neighbours"]) == 3
        assert all(labels[int(key[1:])] == own for key, _ in result["neighbours"])
        assert result["query"] not in [key for key, _ in result["neighbours"]]
        cosines = [c for _, c in result["neighbours"]]
        assert cosines == sorted(cosines, reverse=True)
    report = json.loads((index / "evaluation.json").read_text())
    assert report["precision_at_3"] == 1.0
    assert report["recall_at_10"] > 0.8
    assert report["latency_ms_p99"] >= report["latency_ms_p50"] > 0
    # a rerun reuses the index; other embeddings are refused in one line
    assert similar_main("--embeddings", root, "--index", index, "--keys", "t0001") == 0
    assert "built" not in capsys.readouterr().out
    write_arrays(root, "all", np.ones((1, 16)), np.array([0]), ["new"])
    assert similar_main("--embeddings", root, "--index", index) == 2
    assert "other num_tracks" in capsys.readouterr().err


def test_damaged_index_files_are_named(tmp_path):
    root, _, _ = clustered_store(tmp_path / "emb")
    build_index(root, read_index(root), ["all"], tmp_path / "index", "flat")
    (tmp_path / "index" / "keys.json").write_text('["only one"]')
    with pytest.raises(ValueError, match=r"keys\.json: not a list of 600 track keys"):
        read_neighbour_index(tmp_path / "index")
    (tmp_path / "index" / "keys.json").write_text(json.dumps([f"t{i:04d}" for i in range(600)]))
    (tmp_path / "index" / "vectors.safetensors").write_bytes(b"\x80\x04junk")
    with pytest.raises(ValueError, match=r"vectors\.safetensors is not a readable safetensors"):
        read_neighbour_index(tmp_path / "index")


def test_query_by_audio_embeds_with_the_store_model(tmp_path, capsys):
    rng = np.random.default_rng(0)
    audio = tmp_path / "audio"
    audio.mkdir()
    for i, freq in enumerate((220, 440, 880, 1760)):
        t = np.arange(3 * 16000) / 16000
        sf.write(
            audio / f"{i}.wav",
            np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t)),
            16000,
        )
    model = "configs/baselines/logmel_stats.yaml"
    assert cli_main(["embed", "--input", str(audio), "--out", str(tmp_path / "emb"),
                     "--model", model, "--trainer.accelerator", "cpu", "--num_workers", "0"]) == 0  # fmt: skip
    index = tmp_path / "index"
    assert similar_main("--embeddings", tmp_path / "emb", "--index", index) == 0
    capsys.readouterr()
    assert (
        similar_main("--index", index, "--audio", audio / "2.wav", "--model", model, "--k", 2) == 0
    )
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1  # stdout holds only the JSON lines
    result = json.loads(out[0])
    assert result["neighbours"][0][0] == "2.wav"
    assert result["neighbours"][0][1] == pytest.approx(1.0, abs=1e-5)
    other = tmp_path / "other.yaml"
    other.write_text(Path(model).read_text() + "\n# another file: another fingerprint\n")
    assert similar_main("--index", index, "--audio", audio / "2.wav", "--model", other) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 1  # embed's progress aside, one line
    assert "embed queries with the store's model" in err[0]
