"""``python -m lit_mrl export``: a training checkpoint as an encoder artifact folder."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lit_mrl.errors import UsageError

DATA_KEYS = ("root", "batch_size", "clip_seconds", "num_views", "max_offset_seconds")


def training_provenance(ckpt: dict[str, Any], path: Path, digest: str) -> dict[str, Any]:
    """What a checkpoint says about how its encoder was trained (plain values only)."""
    hparams = ckpt.get("hyper_parameters") or {}
    provenance: dict[str, Any] = {
        "source_checkpoint": path.name,
        "source_sha256": digest,
        "method": hparams.get("_class_path"),
        "global_step": ckpt.get("global_step"),
        "epoch": ckpt.get("epoch"),
    }
    data = ckpt.get("datamodule_hyper_parameters")
    if isinstance(data, dict):
        provenance["training_data"] = {
            k: data[k] for k in DATA_KEYS if isinstance(data.get(k), (str, int, float))
        }
    source = ckpt.get("source")  # import_mule's note on where imported weights come from
    if isinstance(source, dict):
        provenance["imported_from"] = {
            k: v for k, v in source.items() if isinstance(v, (str, int, float))
        }
    return {k: v for k, v in provenance.items() if v is not None}


def read_results(paths: list[str]) -> list[dict[str, Any]]:
    """``results.json`` files (or folders holding one) of probes, for the model card."""
    from lit_mrl.probe.results import read_results as read_one

    return [read_one(path) for path in paths]


def export(
    checkpoint: str | list[str],
    out: str,
    license: str = "unknown",
    name: str | None = None,
    results: list[str] | None = None,
    allow_class: list[str] | None = None,
    overwrite: bool = False,
) -> int:
    """Write a checkpoint's encoder as a folder: config.json, model.safetensors, model card.

    The folder holds the audio encoder only (no projector or training state) and loads
    with `embed --checkpoint DIR`, `lit_mrl.hear.load_model(DIR)` and
    `AudioEncoder.from_pretrained(DIR)`, with no code from the file.

    Args:
        checkpoint: a .ckpt written by `python -m lit_mrl fit` (or an encoder folder).
        out: the folder to write.
        license: the weights' licence, for config.json and the model card (an SPDX id,
            e.g. apache-2.0, cc-by-nc-4.0).
        name: a name for the model card (default: the encoder's class).
        results: probe results.json files (or results folders) to list on the model card.
        allow_class: class paths outside lit_mrl and torch the checkpoint may build.
        overwrite: replace an encoder already in --out.

    Returns:
        0 (errors raise).
    """
    import hashlib

    from lit_mrl.checkpoints import load_audio_encoder, read_checkpoint
    from lit_mrl.models.export import is_artifact, read_artifact, write_artifact

    source = checkpoint[0] if isinstance(checkpoint, list) else checkpoint
    if isinstance(checkpoint, list) and len(checkpoint) != 1:
        raise UsageError(f"give one checkpoint, got {len(checkpoint)}")
    path = Path(source)
    if not path.exists():
        raise UsageError(f"checkpoint {path} not found")
    if Path(out).resolve() == path.resolve():
        raise UsageError(f"--out {out} is the input itself")
    audio_encoder, made_by = load_audio_encoder(path, allow_class or [])
    if is_artifact(path):
        provenance = dict(read_artifact(path, allow_class or []).config["provenance"])
    else:
        ckpt = read_checkpoint(path)
        provenance = training_provenance(ckpt, path, made_by["fingerprint"])
        del ckpt
    provenance["license"] = license
    if name:
        provenance["name"] = name
    probe_results = read_results(results or [])
    folder = write_artifact(audio_encoder, out, provenance, probe_results, overwrite)
    size = (folder / "model.safetensors").stat().st_size
    digest = hashlib.sha256((folder / "config.json").read_bytes()).hexdigest()[:12]
    print(
        f"wrote {folder} (config.json {digest}..., model.safetensors {size / 1e6:.1f} MB, "
        f"README.md); embed_dim {audio_encoder.embed_dim}, "
        f"{json.dumps(audio_encoder.embedding_rule['hop_seconds'])} s hop"
    )
    return 0
