"""Vector-compatible seed/key libraries (the "SeedKey DLL" of CANoe/CANape/vFlash) via ctypes.

A library exports `GenerateKeyEx` and/or `GenerateKeyExOpt`::

    VKeyGenResultEx GenerateKeyEx(const unsigned char* seed, unsigned int seedSize,
        const unsigned int securityLevel, const char* variant,
        unsigned char* key, unsigned int maxKeySize, unsigned int& keySize);
    VKeyGenResultExOpt GenerateKeyExOpt(const unsigned char* seed, unsigned int seedSize,
        const unsigned int securityLevel, const char* variant, const char* options,
        unsigned char* key, unsigned int maxKeySize, unsigned int& keySize);

Result 0 is KGRE_Ok. On Windows the library is a .dll (stdcall on 32-bit Python: `WinDLL`), on
Linux a .so (`CDLL`). `GenerateKeyExOpt` is preferred when an option string is given. Failures
become `SecurityAccessError` naming the library and the return code, never the seed or key.
Call from one thread at a time per library (vendor libraries are rarely re-entrant): the object
serialises calls with a lock.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys
import threading
from pathlib import Path

from fota_studio.core.errors import SecurityAccessError

MAX_KEY_BYTES = 256

_RESULTS = {
    0: "KGRE_Ok",
    1: "KGRE_BufferToSmall",
    2: "KGRE_SecurityLevelInvalid",
    3: "KGRE_VariantInvalid",
    4: "KGRE_UnspecifiedError",
}


class SeedKeyLibrary:
    """A loaded seed/key library; `generate_key(seed, level)` returns the key bytes."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise SecurityAccessError(
                f"seed/key library {self.path} does not exist",
                hint="set the path of the OEM's seed/key .dll/.so in the EA security level",
            )
        try:
            if os.name == "nt" and struct.calcsize("P") == 4:
                self._lib: ctypes.CDLL = ctypes.WinDLL(str(self.path))  # type: ignore[attr-defined]  # Windows
            else:
                self._lib = ctypes.CDLL(str(self.path))
        except OSError as exc:
            bits = 8 * struct.calcsize("P")
            raise SecurityAccessError(
                f"cannot load seed/key library {self.path.name}: {exc}",
                hint=f"the library must match this {bits}-bit {sys.platform} Python "
                "(a 32-bit DLL cannot load into 64-bit Python)",
            ) from exc
        self._lock = threading.Lock()
        self._ex = self._bind("GenerateKeyEx", with_options=False)
        self._ex_opt = self._bind("GenerateKeyExOpt", with_options=True)
        if self._ex is None and self._ex_opt is None:
            raise SecurityAccessError(
                f"{self.path.name} exports neither GenerateKeyEx nor GenerateKeyExOpt",
                hint="this is not a Vector-compatible seed/key library",
            )

    def _bind(self, name: str, *, with_options: bool) -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]  # private in typeshed
        try:
            fn = getattr(self._lib, name)
        except AttributeError:
            return None
        args: list[type] = [
            ctypes.POINTER(ctypes.c_ubyte),
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_char_p,
        ]
        if with_options:
            args.append(ctypes.c_char_p)
        args += [ctypes.POINTER(ctypes.c_ubyte), ctypes.c_uint, ctypes.POINTER(ctypes.c_uint)]
        fn.argtypes = args
        fn.restype = ctypes.c_int
        return fn

    @property
    def has_options(self) -> bool:
        """True when the library exports GenerateKeyExOpt."""
        return self._ex_opt is not None

    def generate_key(
        self, seed: bytes, level: int, *, variant: str = "", option: bytes | None = None
    ) -> bytes:
        """Compute the key for `seed` at security `level` (the requestSeed sub-function)."""
        seed_buf = (ctypes.c_ubyte * max(1, len(seed))).from_buffer_copy(seed or b"\0")
        key_buf = (ctypes.c_ubyte * MAX_KEY_BYTES)()
        size = ctypes.c_uint(0)
        var = variant.encode("ascii", "replace")
        with self._lock:
            if option is not None and self._ex_opt is not None:
                rc = self._ex_opt(
                    seed_buf,
                    len(seed),
                    level,
                    var,
                    option,
                    key_buf,
                    MAX_KEY_BYTES,
                    ctypes.byref(size),
                )
            elif self._ex is not None:
                rc = self._ex(
                    seed_buf, len(seed), level, var, key_buf, MAX_KEY_BYTES, ctypes.byref(size)
                )
            else:
                assert self._ex_opt is not None
                rc = self._ex_opt(
                    seed_buf,
                    len(seed),
                    level,
                    var,
                    b"",
                    key_buf,
                    MAX_KEY_BYTES,
                    ctypes.byref(size),
                )
        if rc != 0:
            raise SecurityAccessError(
                f"{self.path.name}: GenerateKeyEx for level 0x{level:02X} returned "
                f"{rc} ({_RESULTS.get(rc, 'unknown')})",
                hint="check the security level and variant configured for this ECU",
            )
        n = size.value
        if n == 0 or n > MAX_KEY_BYTES:
            raise SecurityAccessError(
                f"{self.path.name}: GenerateKeyEx returned an invalid key size {n}"
            )
        return bytes(key_buf[:n])
