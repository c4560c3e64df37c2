"""Many probes of one shape trained as one batched ensemble on shared minibatches.

Member ``e`` of an ensemble is exactly the probe :class:`~lit_mrl.probe.ProbeModule`
would train with the same shape, dropout, L2, learning rate and seeds: the same
initial weights, the same minibatches, the same loss (members' losses are summed,
so each member's gradient is its own) and L2 term, Adam with the member's own
learning rate and the same warm-up/cosine schedule. Only dropout masks are drawn
differently, and matrix products sum in another order (differences of float rounding).
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lit_mrl.losses import probe_loss
from lit_mrl.metrics import ProbeTask
from lit_mrl.models.heads import MLPHead
from lit_mrl.probe.data import EmbeddingTensors, ShuffledBatches
from lit_mrl.schedules import warmup_cosine_factor

ADAM_EPS = 1e-7  # Keras' Adam epsilon, which the paper's probes used (torch's default is 1e-8)


class EnsembleMLP(nn.Module):
    """``E`` MLP probes of one shape with stacked weights: ``(B, D)`` -> ``(E, B, K)``.

    Layer ``l`` holds ``weights[l]`` ``(E, in, out)`` and ``biases[l]`` ``(E, 1, out)``.

    Args:
        heads: ``E`` heads of identical shape whose current weights are copied (the
            same head may be repeated).
        dropout: ``(E,)`` drop probability of each member after each hidden layer.
    """

    def __init__(self, heads: Sequence[MLPHead], dropout: Tensor) -> None:
        super().__init__()
        layers = [head.linears() for head in heads]
        self.weights = nn.ParameterList(
            nn.Parameter(torch.stack([lin[i].weight.detach().T for lin in layers]))
            for i in range(len(layers[0]))
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.stack([lin[i].bias.detach()[None] for lin in layers]))
            for i in range(len(layers[0]))
        )
        self.register_buffer("keep", (1.0 - dropout.float()).view(-1, 1, 1))

    @property
    def num_members(self) -> int:
        """Ensemble size E."""
        return self.weights[0].shape[0]

    def kernels(self) -> list[Tensor]:
        """The stacked kernels ``(E, in, out)``, input to output (for the L2 penalty)."""
        return list(self.weights)

    def forward(self, emb: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Map ``(B, D)`` embeddings to ``(E, B, K)`` outputs (dropout in training mode only)."""
        # (B, D) -> (E, B, D) as a stride-0 view (no copy), then (E, B, D) @ (E, D, H).
        hidden = torch.baddbmm(
            self.biases[0], emb.expand(self.num_members, *emb.shape), self.weights[0]
        )
        for weight, bias in zip(self.weights[1:], self.biases[1:], strict=True):
            hidden = hidden.relu_()
            if self.training:
                # In place on the mask: these (E, B, H) passes are memory-bound on CPU.
                mask = torch.rand(hidden.shape, generator=generator, device=hidden.device)
                hidden = hidden * mask.lt_(self.keep).div_(self.keep)
            hidden = torch.baddbmm(bias, hidden, weight)
        return hidden


