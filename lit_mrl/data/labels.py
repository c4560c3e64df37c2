"""Sample labels as training targets, the one place that reads ``labels``/``targets``."""

import torch
from torch import Tensor

from lit_mrl.formats.info import Task


def encode_labels(meta: dict, task: Task, vocabulary: list[str]) -> Tensor:
    """Turn a sample's ``labels``/``targets`` into a training target.

    Args:
        meta: the sample's JSON metadata.
        task: the dataset's task type.
        vocabulary: label names (or regression output names) from ``info.json``.

    Returns:
        ``(K,)`` float multi-hot (multilabel), ``()`` long class index (multiclass),
        ``(K,)`` float values (regression) or ``(0,)`` (none).

    Raises:
        ValueError: a label is not in the vocabulary or a multiclass sample does not
            have exactly one label.
    """
    if task == "regression":
        return torch.tensor(meta["targets"], dtype=torch.float32)
    if task == "none":
        return torch.zeros(0)
    index = {name: i for i, name in enumerate(vocabulary)}
    unknown = [lab for lab in meta["labels"] if lab not in index]
    if unknown:
        raise ValueError(f"sample {meta.get('key')!r}: labels {unknown} not in the vocabulary")
    if task == "multiclass":
        if len(meta["labels"]) != 1:
            raise ValueError(
                f"sample {meta.get('key')!r}: multiclass needs one label, got {meta['labels']}"
            )
        return torch.tensor(index[meta["labels"][0]])
    hot = torch.zeros(len(vocabulary))
    hot[[index[lab] for lab in meta["labels"]]] = 1.0
    return hot
