"""Save and load model directories (``weights.safetensors`` + ``model.json``)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from lrc.io.atomic import OutputError, check_folder
from lrc.model_dirs.card import ModelCard, ModelCardError
from lrc.nets.unet import ARCHITECTURE, UNet

WEIGHTS = "weights.safetensors"
CARD = "model.json"


def file_sha256(path: Path) -> str:
    """sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def check_model_target(directory: str | os.PathLike[str]) -> Path:
    """Fail now, not after training, if a model cannot be saved as ``directory``: it is a file, a folder
    holding no model (saving replaces the folder: its files would be lost), or its parent cannot be written.

    Raises:
        OutputError: naming ``directory``.
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise OutputError(errno.ENOTDIR, "it is a file, not a model directory", str(directory))
    if directory.is_dir() and not (directory / CARD).is_file() and any(directory.iterdir()):
        raise OutputError(
            errno.EEXIST, f"the folder holds files but no model ({CARD}), and saving would replace them", str(directory)
        )
    return check_folder(directory)


def save_model(directory: str | os.PathLike[str], net: UNet, card: ModelCard) -> Path:
    """Write ``net``'s weights and ``card`` into ``directory``, replacing it atomically.

    A reader sees the old directory or the new one, never a mix: both files are written into a
    sibling temporary folder which then takes the directory's place.

    Raises:
        OutputError: see :func:`check_model_target`.
    """
    directory = check_model_target(directory)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}-", dir=directory.parent))
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS))
        card.arguments = dict(net.arguments)
        card.architecture = ARCHITECTURE
        card.weights_sha256 = file_sha256(tmp / WEIGHTS)
        (tmp / CARD).write_text(json.dumps(card.to_json(), indent=2) + "\n")
        if directory.exists():
            old = directory.with_name(f".{directory.name}-old")
            shutil.rmtree(old, ignore_errors=True)
            directory.rename(old)
            tmp.rename(directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return directory


def read_card(directory: str | os.PathLike[str]) -> ModelCard:
    """The card of a model directory.

    Raises:
        ModelCardError: no such directory or card, or an invalid card.
    """
    path = Path(directory) / CARD
    if not path.is_file():
        raise ModelCardError(f"{directory}: not a model directory (no {CARD})")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelCardError(f"{path}: cannot be read ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise ModelCardError(f"{path}: not valid JSON ({exc})") from exc
    try:
        return ModelCard.from_json(data)
    except ModelCardError as exc:
        raise ModelCardError(f"{directory}: {exc}") from exc


def load_model(
    directory: str | os.PathLike[str], kind: str | None = None, device: torch.device | str = "cpu"
) -> tuple[UNet, ModelCard]:
    """Load a model directory, checking the card against the weights.

    Args:
        directory: the model directory.
        kind: the kind required (``pretrained`` or ``segmentation``), or ``None`` for either.
        device: where the network goes.

    Raises:
        ModelCardError: wrong kind or architecture, weights missing, changed since the card was
            written, or not matching the architecture's arguments.
    """
    directory = Path(directory)
    card = read_card(directory)
    if kind is not None and card.kind != kind:
        raise ModelCardError(f"{directory}: a {kind} model is needed, this one is {card.kind}")
    if card.architecture != ARCHITECTURE:
        raise ModelCardError(f"{directory}: architecture {card.architecture!r} is not supported ({ARCHITECTURE!r} is)")
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise ModelCardError(f"{directory}: {WEIGHTS} is missing")
    if card.weights_sha256 and file_sha256(weights) != card.weights_sha256:
        raise ModelCardError(f"{directory}: {WEIGHTS} does not match the sha256 in {CARD} (changed or corrupt)")
    try:
        net = UNet(**card.arguments)
        net.load_state_dict(load_file(str(weights)), strict=True)
    except SafetensorError as exc:
        raise ModelCardError(f"{directory}: {WEIGHTS} is not a readable safetensors file ({exc})") from exc
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ModelCardError(f"{directory}: weights do not fit the architecture in {CARD} ({exc})") from exc
    return net.to(device), card
