"""An encoder as an artifact the field can load: ``config.json`` + ``model.safetensors``.

The folder ``python -m lit_mrl export`` (and ``import_mule``) writes::

    mymodel/
        config.json          # what to build: AudioEncoder class paths and arguments, the
                             # embedding rule, embed_dim, sample_rate, provenance
        model.safetensors    # the AudioEncoder's tensors only (encoder + frontend)
        README.md            # a generated model card

It holds no training state (no projector, optimizer or schedule) and no code: loading
reads JSON and raw tensors, checks every class the config names against lit_mrl's
allow-list (:mod:`lit_mrl.trust`) before importing anything, builds the encoder and
checks the tensors' names, shapes and finiteness. The same folder works on the Hugging
Face Hub (``AudioEncoder.from_pretrained("org/name")``), with no remote code.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lit_mrl.models.audio_encoder import AudioEncoder

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "README.md"
ARTIFACT_FORMAT = "lit_mrl.audio_encoder"
FORMAT_VERSION = 1
AUDIO_ENCODER_PATH = "lit_mrl.models.AudioEncoder"
MAX_CONFIG_BYTES = 1 << 20
DEFAULT_FRONTEND = "lit_mrl.models.LogMelSpectrogram"


@dataclass
class Artifact:
    """An encoder read from an artifact folder.

    Args:
        audio_encoder: the encoder, weights loaded, in eval mode.
        config: the parsed ``config.json``.
        fingerprint: sha256 of ``config.json`` and ``model.safetensors`` (what made an
            embedding: ``embed`` records it).
        folder: where it was read from.
    """

    audio_encoder: AudioEncoder
    config: dict[str, Any]
    fingerprint: str
    folder: Path


def is_artifact(path: str | Path) -> bool:
    """Whether ``path`` is a folder holding an encoder artifact's ``config.json``."""
    return Path(path).is_dir() and (Path(path) / CONFIG_NAME).is_file()


def resolve_artifact(name: str | Path, revision: str | None = None) -> Path:
    """The local folder of an artifact: ``name`` itself, or a Hub repository's snapshot.

    Raises:
        FileNotFoundError: no such folder, and ``name`` is not a ``org/name`` repository
            that can be fetched (or, offline, found in the Hub cache).
    """
    path = Path(name)
    if path.exists():
        if not is_artifact(path):
            raise FileNotFoundError(f"{path} is not an encoder folder (no {CONFIG_NAME})")
        return path
    text = str(name)
    if text.count("/") != 1 or text.startswith((".", "/")):
        raise FileNotFoundError(f"encoder folder {path} not found")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as err:
        raise FileNotFoundError(
            f"{text} is not a folder; to load it from the Hugging Face Hub: pip install "
            "'lit_mrl[hub]'"
        ) from err
    try:
        return Path(
            snapshot_download(
                text, revision=revision, allow_patterns=[CONFIG_NAME, WEIGHTS_NAME, CARD_NAME]
            )
        )
    except Exception as err:  # not found, offline without a cache, no access
        raise FileNotFoundError(f"cannot fetch {text} from the Hub: {err}") from err


def audio_encoder_args(hparams: dict[str, Any]) -> dict[str, Any]:
    """The ``AudioEncoder`` arguments a training checkpoint's hyper-parameters describe.

    A pre-training module builds ``AudioEncoder(encoder, frontend or
    LogMelSpectrogram(sample_rate), channels_last)``; only those arguments are kept.

    Raises:
        ValueError: the hyper-parameters name no encoder.
    """
    if not isinstance(hparams.get("encoder"), (dict, str)):
        raise ValueError("hyper_parameters name no encoder")
    frontend = hparams.get("frontend")
    if frontend is None:
        frontend = {
            "class_path": DEFAULT_FRONTEND,
            "init_args": {"sample_rate": hparams.get("sample_rate", 16000)},
        }
    args = {"encoder": hparams["encoder"], "frontend": frontend}
    if hparams.get("channels_last"):
        args["channels_last"] = True
    return args


def build_audio_encoder(
    init_args: dict[str, Any],
    source: str | Path,
    allowed_classes: Sequence[str] = (),
    what: str = "an exported encoder",
    where: str = "init_args",
) -> AudioEncoder:
    """Check, then build, an ``AudioEncoder`` from its arguments as a file stores them.

    Every class named is checked before anything is imported (:mod:`lit_mrl.trust`);
    values the classes refuse are one line naming ``source``. The weights are random
    (seed them before calling). The returned encoder's ``spec`` holds ``init_args``.

    Raises:
        ValueError: naming ``source`` and the field.
    """
    from jsonargparse import ActionConfigFile, ArgumentParser

    from lit_mrl.checkpoints import build_checked
    from lit_mrl.trust import check_config

    check_config(AUDIO_ENCODER_PATH, init_args, source, allowed_classes, where=where,
                 what=what, class_field="class_path")  # fmt: skip
    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_class_arguments(AudioEncoder, "model")

    def build() -> AudioEncoder:
        parsed = parser.parse_object({"model": init_args})
        return parser.instantiate_classes(parsed).model

    audio_encoder = build_checked(build, source)
    audio_encoder.spec = json.loads(json.dumps(init_args))  # a plain copy
    return audio_encoder


