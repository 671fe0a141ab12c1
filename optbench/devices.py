"""Which devices can run here, and a one-line reason for those that cannot."""

from __future__ import annotations

import torch

DEVICES = ("cpu", "cuda", "mps")
"""The devices of the default matrix; unavailable ones are skipped with a reason."""


def parse_device(device: str) -> torch.device:
    """``device`` as a ``torch.device``.

    Raises:
        ValueError: ``device`` is not a device name torch understands, or a kind
            optbench does not run on.
    """
    try:
        parsed = torch.device(device)
    except RuntimeError:
        raise ValueError(f"{device!r} is not a torch device; use cpu, cuda, cuda:N or mps") from None
    if parsed.type not in DEVICES:
        raise ValueError(f"{device!r}: optbench runs on cpu, cuda and mps, not {parsed.type}")
    return parsed


def unavailable_reason(device: str) -> str | None:
    """Why ``device`` cannot run on this machine, or ``None`` when it can.

    Raises:
        ValueError: as ``parse_device``.
    """
    parsed = parse_device(device)
    if parsed.type == "cpu":
        return None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            return f"{device}: no CUDA device here (torch {torch.__version__}, cuda.is_available() is False)"
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            return f"{device}: only {torch.cuda.device_count()} CUDA device(s) here"
        return None
    if not torch.backends.mps.is_available():
        return f"{device}: no Apple MPS device here"
    return None
