"""Pure loss functions: tensors in, scalar out; no state, no Lightning."""

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor


def nt_xent_loss(
    z1: Tensor,
    z2: Tensor,
    temperature: float = 0.1,
    gathered: tuple[Tensor, Tensor] | None = None,
    rank: int = 0,
) -> Tensor:
    """SimCLR's normalised temperature-scaled cross-entropy, both directions.

    Every example's positive is the other view of its track; its negatives are all
    other views in the (global) batch, 2N - 2 of them. The result is the mean over
    the 2n local examples. (MULE's TF code sums the two directions instead of
    averaging them, i.e. twice this value; the gradients differ only by that factor.)

    For multi-device training pass the views gathered from every device (with
    gradients, e.g. ``LightningModule.all_gather(z, sync_grads=True)``) as
    ``gathered`` and this device's ``rank``: the mean of the per-device losses is then
    exactly the single-device loss on the global batch.

    Args:
        z1: ``(n, d)`` projections of the first views on this device.
        z2: ``(n, d)`` projections of the second views, row-aligned with ``z1``.
        temperature: softmax temperature (0.1 in the paper).
        gathered: ``(Z1, Z2)``, each ``(N, d)``: the views of all devices in rank
            order; ``None`` means this device's batch is the whole batch.
        rank: this device's index; its rows are ``Z[rank * n:(rank + 1) * n]``.

    Returns:
        Scalar loss.
    """
    Z1, Z2 = gathered if gathered is not None else (z1, z2)
    n, N = z1.shape[0], Z1.shape[0]
    queries = F.normalize(torch.cat([z1, z2]), dim=1)  # (2n, d)
    keys = F.normalize(torch.cat([Z1, Z2]), dim=1)  # (2N, d)
    logits = queries @ keys.T / temperature  # (2n, 2N)
    local = torch.arange(n, device=z1.device) + rank * n  # global index of local rows
    self_cols = torch.cat([local, local + N])
    positive_cols = torch.cat([local + N, local])
    rows = torch.arange(2 * n, device=z1.device)
    logits[rows, self_cols] = float("-inf")  # an example is not its own negative
    return F.cross_entropy(logits, positive_cols)


def probe_loss(
    preds: Tensor, labels: Tensor, task: Literal["multilabel", "multiclass", "regression"]
) -> Tensor:
    """The probe loss of a task, for one probe or a stacked ensemble of probes.

    Sigmoid BCE (multilabel), softmax cross-entropy (multiclass) or MSE (regression),
    each a mean over the batch and the outputs, as Keras reduces them.

    Args:
        preds: ``(..., B, K)`` logits or values; leading dims index ensemble members.
        labels: ``(B, K)`` multi-hot or values, or ``(B,)`` class indices, shared by
            every member.
        task: the dataset's task type.

    Returns:
        Loss of shape ``(...)``: a scalar for ``(B, K)`` predictions, ``(E,)`` for ``(E, B, K)``.
    """
    if task == "multiclass":
        targets = labels.expand(preds.shape[:-1])  # (..., B)
        loss = F.cross_entropy(preds.flatten(0, -2), targets.flatten(), reduction="none")
        return loss.view(preds.shape[:-1]).mean(-1)
    targets = labels.to(preds.dtype).expand_as(preds)
    if task == "multilabel":
        loss = F.binary_cross_entropy_with_logits(preds, targets, reduction="none")
    else:
        loss = (preds - targets).pow(2)
    return loss.mean((-2, -1))


def l2_penalty(kernels: list[Tensor], weight_decay: float | Tensor) -> Tensor:
    """Keras-style L2 regularisation: ``weight_decay * sum(W ** 2)`` over the kernels.

    The paper's probes put ``l2(weight_decay)`` on every Dense kernel (not the biases)
    and add it to the loss; its gradient is ``2 * weight_decay * W``.

    Args:
        kernels: weight matrices, each ``(out, in)``, or stacked ``(E, in, out)``.
        weight_decay: the L2 factor, a float or an ``(E,)`` tensor (one per member).

    Returns:
        Scalar penalty, or ``(E,)`` for stacked kernels.
    """
    return weight_decay * sum(kernel.pow(2).sum((-2, -1)) for kernel in kernels)
