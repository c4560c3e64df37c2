"""The model card (``README.md``) of an exported encoder, generated from its config."""

from __future__ import annotations

import json
from typing import Any

TASK_METRICS = ("roc_auc", "pr_auc", "accuracy", "mirex_key", "r2")


def _front_matter(config: dict[str, Any]) -> str:
    licence = str(config["provenance"].get("license") or "other")
    tags = ["audio", "music", "lit_mrl", "feature-extraction", "safetensors"]
    lines = ["---", "library_name: lit_mrl", f"license: {licence}", "tags:"]
    return "\n".join([*lines, *(f"  - {t}" for t in tags), "---", ""])


def _results_table(results: list[dict[str, Any]]) -> list[str]:
    rows = []
    for result in results:
        test = result.get("test", {})
        for metric in TASK_METRICS:
            value = test.get(metric)
            if isinstance(value, (int, float)):
                low = result.get("test_low", {}).get(metric)
                high = result.get("test_high", {}).get(metric)
                shown = f"{100 * value:.1f}"
                if isinstance(low, (int, float)) and isinstance(high, (int, float)):
                    shown += f" ({100 * low:.1f}-{100 * high:.1f})"
                rows.append(f"| {result.get('task_name', '?')} | {metric} | {shown} |")
    if not rows:
        return []
    header = ["", "## Probe results (test split, x100, 95 % interval)", "",
              "| task | metric | score |", "|---|---|---:|"]  # fmt: skip
    return [*header, *rows]


def model_card(config: dict[str, Any], results: list[dict[str, Any]]) -> str:
    """Markdown with Hub front matter: architecture, embedding rule, provenance, results."""
    provenance = config["provenance"]
    encoder = config["init_args"].get("encoder", {})
    encoder_class = encoder.get("class_path", encoder) if isinstance(encoder, dict) else encoder
    rule = config["embedding"]
    name = provenance.get("name") or str(encoder_class).rsplit(".", 1)[-1]
    lines = [
        _front_matter(config),
        f"# {name}",
        "",
        f"An audio encoder exported by lit_mrl {provenance.get('lit_mrl_version', '')}: "
        f"{config['sample_rate']} Hz mono audio in, {config['embed_dim']}-d embeddings out.",
        "",
        "## Architecture",
        "",
        f"- encoder: `{encoder_class}`, {config['parameters']:,} parameters (with the frontend)",
        f"- embedding rule: {rule['window_seconds']} s windows every {rule['hop_seconds']} s "
        f"(placement `{rule['placement']}`), each standardised; the track embedding is the "
        "mean of the timeline",
    ]
    training = {k: v for k, v in provenance.items() if k not in ("lit_mrl_version", "name")}
    if training:
        lines += ["", "## Provenance", ""]
        lines += [f"- {key}: {json.dumps(value) if isinstance(value, (dict, list)) else value}"
                  for key, value in training.items()]  # fmt: skip
    lines += _results_table(results)
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from lit_mrl.models import AudioEncoder",
        "",
        'encoder = AudioEncoder.from_pretrained("path/or/org-name")  # no remote code',
        "embeddings = encoder(audio)  # (B, T) waveform at the sample rate -> (B, D)",
        "```",
        "",
        "or `python -m lit_mrl embed --checkpoint FOLDER --input AUDIO --out EMBEDDINGS`.",
        "",
    ]
    return "\n".join(lines)
