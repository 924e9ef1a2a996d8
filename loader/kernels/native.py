"""The compiled kernels' plumbing (``hsv.c``, ``resize.c``, ``jpeg.c``): load one through ctypes, and decide once per process
whether it runs or OpenCV does, and why (a slower route is warned, never silent)."""

from __future__ import annotations

import ctypes
import importlib
import logging
import os
import threading

__all__ = ["load", "function", "built", "choose", "Once"]

LOG = logging.getLogger("loader")


def load(name: str) -> ctypes.CDLL:
    """The built extension ``loader.kernels._<name>`` as a C library (ctypes releases the GIL in its calls).
    ImportError where pip did not build it."""
    return ctypes.CDLL(importlib.import_module(f"{__package__}._{name}").__file__)


def function(name: str, symbol: str, restype, argtypes: list, vector: str | None = None):
    """(``symbol`` of the built ``loader.kernels._<name>`` with its C signature, whether this CPU runs its AVX-512
    code: what the library's function ``vector`` says; True without one). ImportError where pip did not build
    it."""
    lib = load(name)
    fn = getattr(lib, symbol)
    fn.restype, fn.argtypes = restype, argtypes
    return fn, True if vector is None else bool(getattr(lib, vector)())


def built(native_kernel, what: str, where_faster: str):
    """(fn, None) where ``native_kernel()`` (fn, whether this CPU runs its AVX-512 code) is built and runs its
    AVX-512 code here, else (None, why not)."""
    try:
        fn, vector = native_kernel()
    except ImportError as e:
        return None, f"the native {what} kernel is not built ({e}; `pip install -e .` builds it with a C compiler)"
    if not vector:
        return None, f"this CPU has no AVX-512 VBMI, where {where_faster}"
    return fn, None


def choose(native, env: str, check, what: str, slower: str):
    """(fn, checked, why): ``native()`` gives (fn, None) or (None, why); ``env=opencv`` opts out; ``check(fn)``
    compares the kernel with the installed OpenCV and returns what the kernel needs to match it (None or False:
    it does not). Without a kernel, ``slower`` is warned with the reason."""
    fn, why = native()
    if fn is not None and os.environ.get(env, "").lower() == "opencv":
        fn, why = None, f"{env}=opencv"
    checked = None
    if fn is not None:
        checked = check(fn)
        if checked is None or checked is False:
            fn, why = None, f"the native {what} kernel does not reproduce this OpenCV build's bytes"
    if fn is None:
        LOG.warning("%s: %s", slower, why)
    return fn, checked, why


class Once:
    """A value made on first use, once per process, then read without a lock (painter threads ask per sample).
    ``value`` may be replaced (tests choose a route that way)."""

    def __init__(self, make):
        self._make, self._lock, self.value = make, threading.Lock(), None

    def __call__(self):
        v = self.value
        if v is not None:
            return v
        with self._lock:
            if self.value is None:
                self.value = self._make()
            return self.value
