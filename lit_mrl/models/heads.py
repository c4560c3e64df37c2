"""Heads that sit on top of an encoder's embedding: owned by methods and probes."""

import torch
from torch import Tensor, nn


class ProjectionHead(nn.Module):
    """The paper's projector: ReLU MLP, then a bias-free linear output layer.

    MULE uses three hidden layers of 4096 units for supervised and contrastive
    training alike; the output layer is initialised from N(0, 0.01).

    Args:
        in_dim: embedding size D.
        out_dim: output size (label count, or the contrastive projection size).
        hidden_dims: widths of the hidden ReLU layers.
        input_norm: batch-normalise the embeddings (no affine parameters) before the first
            layer. Not in the paper: SF-NFNet embeddings start about 100 times smaller than
            unit scale (scaled GELU after pooling, skip-init gains at 0), and a projector
            with the usual initialisation then needs hundreds of Adam steps to scale its
            weights up before the encoder gets a useful signal; normalised inputs start
            learning at once. Embeddings are taken before the projector, so they are
            unchanged in kind.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dims: list[int] = [4096, 4096, 4096],  # noqa: B006
        input_norm: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.BatchNorm1d(in_dim, affine=False)] if input_norm else []
        for width in hidden_dims:
            layers += [nn.Linear(in_dim, width), nn.ReLU(inplace=True)]
            in_dim = width
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(in_dim, out_dim, bias=False)
        nn.init.normal_(self.out.weight, mean=0.0, std=0.01)

    def forward(self, emb: Tensor) -> Tensor:
        """Map ``(B, in_dim)`` embeddings to ``(B, out_dim)``."""
        return self.out(self.hidden(emb))


class MLPHead(nn.Module):
    """The paper's probe: ReLU hidden layers with dropout after each, then a linear output.

    Initialised like Keras ``Dense`` (the paper's probes): Glorot-uniform kernels, zero
    biases. With no hidden layers it is a linear probe and ``dropout`` is unused.

    Args:
        in_dim: embedding size D.
        out_dim: tags, classes or regression outputs K.
        hidden_dims: widths of the hidden ReLU layers (the paper: 0 to 3 of 512-4096).
        dropout: drop probability after each hidden layer.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden_dims: list[int] = [],  # noqa: B006
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden_dims:
            layers += [nn.Linear(in_dim, width), nn.ReLU(), nn.Dropout(dropout)]
            in_dim = width
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(in_dim, out_dim)
        for linear in self.linears():
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)

    def linears(self) -> list[nn.Linear]:
        """The dense layers, input to output."""
        return [m for m in self.modules() if isinstance(m, nn.Linear)]

    def forward(self, emb: Tensor) -> Tensor:
        """Map ``(B, in_dim)`` embeddings to ``(B, out_dim)`` logits or values."""
        return self.out(self.hidden(emb))


def seeded_mlp_head(
    in_dim: int, out_dim: int, hidden_dims: list[int], dropout: float, seed: int | None
) -> MLPHead:
    """An :class:`MLPHead` whose initial weights depend only on its shape and ``seed``.

    The global RNG is left untouched; ``seed=None`` draws from it instead. The probe
    search relies on this: every member of a batched ensemble starts from the weights a
    :class:`~lit_mrl.probe.ProbeModule` with the same ``init_seed`` would.
    """
    if seed is None:
        return MLPHead(in_dim, out_dim, hidden_dims, dropout)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MLPHead(in_dim, out_dim, hidden_dims, dropout)
