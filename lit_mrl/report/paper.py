"""The paper's downstream results, as data: 26 task metrics x 6 embedding models.

McCallum et al., ISMIR 2022 (https://arxiv.org/abs/2210.03799), rebuilt from the
released per-class results (``supporting_data/results/**.csv`` of
PandoraMedia/music-audio-representations): tagging rows are the mean over tags of
the per-tag ROC-AUC / AP, GTZAN and NSynth the micro precision (= accuracy), GiantSteps
the MIREX weighted key score, Emomusic the R² of each output. Values are x100.
"""

import re
from dataclasses import dataclass

PAPER_MODELS = (
    "Musicset Supervised",
    "Audioset Supervised",
    "Musicset ULarge (MULE)",
    "Audioset ULarge",
    "Musicset USmall",
    "Audioset USmall",
)

# canonical task key -> display name, in the paper's order
PAPER_TASKS = {
    "mtt": "MagnaTagATune top-50",
    "msds": "MSD Last.fm top-50",
    "msd50": "MSD50",
    "msd100": "MSD100",
    "msd500": "MSD500",
    "jam50": "MTG-Jamendo top-50",
    "jam_mt": "MTG-Jamendo mood/theme",
    "jam_all": "MTG-Jamendo all",
    "mumu": "MuMu",
    "amm": "AllMusic moods",
    "gtzan": "GTZAN (fault-filtered)",
    "nsynth_instrument": "NSynth instrument",
    "nsynth_pitch": "NSynth pitch",
    "giantsteps_key": "GiantSteps key",
    "emomusic": "Emomusic",
}

# Other spellings of the task keys (compared lower-case with non-alphanumerics removed),
# including the shard folder names of data_prep/README.md (mtat, jamendo_top50, nsynth_family, ...).
TASK_ALIASES = {
    "mtt": ("magnatagatune", "mtat", "mtt50"),
    "msds": ("msd", "msdlastfm", "lastfm", "lastfm50", "msdstandard"),  # Choi et al.'s split
    "jam50": ("jamendo50", "jamendotop50", "mtgjamendo", "mtgjamendotop50", "mtgjamendo50"),
    "jam_mt": ("jamendomoodtheme", "mtgjamendomoodtheme", "moodtheme", "jamendomood"),
    "jam_all": ("jamendoall", "mtgjamendoall"),
    "amm": ("allmusicmoods", "allmusic"),
    "gtzan": ("gtzanff", "gtzanfaultfiltered"),
    "nsynth_instrument": ("nsynthi", "nsynthfamily", "nsynthinstrumentfamily", "nsynthinstruments"),
    "nsynth_pitch": ("nsynthp",),
    "giantsteps_key": ("giantsteps", "gskey", "gs"),
    "emomusic": ("emo", "emomusic744"),
}


@dataclass(frozen=True)
class PaperRow:
    """One row of the paper's table.

    Args:
        task: canonical task key (see :data:`PAPER_TASKS`).
        metric: the key of the value in a probe's ``results.json`` ``test`` dict.
        values: x100, one per model of :data:`PAPER_MODELS`.
    """

    task: str
    metric: str
    values: tuple[float, float, float, float, float, float]


def _tagging(task: str, roc_auc: tuple, pr_auc: tuple) -> tuple[PaperRow, PaperRow]:
    return PaperRow(task, "roc_auc", roc_auc), PaperRow(task, "pr_auc", pr_auc)


# fmt: off
PAPER_ROWS: tuple[PaperRow, ...] = (
    *_tagging("mtt", (91.7, 90.1, 91.4, 90.6, 90.5, 89.7), (41.3, 38.4, 40.4, 39.1, 38.9, 37.5)),
    *_tagging("msds", (90.3, 88.3, 90.0, 88.5, 88.8, 87.6), (36.3, 30.9, 35.1, 31.1, 31.9, 28.6)),
    *_tagging("msd50", (91.3, 88.5, 90.8, 88.6, 89.2, 87.8), (45.9, 37.6, 43.8, 37.7, 38.4, 35.3)),
    *_tagging("msd100", (90.5, 87.5, 89.6, 87.7, 87.9, 86.9), (34.2, 27.1, 31.7, 27.3, 28.0, 24.9)),
    *_tagging("msd500", (89.8, 87.4, 89.0, 87.3, 87.8, 86.7), (16.8, 12.7, 15.1, 12.0, 12.8, 10.9)),
    *_tagging("jam50", (84.3, 82.2, 83.9, 82.6, 82.8, 81.7), (32.1, 28.4, 31.7, 28.5, 29.2, 26.8)),
    *_tagging("jam_mt", (78.6, 74.8, 78.1, 76.5, 75.6, 75.2), (16.2, 13.7, 15.9, 14.3, 13.9, 13.7)),
    *_tagging("jam_all", (83.9, 81.3, 83.3, 81.6, 81.7, 80.9), (16.2, 13.5, 15.9, 13.1, 13.9, 12.7)),
    *_tagging("mumu", (90.9, 86.7, 89.4, 85.5, 87.2, 85.0), (25.6, 19.0, 23.4, 16.1, 19.0, 15.1)),
    *_tagging("amm", (79.1, 75.8, 78.3, 76.3, 76.1, 75.3), (18.0, 15.5, 17.4, 15.6, 15.5, 15.1)),
    PaperRow("gtzan", "accuracy", (83.4, 72.8, 73.4, 67.2, 68.6, 64.8)),
    PaperRow("nsynth_instrument", "accuracy", (73.1, 68.6, 74.0, 72.1, 71.4, 69.8)),
    PaperRow("nsynth_pitch", "accuracy", (79.2, 80.5, 89.2, 80.5, 82.3, 77.7)),
    PaperRow("giantsteps_key", "mirex_key", (28.6, 21.0, 66.7, 28.7, 50.8, 19.7)),
    PaperRow("emomusic", "r2_arousal", (72.6, 54.5, 70.0, 62.4, 66.8, 60.9)),
    PaperRow("emomusic", "r2_valence", (56.6, 34.1, 57.7, 43.8, 38.9, 38.6)),
)
# fmt: on


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_LOOKUP = {_normalise(key): key for key in PAPER_TASKS}
_LOOKUP.update({alias: key for key, aliases in TASK_ALIASES.items() for alias in aliases})


def paper_task(name: str) -> str | None:
    """The paper's task key for a task name such as ``"MagnaTagATune"`` (``None``: not in the paper)."""
    return _LOOKUP.get(_normalise(name))
