"""Which CUDA device the engines may use, asked in one place. Devices are spelled as torch does: ``"cpu"`` or
``"cuda"``.

torch is imported only when asked (the CPU engine never needs CUDA), and every failure (no torch build with
CUDA, no driver, no device) is an answer with its reason, never an exception.
"""

from __future__ import annotations

__all__ = ["cuda_usable", "device_id_of"]


def cuda_usable() -> tuple[bool, str]:
    """(usable, why): whether a CUDA device can run work, with the device name or the reason it cannot."""
    try:
        import torch

        if torch.cuda.is_available():
            return True, f"CUDA device {torch.cuda.get_device_name(torch.cuda.current_device())}"
        return False, "no usable CUDA device"
    except Exception as e:  # noqa: BLE001 - a broken CUDA install is "not usable", with its message
        return False, f"torch.cuda unavailable ({e})"


def device_id_of(device_id: int | None = None) -> int:
    """The CUDA device to use: given, else the caller's current one (a DDP rank's own GPU)."""
    import torch

    return int(torch.cuda.current_device() if device_id is None else device_id)
