"""OnlineProbe: watch representation quality on downstream tasks while pre-training runs.

Every ``every_n_epochs`` epochs the current encoder embeds small labelled sets of
downstream tasks (centre crops of their shards, held in memory), a closed-form ridge probe
is fitted on each task's training tracks and scored on its evaluation tracks with the
metrics of :func:`lit_mrl.metrics.score_predictions`, and the primary metric is logged as
``online_probe/<task>/<metric>``: a chart of it shows whether pre-training is improving
what downstream probes can read from the embeddings. Two bars are scored once, when
training starts, by the same probe on the same clips, and logged with every probe as
``<metric>_logmel`` and ``<metric>_random`` (constant series): the trivial log-mel
baseline (:class:`~lit_mrl.models.LogMelStats`, band means and stds) and the encoder's
own random initialisation. It never touches the optimiser and leaves the module in the
mode it found it in.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor

from lit_mrl.data.crops import center_crop
from lit_mrl.data.labels import encode_labels
from lit_mrl.formats.info import read_info, shard_paths
from lit_mrl.formats.shards import decode_audio, iter_shard
from lit_mrl.metrics import score_predictions
from lit_mrl.models import AudioEncoder, LogMelStats
from lit_mrl.tasks import default_metric, primary_metric


@dataclass
class _TaskSet:
    """One downstream task's crops and labels, ready to embed."""

    task: str
    vocabulary: list[str]
    metric: str
    train: tuple[Tensor, Tensor]  # (N, T) audio, labels
    test: tuple[Tensor, Tensor]


def ridge_predict(train: Tensor, targets: Tensor, test: Tensor, ridge: float) -> Tensor:
    """Closed-form ridge regression on z-scored features: ``(N_test, K)`` predictions.

    ``W = (X^T X + ridge * N * I)^-1 X^T Y`` with a bias column; for classification ``Y``
    is one-hot (its argmax is the prediction), for tagging multi-hot (scores rank tags).
    """
    mean, std = train.mean(0), train.std(0).clamp_min(1e-6)
    x, x_test = (train - mean) / std, (test - mean) / std
    x = torch.cat([x, torch.ones(len(x), 1, dtype=x.dtype)], 1)
    x_test = torch.cat([x_test, torch.ones(len(x_test), 1, dtype=x.dtype)], 1)
    gram = x.T @ x + ridge * len(x) * torch.eye(x.shape[1], dtype=x.dtype)
    return x_test @ torch.linalg.solve(gram, x.T @ targets)