class StackedAdam:
    """Adam with Keras-style L2 on stacked ``(E, ...)`` parameters, one LR per member.

    The L2 term's gradient ``2 * weight_decay * W`` is added to the kernels' gradients
    here rather than through autograd (the same value, without a pass over the loss
    graph). Updates run in cache-sized chunks of members; a chunk of one member uses
    exactly ``torch.optim.Adam``'s arithmetic (single-tensor path), so a member follows
    the trajectory its own ``torch.optim.Adam`` would.

    Args:
        kernels: stacked kernels ``(E, in, out)`` (L2-regularised).
        biases: stacked biases ``(E, 1, out)``.
        weight_decay: ``(E,)`` L2 factor of each member.
        betas: Adam's moment decay rates.
        eps: added to the root of the second moment.
        chunk_elements: about how many elements of a parameter to update at once.
    """

    def __init__(
        self,
        kernels: list[Tensor],
        biases: list[Tensor],
        weight_decay: Tensor,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = ADAM_EPS,
        chunk_elements: int = 2**18,
    ) -> None:
        self.params = [*kernels, *biases]
        self.l2 = [2.0 * weight_decay.float().to(p.device) for p in kernels] + [None] * len(biases)
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.betas = betas
        self.eps = eps
        self.chunk_elements = chunk_elements
        self.steps = 0

    def zero_grad(self) -> None:
        """Drop the parameters' gradients."""
        for param in self.params:
            param.grad = None

    @torch.no_grad()
    def step(self, lr: Tensor) -> None:
        """One update with ``(E,)`` float64 learning rates."""
        self.steps += 1
        step_size = lr / (1 - self.betas[0] ** self.steps)  # (E,) float64, like torch's scalar
        for param, l2, exp_avg, exp_avg_sq in zip(
            self.params, self.l2, self.exp_avg, self.exp_avg_sq, strict=True
        ):
            chunk = max(1, self.chunk_elements // param[0].numel())
            for start in range(0, len(param), chunk):
                part = slice(start, start + chunk)
                grad = param.grad[part]
                if l2 is not None:
                    grad.addcmul_(param[part], l2[part].view(-1, 1, 1))  # + 2 * wd * W
                self._update(param[part], grad, exp_avg[part], exp_avg_sq[part], step_size[part])

    def _update(
        self, param: Tensor, grad: Tensor, exp_avg: Tensor, exp_avg_sq: Tensor, step_size: Tensor
    ) -> None:
        beta1, beta2 = self.betas
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = exp_avg_sq.sqrt().div_((1 - beta2**self.steps) ** 0.5).add_(self.eps)
        if len(step_size) == 1:
            param.addcdiv_(exp_avg, denom, value=-step_size.item())
        else:  # p -= step * m / denom, as p -= m / (denom / step)
            step = step_size.to(denom.device, torch.float32).view(-1, *[1] * (denom.dim() - 1))
            param.addcdiv_(exp_avg, denom.div_(step), value=-1.0)


def lr_factors(warmup_steps: int, total_steps: int) -> list[float]:
    """LR multiplier of each step, as :class:`~lit_mrl.schedules.WarmupCosineLR` sets it."""
    return [warmup_cosine_factor(step, warmup_steps, total_steps) for step in range(total_steps)]


@dataclass
class EarlyStopping:
    """Keep each member's weights at its best validation score; stop when none improves.

    Args:
        score: maps the ensemble (eval mode) to ``(E,)`` validation scores, higher better.
        every: steps between evaluations.
        patience: evaluations without any member improving before training stops.
    """

    score: Callable[[EnsembleMLP], Tensor]
    every: int
    patience: int


@dataclass
class FitResult:
    """What :func:`fit_ensemble` did.

    Args:
        steps: optimisation steps taken.
        best_step: ``(E,)`` step of each member's kept weights (the last step without
            early stopping).
        best_score: ``(E,)`` validation score of the kept weights (NaN without early stopping).
    """

    steps: int
    best_step: Tensor
    best_score: Tensor


def fit_ensemble(
    ensemble: EnsembleMLP,
    train: EmbeddingTensors,
    task: ProbeTask,
    lr: Tensor,
    weight_decay: Tensor,
    steps: int,
    warmup_steps: int,
    batch_size: int,
    seed: int,
    early_stopping: EarlyStopping | None = None,
) -> FitResult:
    """Train every member for up to ``steps`` steps on shared minibatches.

    Args:
        ensemble: the members, on the device to train on.
        train: training embeddings and labels.
        task: loss of the task (see :func:`~lit_mrl.losses.probe_loss`).
        lr: ``(E,)`` peak learning rates.
        weight_decay: ``(E,)`` L2 factors.
        steps: optimisation steps (warm-up plus cosine decay to 0).
        warmup_steps: steps of linear warm-up.
        batch_size: embeddings per minibatch.
        seed: seed of the data order (:class:`~lit_mrl.probe.data.ShuffledBatches`)
            and of the dropout masks.
        early_stopping: evaluate every ``every`` steps; each member ends with its best
            weights, and training stops after ``patience`` evaluations without progress.

    Returns:
        Steps taken and each member's best step and score.
    """
    device = ensemble.weights[0].device
    embeddings, labels = train.embeddings.to(device), train.labels.to(device)
    batches = ShuffledBatches(len(train), batch_size, seed)
    masks = torch.Generator(device).manual_seed(seed)
    optimizer = StackedAdam(ensemble.kernels(), list(ensemble.biases), weight_decay)
    peak, factors = lr.double(), lr_factors(warmup_steps, steps)
    tracker = _BestWeights(ensemble, early_stopping)
    ensemble.train()
    while optimizer.steps < steps and not tracker.stopped:
        for index in batches:
            index = index.to(device)
            loss = probe_loss(ensemble(embeddings[index], generator=masks), labels[index], task)
            optimizer.zero_grad()
            loss.sum().backward()  # members are independent: each gets its own gradient
            optimizer.step(peak * factors[optimizer.steps])
            tracker.after_step(optimizer.steps, last=optimizer.steps == steps)
            if optimizer.steps == steps or tracker.stopped:
                break
    tracker.restore()
    return FitResult(optimizer.steps, tracker.best_step, tracker.best_score)


class _BestWeights:
    """Snapshots of each member's best weights under :class:`EarlyStopping`."""

    def __init__(self, ensemble: EnsembleMLP, rule: EarlyStopping | None) -> None:
        self.ensemble, self.rule = ensemble, rule
        members = ensemble.num_members
        self.best_score = torch.full((members,), torch.nan)
        self.best_step = torch.zeros(members, dtype=torch.long)
        self.params = list(ensemble.parameters())
        self.best = [p.detach().clone() for p in self.params] if rule else []
        self.stale = 0
        self.stopped = False

    def after_step(self, step: int, last: bool) -> None:
        if self.rule is None:
            self.best_step.fill_(step)
            return
        if step % self.rule.every and not last:
            return
        self.ensemble.eval()
        with torch.no_grad():
            score = self.rule.score(self.ensemble).double().cpu()
        self.ensemble.train()
        # NaN (undefined) never counts as better; a first finite score always does
        better = (score > self.best_score) | (self.best_score.isnan() & ~score.isnan())
        if better.any():
            chosen = better.to(self.params[0].device)
            for param, best in zip(self.params, self.best, strict=True):
                best[chosen] = param.detach()[chosen]
            self.best_score = torch.where(better, score, self.best_score)
            self.best_step[better] = step
            self.stale = 0
        else:
            self.stale += 1
            self.stopped = self.stale >= self.rule.patience

    def restore(self) -> None:
        if self.rule is None:
            return
        with torch.no_grad():
            for param, best in zip(self.params, self.best, strict=True):
                param.copy_(best)


@torch.no_grad()
def predict_ensemble(ensemble: EnsembleMLP, embeddings: Tensor, batch_size: int = 4096) -> Tensor:
    """``(E, N, K)`` outputs of every member (eval mode) for ``(N, D)`` embeddings, on CPU."""
    ensemble.eval()
    device = ensemble.weights[0].device
    parts = [ensemble(chunk.to(device)).cpu() for chunk in embeddings.split(batch_size)]
    return torch.cat(parts, dim=1)