def read_config(path: Path) -> dict[str, Any]:
    """An artifact's ``config.json``, checked for shape (not yet for what it names).

    Raises:
        ValueError: naming the file and field.
    """
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"{path} is {path.stat().st_size:,} bytes, too large for a config")
    try:
        config = json.loads(path.read_bytes().decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not JSON: {err}") from err
    except RecursionError as err:
        raise ValueError(f"{path} nests too deeply to be a config.json") from err
    if not isinstance(config, dict):
        raise ValueError(f"{path} is not a JSON object")
    if config.get("format") != ARTIFACT_FORMAT:
        raise ValueError(
            f"{path}: field 'format' is {config.get('format')!r}, not {ARTIFACT_FORMAT!r} "
            "(a folder written by python -m lit_mrl export)"
        )
    if config.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {config.get('format_version')!r} is not {FORMAT_VERSION}"
        )
    if config.get("class_path") != AUDIO_ENCODER_PATH:
        raise ValueError(f"{path}: class_path must be {AUDIO_ENCODER_PATH!r}")
    if not isinstance(config.get("init_args"), dict):
        raise ValueError(f"{path}: field 'init_args' is not an object")
    return config


def read_artifact(
    folder: str | Path,
    allowed_classes: Sequence[str] = (),
    map_location: str | torch.device = "cpu",
) -> Artifact:
    """Build the encoder of an artifact folder and load its tensors.

    Raises:
        FileNotFoundError: a file of the artifact is missing.
        ValueError: naming the file and field, for a config that is not an artifact's, a
            class that is not trusted, or tensors that do not fit (names, shapes, NaN/Inf).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load

    from lit_mrl.checkpoints import check_state_dict

    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found (an encoder folder holds both "
                                    f"{CONFIG_NAME} and {WEIGHTS_NAME})")  # fmt: skip
    config = read_config(config_path)
    with torch.random.fork_rng():
        torch.manual_seed(0)  # the weights are replaced; a fixed seed keeps it reproducible
        audio_encoder = build_audio_encoder(config["init_args"], config_path, allowed_classes)
    data = weights_path.read_bytes()  # read once: loaded and hashed from the same bytes
    try:
        state = load(data)
    except (SafetensorError, RuntimeError, ValueError) as err:
        raise ValueError(f"{weights_path} is not a readable safetensors file: {err}") from err
    check_state_dict(state, audio_encoder.state_dict(), weights_path)
    audio_encoder.load_state_dict(state)
    expected = config.get("embed_dim")
    if expected is not None and expected != audio_encoder.embed_dim:
        raise ValueError(
            f"{config_path}: embed_dim is {expected}, the encoder it builds has "
            f"{audio_encoder.embed_dim}"
        )
    digest = hashlib.sha256(config_path.read_bytes())
    digest.update(hashlib.sha256(data).digest())
    return Artifact(audio_encoder.to(map_location).eval(), config, digest.hexdigest(), folder)


def artifact_config(audio_encoder: AudioEncoder, provenance: dict[str, Any]) -> dict[str, Any]:
    """The ``config.json`` of ``audio_encoder`` (whose ``spec`` holds its arguments)."""
    if audio_encoder.spec is None:
        raise ValueError(
            "this AudioEncoder has no recorded config (spec): build it from a checkpoint, "
            "a model file or an artifact, or set audio_encoder.spec to its arguments"
        )
    init_args = dict(audio_encoder.spec)
    init_args["window_seconds"] = audio_encoder.window_seconds
    init_args["hop_seconds"] = audio_encoder.hop_seconds
    return {
        "format": ARTIFACT_FORMAT,
        "format_version": FORMAT_VERSION,
        "class_path": AUDIO_ENCODER_PATH,
        "init_args": init_args,
        "embed_dim": audio_encoder.embed_dim,
        "sample_rate": audio_encoder.sample_rate,
        "embedding": audio_encoder.embedding_rule,
        "parameters": sum(p.numel() for p in audio_encoder.parameters()),
        "provenance": provenance,
    }


def write_artifact(
    audio_encoder: AudioEncoder,
    folder: str | Path,
    provenance: dict[str, Any] | None = None,
    results: list[dict[str, Any]] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``audio_encoder`` as an artifact folder (files written atomically).

    Args:
        audio_encoder: the encoder; its ``spec`` holds its constructor arguments.
        folder: the folder to write (created).
        provenance: where it comes from (source checkpoint and digest, training data and
            steps, licence, ...), stored in ``config.json`` and the model card.
        results: probe results (``results.json`` contents) for the model card.
        overwrite: replace an existing artifact in ``folder``.

    Returns:
        The folder.

    Raises:
        FileExistsError: ``folder`` holds an artifact and ``overwrite`` is false.
    """
    from safetensors.torch import save

    from lit_mrl import __version__
    from lit_mrl.formats.files import atomic_write
    from lit_mrl.models.card import model_card

    folder = Path(folder)
    if is_artifact(folder) and not overwrite:
        raise FileExistsError(
            f"{folder} holds an encoder already: use another --out, or --overwrite"
        )
    folder.mkdir(parents=True, exist_ok=True)
    provenance = {"lit_mrl_version": __version__, **(provenance or {})}
    config = artifact_config(audio_encoder, provenance)
    state = {k: v.detach().cpu().contiguous() for k, v in audio_encoder.state_dict().items()}
    atomic_write(folder / WEIGHTS_NAME, save(state, metadata={"format": ARTIFACT_FORMAT}))
    atomic_write(folder / CONFIG_NAME, (json.dumps(config, indent=2) + "\n").encode())
    atomic_write(folder / CARD_NAME, model_card(config, results or []).encode())
    return folder


def upload_artifact(folder: Path, repo_id: str, private: bool = False) -> str:
    """Upload an artifact folder to a Hub model repository; returns the commit URL."""
    try:
        from huggingface_hub import HfApi
    except ImportError as err:
        raise ValueError(
            "pushing to the Hub needs huggingface_hub: pip install 'lit_mrl[hub]'"
        ) from err
    api = HfApi(token=os.environ.get("HF_TOKEN"))
    api.create_repo(repo_id, private=private, exist_ok=True)
    info = api.upload_folder(repo_id=repo_id, folder_path=str(folder))
    return str(getattr(info, "commit_url", info))