class OnlineProbe(L.Callback):
    """Fit a ridge probe per downstream task every few epochs and log its score.

    The random-weights bar is the encoder as it was built, before ``init_weights`` or a
    resumed checkpoint replaced its weights (a copy taken in ``setup``): that is the
    random initialisation itself, not another draw. When training starts from it, as
    usual, the before-training probe is that score and nothing is embedded twice.

    Args:
        tasks: task name -> shard folder (with ``info.json``) of a labelled downstream set.
        every_n_epochs: probe after every n-th training epoch (and before training).
        max_tracks: tracks kept per split (the first ones in shard order), to stay cheap.
        clip_seconds: centre crop embedded per track.
        train_split: split the probe is fitted on.
        eval_split: split it is scored on.
        ridge: L2 strength, relative to the number of training tracks.
        batch_size: crops per encoder forward.
    """

    def __init__(
        self,
        tasks: dict[str, str],
        every_n_epochs: int = 1,
        max_tracks: int = 200,
        clip_seconds: float = 3.0,
        train_split: str = "train",
        eval_split: str = "valid",
        ridge: float = 0.01,
        batch_size: int = 64,
    ) -> None:
        self.tasks = tasks
        self.every_n_epochs = every_n_epochs
        self.max_tracks = max_tracks
        self.clip_seconds = clip_seconds
        self.splits = (train_split, eval_split)
        self.ridge = ridge
        self.batch_size = batch_size
        self._sets: dict[str, _TaskSet] | None = None
        self._initial_state: dict[str, Tensor] | None = None
        self._bars: dict[str, float] | None = None

    def _load_split(self, root: str, split: str, samples: int) -> tuple[Tensor, Tensor]:
        info = read_info(root)
        crops, labels = [], []
        for path in shard_paths(root, split):
            for sample in iter_shard(path):
                audio, rate = decode_audio(sample["flac"])
                if rate != info.sample_rate:
                    raise ValueError(
                        f"{path}: {sample['key']} is at {rate} Hz, not {info.sample_rate}"
                    )
                crops.append(center_crop(audio, samples))
                labels.append(encode_labels(sample["json"], info.task, info.vocabulary))
                if len(crops) == self.max_tracks:
                    return torch.from_numpy(np.stack(crops)), torch.stack(labels)
        return torch.from_numpy(np.stack(crops)), torch.stack(labels)

    def _load(self, sample_rate: int) -> dict[str, _TaskSet]:
        sets = {}
        samples = round(self.clip_seconds * sample_rate)
        for name, root in self.tasks.items():
            info = read_info(root)
            if info.sample_rate != sample_rate:
                raise ValueError(
                    f"online probe task {name}: {root} is at {info.sample_rate} Hz but the model "
                    f"expects {sample_rate} Hz"
                )
            metric = default_metric(info.task, list(info.vocabulary))  # MIREX for keys
            train, test = (self._load_split(root, split, samples) for split in self.splits)
            sets[name] = _TaskSet(info.task, list(info.vocabulary), metric, train, test)
        rank_zero_info(
            "online probe: "
            + ", ".join(f"{n} ({len(s.train[0])}/{len(s.test[0])})" for n, s in sets.items())
        )
        return sets

    @torch.no_grad()
    def _embed(self, audio_encoder: torch.nn.Module, device: torch.device, audio: Tensor) -> Tensor:
        parts = []
        for chunk in audio.split(self.batch_size):
            parts.append(audio_encoder(chunk.to(device)).float().cpu())
        return torch.cat(parts).double()

    def _score(self, audio_encoder: torch.nn.Module, device: torch.device) -> dict[str, float]:
        scores = {}
        for name, data in self._sets.items():
            train = self._embed(audio_encoder, device, data.train[0])
            test = self._embed(audio_encoder, device, data.test[0])
            labels = data.train[1]
            if data.task == "multiclass":
                targets = torch.nn.functional.one_hot(labels, len(data.vocabulary)).double()
            else:
                targets = labels.double()
            preds = ridge_predict(train, targets, test, self.ridge).float()
            summary, _ = score_predictions(
                data.task, preds, data.test[1], data.metric, data.vocabulary
            )
            metric = primary_metric(data.task, data.metric)
            scores[f"online_probe/{name}/{metric}"] = summary[metric]
        return scores

    def probe(self, pl_module: L.LightningModule) -> dict[str, float]:
        """Score every task now; returns ``{"online_probe/<task>/<metric>": value}``."""
        if self._sets is None:
            self._sets = self._load(pl_module.audio_encoder.sample_rate)
        was_training = pl_module.training
        pl_module.eval()
        try:
            return self._score(pl_module.audio_encoder, pl_module.device)
        finally:
            pl_module.train(was_training)

    def bars(self, pl_module: L.LightningModule, scores: dict[str, float]) -> dict[str, float]:
        """The log-mel baseline's and the random weights' scores, ``<key>_logmel`` / ``_random``.

        Args:
            pl_module: the module being trained.
            scores: :meth:`probe` of its encoder now; they are the random weights' scores
                when its weights are still those of ``setup`` (or when ``setup`` never ran).
        """
        audio_encoder = pl_module.audio_encoder
        frontend = audio_encoder.frontend  # the same clips, standardised the same way
        logmel = AudioEncoder(LogMelStats(frontend.n_mels), frontend).eval()
        bars = {f"{k}_logmel": v for k, v in self._score(logmel, pl_module.device).items()}
        initial, random = self._initial_state, scores
        if initial is not None and not _same_state(audio_encoder, initial):
            current = {k: v.detach().clone() for k, v in audio_encoder.state_dict().items()}
            was_training = pl_module.training
            pl_module.eval()
            try:
                audio_encoder.load_state_dict(initial)
                random = self._score(audio_encoder, pl_module.device)
            finally:
                audio_encoder.load_state_dict(current)
                pl_module.train(was_training)
        bars.update({f"{k}_random": v for k, v in random.items()})
        return bars

    def _log(self, trainer: L.Trainer, pl_module: L.LightningModule, when: str) -> None:
        scores = self.probe(pl_module)
        if self._bars is None:  # once: neither bar changes while the encoder trains
            self._bars = self.bars(pl_module, scores)
            self._initial_state = None
        for logger in trainer.loggers:
            logger.log_metrics({**scores, **self._bars}, step=trainer.global_step)
        width = max(len(k) for k in scores) - len("online_probe/")
        lines = [f"online probe, {when} (step {trainer.global_step}):"]
        lines.append(f"  {'':{width}}  encoder  log-mel   random")
        for key, value in scores.items():
            logmel, random = self._bars[f"{key}_logmel"], self._bars[f"{key}_random"]
            name = key.split("/", 1)[1]
            lines.append(f"  {name:{width}}  {value:7.3f}  {logmel:7.3f}  {random:7.3f}")
        rank_zero_info("\n".join(lines))

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Callbacks set up before the module loads init_weights and before a checkpoint is
        # restored: the encoder still has the weights it was built with.
        if stage == "fit" and trainer.is_global_zero and self._bars is None:
            state = pl_module.audio_encoder.state_dict()
            self._initial_state = {k: v.detach().cpu().clone() for k, v in state.items()}

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            self._log(trainer, pl_module, "before training")  # the starting point

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero and (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._log(trainer, pl_module, f"after epoch {trainer.current_epoch + 1}")


def _same_state(module: torch.nn.Module, state: dict[str, Tensor]) -> bool:
    """Whether ``module``'s state dict holds exactly the tensors of ``state``."""
    current = module.state_dict()
    return current.keys() == state.keys() and all(
        torch.equal(current[k].detach().cpu(), v) for k, v in state.items()
    )
