"""`hearbaseline.naive` as it runs here, for `bench encoders`: librosa >= 0.10 takes `mel`'s sample
rate by keyword only (hearbaseline 2021 passes it by position), and the module draws its random
projection unseeded, so each Ray actor would draw its own. This file passes the rate by keyword
and seeds torch before `load_model`; nothing else changes. Run as `--encoder bench/hear_naive.py`."""

import librosa
import torch

_mel = librosa.filters.mel


def _mel_by_keyword(*args, **kwargs):
    if args:
        kwargs["sr"], args = args[0], args[1:]
    return _mel(*args, **kwargs)


librosa.filters.mel = _mel_by_keyword

from hearbaseline import naive  # noqa: E402
from hearbaseline.naive import get_scene_embeddings, get_timestamp_embeddings  # noqa: E402, F401


def load_model(model_file_path: str = ""):
    torch.manual_seed(0)  # the same projection in every actor
    return naive.load_model(model_file_path)
