"""Many probes of one shape as one stacked model, trained without autograd.

Member ``e`` of a :class:`StackedMLP` is the probe :class:`~lit_mrl.probe.ProbeModule`
trains with the same shape, dropout, L2, learning rate and seed: the same initial
weights (:func:`~lit_mrl.models.heads.seeded_mlp_head`), the same loss and L2 term,
Adam with the member's own learning rate. The forward and backward passes are written
out by hand: a probe is a few matrix products, and autograd's graph, the loss value
(never needed) and one optimizer pass per tensor cost more than the products on small
data. Every parameter lives in one flat buffer, so Adam is a handful of vector
operations over all members at once, in cache-sized chunks.

With ``compute_dtype=torch.bfloat16`` the training passes' matrix products run in
bfloat16 (operands rounded, sums accumulated in float32 by the backend, each product's
result rounded to bfloat16 as under autocast) while weights, Adam's state, biases, the
loss gradient, sums over the batch and every evaluation pass stay float32:
mixed precision as ``precision="bf16-mixed"`` means in Lightning. On CPUs with AVX512-BF16
or AMX the products run about 3x faster (``bench/README.md``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lit_mrl.models.heads import MLPHead

ADAM_EPS = 1e-7  # Keras' Adam epsilon, which the paper's probes used (torch's default is 1e-8)


class StackedMLP:
    """``E`` MLP probes of one shape: ``(B, D)`` or ``(E, B, D)`` -> ``(E, B, K)``.

    Layer ``l`` has the kernels ``kernels[l]`` ``(E, in, out)`` and biases ``biases[l]``
    ``(E, 1, out)``, all views of :attr:`flat` (gradients: views of :attr:`grad`).

    Args:
        heads: ``E`` heads of identical shape whose current weights are copied (the
            same head may be repeated).
        dropout: ``(E,)`` drop probability of each member after each hidden layer.
        device: where the weights live.
        compute_dtype: dtype of the training passes' matrix products (float32 or
            bfloat16; weights stay float32).
    """

    def __init__(
        self,
        heads: Sequence[MLPHead],
        dropout: Tensor,
        device: str | torch.device = "cpu",
        compute_dtype: torch.dtype = torch.float32,
    ) -> None:
        if compute_dtype not in (torch.float32, torch.bfloat16):
            raise ValueError(f"compute_dtype must be float32 or bfloat16, not {compute_dtype}")
        self.compute_dtype = compute_dtype
        layers = [head.linears() for head in heads]
        self.dims = [layers[0][0].in_features] + [lin.out_features for lin in layers[0]]
        kernels = [
            torch.stack([lin[i].weight.detach().T for lin in layers])
            for i in range(len(self.dims) - 1)
        ]
        biases = [torch.stack([lin[i].bias.detach()[None] for lin in layers]) for i in range(len(self.dims) - 1)]  # fmt: skip
        self._build([t.to(device) for t in kernels], [t.to(device) for t in biases])
        self._set_keep((1.0 - dropout.float()).to(device).view(-1, 1, 1))

    def _set_keep(self, keep: Tensor) -> None:
        self.keep = keep  # (E, 1, 1) probability of keeping a hidden unit
        self.inverse_keep = 1.0 / keep  # the scale of a kept unit (inverted dropout)
        self.dropping = bool((keep < 1).any())  # otherwise dropout draws are skipped

    def _build(self, kernels: list[Tensor], biases: list[Tensor]) -> None:
        """Lay ``kernels`` and ``biases`` out in one flat buffer, kernels first."""
        tensors = [*kernels, *biases]
        self._buffers: dict[tuple, Tensor] = {}
        self.flat = torch.cat([t.reshape(-1) for t in tensors])
        self.grad = torch.zeros_like(self.flat)
        params, grads, start = [], [], 0
        for t in tensors:
            params.append(self.flat[start : start + t.numel()].view(t.shape))
            grads.append(self.grad[start : start + t.numel()].view(t.shape))
            start += t.numel()
        layers = len(kernels)
        self.kernels, self.biases = params[:layers], params[layers:]
        self.kernel_grads, self.bias_grads = grads[:layers], grads[layers:]
        self.kernel_elements = sum(k.numel() for k in kernels)  # flat[:n] are the kernels

    @property
    def num_members(self) -> int:
        """Ensemble size E."""
        return self.kernels[0].shape[0]

    @property
    def device(self) -> torch.device:
        return self.flat.device

    def member_vector(self, values: Tensor, kernels_only: bool = False) -> Tensor:
        """``(E,)`` per-member ``values`` spread over :attr:`flat` (0 on biases if asked)."""
        out = torch.zeros_like(self.flat)
        start = 0
        for i, view in enumerate([*self.kernels, *self.biases]):
            part = out[start : start + view.numel()].view(view.shape)
            if not (kernels_only and i >= len(self.kernels)):
                part.copy_(values.to(out).view(-1, 1, 1).expand_as(view))
            start += view.numel()
        return out

    @property
    def shapes(self) -> list[torch.Size]:
        """Shapes of the kernels, then the biases, as :attr:`flat` lays them out."""
        return [t.shape for t in (*self.kernels, *self.biases)]

    def select(self, members: Tensor) -> None:
        """Keep only ``members`` (indices), in that order (stopped members leave)."""
        members = members.to(self.device)
        kernels, biases = unflatten(self.flat, self.shapes)
        self._build(
            [k.index_select(0, members) for k in kernels],
            [b.index_select(0, members) for b in biases],
        )
        self._set_keep(self.keep.index_select(0, members))

    def member_weights(self, member: int) -> list[Tensor]:
        """Copies of one member's kernels and biases, input to output."""
        return [t[member].clone() for t in (*self.kernels, *self.biases)]

    @classmethod
    def from_weights(cls, weights: Sequence[list[Tensor]]) -> StackedMLP:
        """A stacked model of members given as :meth:`member_weights` lists (no dropout)."""
        model = cls.__new__(cls)
        model.compute_dtype = torch.float32
        layers = len(weights[0]) // 2
        model.dims = [weights[0][0].shape[0]] + [k.shape[1] for k in weights[0][:layers]]
        model._build(
            [torch.stack([w[i] for w in weights]) for i in range(layers)],
            [torch.stack([w[layers + i] for w in weights]) for i in range(layers)],
        )
        model._set_keep(torch.ones(len(weights), 1, 1, device=model.device))
        return model

    def _buffer(self, name: str, index: int, shape: tuple[int, ...]) -> Tensor:
        """A work array reused from step to step (fresh large arrays page-fault on CPU)."""
        key = (name, index, shape)
        if key not in self._buffers:
            self._buffers[key] = torch.empty(shape, device=self.device)
        return self._buffers[key]

    def forward(self, emb: Tensor, masks: list[Tensor] | None = None) -> list[Tensor]:
        """Every layer's output for ``emb``; hidden ones after ReLU and dropout.

        Training passes (``masks`` given) write into work arrays that the next training
        pass reuses; evaluation passes allocate their own.

        Args:
            emb: ``(B, D)`` (every member sees it) or ``(E, B, D)``.
            masks: per hidden layer ``(1 or E, B, H)`` uniform draws in [0, 1); a unit
                is kept where the draw is below the member's keep probability (ignored
                when no member drops units). None: no dropout (evaluation).

        Returns:
            ``[h_1, ..., h_L]``: ``(E, B, H_l)`` hidden activations, ``(E, B, K)`` outputs.
        """
        outputs, hidden = [], emb
        members, batch = self.num_members, emb.shape[-2]
        low = masks is not None and self.compute_dtype != torch.float32
        self._low_kernels = [k.to(self.compute_dtype) for k in self.kernels] if low else []
        for i in range(len(self.kernels)):
            if low:  # round before the expand, so that a (B, D) input is cast once
                hidden = hidden.to(self.compute_dtype)
            if hidden.dim() == 2:  # (B, D) -> (E, B, D) as a stride-0 view (no copy)
                hidden = hidden.expand(members, *hidden.shape)
            shape = (members, batch, self.dims[i + 1])
            out = self._buffer("out", i, shape) if masks is not None else None
            if low:
                product = torch.bmm(hidden, self._low_kernels[i])
                hidden = torch.add(self.biases[i], product, out=out)
            else:
                hidden = torch.baddbmm(self.biases[i], hidden, self.kernels[i], out=out)
            if i < len(self.kernels) - 1:
                hidden.relu_()
                if masks is not None and self.dropping:
                    # inverted dropout: drop where the draw is not below keep, scale by 1 / keep
                    kept = torch.lt(masks[i], self.keep, out=self._buffer("kept", i, shape))
                    hidden.mul_(kept).mul_(self.inverse_keep)
            outputs.append(hidden)
        return outputs

    def backward(self, emb: Tensor, outputs: list[Tensor], grad_out: Tensor) -> None:
        """Write the gradients of the members' summed losses into :attr:`grad`.

        Args:
            emb: the forward pass's input.
            outputs: :meth:`forward`'s outputs of a training pass.
            grad_out: ``(E, B, K)`` loss gradient with respect to the outputs.
        """
        grad = grad_out
        low = self.compute_dtype != torch.float32
        for i in reversed(range(len(self.kernels))):
            inputs = outputs[i - 1] if i else emb
            if low:
                inputs, grad_low = inputs.to(self.compute_dtype), grad.to(self.compute_dtype)
            if inputs.dim() == 2:
                inputs = inputs.expand(self.num_members, *inputs.shape)
            if low:
                self.kernel_grads[i].copy_(torch.bmm(inputs.transpose(1, 2), grad_low))
            else:
                torch.bmm(inputs.transpose(1, 2), grad, out=self.kernel_grads[i])
            torch.sum(grad, dim=1, keepdim=True, out=self.bias_grads[i])
            if i:
                shape = tuple(outputs[i - 1].shape)
                if low:
                    product = torch.bmm(grad_low, self._low_kernels[i].transpose(1, 2))
                    grad = self._buffer("grad", i, shape).copy_(product)
                else:
                    grad = torch.bmm(
                        grad, self.kernels[i].transpose(1, 2), out=self._buffer("grad", i, shape)
                    )
                # d(relu then dropout): 1 / keep where the output is positive (kept), else 0;
                # the outputs are >= 0, so their sign is that 0/1 mask
                grad.mul_(torch.sign(outputs[i - 1], out=self._buffer("kept", i - 1, shape)))
                if self.dropping:
                    grad.mul_(self.inverse_keep)

    def predict(self, emb: Tensor) -> Tensor:
        """``(E, N, K)`` outputs of every member (no dropout) for ``(N, D)`` embeddings."""
        batch = max(256, 2**24 // (self.num_members * max(self.dims[1:])))  # ~64 MB a layer
        parts = [self.forward(chunk.to(self.device))[-1] for chunk in emb.split(batch)]
        return torch.cat(parts, dim=1)


def loss_gradient(task: str, outputs: Tensor, labels: Tensor) -> Tensor:
    """Gradient of each member's mean loss (:func:`~lit_mrl.losses.probe_loss`) by its outputs.

    Softmax cross-entropy (mean over the batch), sigmoid BCE or squared error (means
    over the batch and the outputs), as Keras reduces them.

    Args:
        task: the task type.
        outputs: ``(E, B, K)`` logits or values.
        labels: ``(B,)`` / ``(B, K)`` shared, or ``(E, B)`` / ``(E, B, K)`` per member.

    Returns:
        ``(E, B, K)``, computed in place of ``outputs``.
    """
    batch = outputs.shape[1]
    if task == "multiclass":
        grad = outputs.softmax(-1)
        index = labels.expand(outputs.shape[:-1]).unsqueeze(-1)
        grad.scatter_add_(-1, index, torch.full_like(index, -1.0, dtype=grad.dtype))
        return grad.div_(batch)
    targets = labels.to(outputs.dtype).expand_as(outputs)
    count = batch * outputs.shape[-1]
    if task == "multilabel":
        return outputs.sigmoid_().sub_(targets).div_(count)
    return outputs.sub_(targets).mul_(2.0 / count)


def adam_chunk_elements(device: torch.device) -> int:
    """Elements per chunk of :class:`StackedAdam`'s update on ``device``.

    2**17 floats (512 kB per array, in cache) on a CPU, else 2**26: at 2**17 the paper
    grid's 151 M-weight ensembles would launch some 10,000 kernels per step (estimated).
    """
    return 2**17 if torch.device(device).type == "cpu" else 2**26


class StackedAdam:
    """Adam with Keras-style L2 on a :class:`StackedMLP`'s flat buffer, one LR per member.

    The L2 term's gradient ``2 * weight_decay * W`` is added to the kernels' gradients
    here rather than through a loss term (the same value). On a CPU each step runs Adam's
    few vector operations over cache-sized chunks of the buffer, so the arrays are read
    from memory about once per step instead of once per operation; on a GPU, where each
    operation is a kernel launch, the chunks are large (:func:`adam_chunk_elements`).

    Args:
        model: the members.
        lr: ``(E,)`` peak learning rates.
        weight_decay: ``(E,)`` L2 factors.
        betas: Adam's moment decay rates.
        eps: added to the root of the second moment.
        chunk_elements: elements updated per chunk (default: :func:`adam_chunk_elements`
            of the model's device). The result does not depend on it.
    """

    def __init__(
        self,
        model: StackedMLP,
        lr: Tensor,
        weight_decay: Tensor,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = ADAM_EPS,
        chunk_elements: int | None = None,
    ) -> None:
        self.model = model
        self.lr, self.weight_decay = lr.double().cpu(), weight_decay.double().cpu()
        self.betas, self.eps = betas, eps
        self.chunk_elements = chunk_elements or adam_chunk_elements(model.device)
        self.steps = 0
        self._vectors()
        self.exp_avg = torch.zeros_like(model.flat)
        self.exp_avg_sq = torch.zeros_like(model.flat)

    def _vectors(self) -> None:
        self.l2 = self.model.member_vector(2.0 * self.weight_decay.float(), kernels_only=True)
        self.lr_vector = self.model.member_vector(self.lr.float())

    def select(self, members: Tensor, shapes: list[torch.Size]) -> None:
        """Keep only the state of ``members`` (``shapes``: the model's before its select)."""
        self.exp_avg = select_flat(self.exp_avg, shapes, members)
        self.exp_avg_sq = select_flat(self.exp_avg_sq, shapes, members)
        self.lr, self.weight_decay = self.lr[members.cpu()], self.weight_decay[members.cpu()]
        self._vectors()

    @torch.no_grad()
    def step(self, factor: float) -> None:
        """One update at ``factor`` times each member's peak learning rate."""
        self.steps += 1
        beta1, beta2 = self.betas
        step_size = factor / (1 - beta1**self.steps)
        root_correction = (1 - beta2**self.steps) ** 0.5
        flat, grad, chunk = self.model.flat, self.model.grad, self.chunk_elements
        for start in range(0, len(flat), chunk):
            part = slice(start, start + chunk)
            g, m, v = grad[part], self.exp_avg[part], self.exp_avg_sq[part]
            if start < self.model.kernel_elements:
                g.addcmul_(flat[part], self.l2[part])  # + 2 * wd * W on the kernels
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = v.sqrt().div_(root_correction).add_(self.eps)
            update = torch.mul(m, self.lr_vector[part]).mul_(-step_size)
            flat[part].addcdiv_(update, denom)


def unflatten(flat: Tensor, shapes: list[torch.Size]) -> tuple[list[Tensor], list[Tensor]]:
    """Views of ``flat`` in ``shapes`` order, split into kernels and biases."""
    views, start = [], 0
    for shape in shapes:
        size = torch.Size(shape).numel()
        views.append(flat[start : start + size].view(shape))
        start += size
    half = len(views) // 2
    return views[:half], views[half:]


def select_flat(flat: Tensor, shapes: list[torch.Size], members: Tensor) -> Tensor:
    """``flat`` (laid out as ``shapes``, members first) with only ``members`` left."""
    kernels, biases = unflatten(flat, shapes)
    members = members.to(flat.device)
    return torch.cat([t.index_select(0, members).reshape(-1) for t in (*kernels, *biases)])
