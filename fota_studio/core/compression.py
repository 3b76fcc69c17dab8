"""The download codecs of a compressed transfer, shared by the tester and the simulated ECU.

ISO 14229-1 §14.2 lets RequestDownload name a compression method in the high nibble of its
dataFormatIdentifier; which codec a method ID means is OEM-defined, so the EA names it
(`UdsProfile.compression`, codecs in `core.ea.COMPRESSION_CODECS`). `compress` turns one
download's bytes into the stream the tester sends; `Decompressor` is what a bootloader runs on
the TransferData blocks as they arrive (streaming: it never needs the whole stream first). Pure
functions and per-download objects; any thread.
"""

from __future__ import annotations

import lzma
import zlib
from collections.abc import Sequence
from typing import Protocol

import lz4.frame

from fota_studio.core.ea import COMPRESSION_CODECS
from fota_studio.core.errors import ConfigurationError

#: zlib level 9 and lzma preset 6 trade tester CPU (milliseconds for a MiB) for wire time
#: (seconds for a MiB at 500 kbit/s); LZ4 at its high-compression level 9.
ZLIB_LEVEL = 9
LZMA_PRESET = 6
LZ4_LEVEL = 9


class CompressionError(ValueError):
    """A compressed stream that does not decode (corrupt, truncated or too long)."""


def _unknown(codec: str) -> ConfigurationError:
    return ConfigurationError(
        f'unknown compression codec "{codec}" in the UDS profile',
        hint=f"use one of {', '.join(COMPRESSION_CODECS)} in uds.compression.codec",
    )


def compress(codec: str, data: bytes) -> bytes:
    """The whole compressed stream of `data` with `codec` (zlib, lzma or lz4)."""
    if codec == "zlib":
        return zlib.compress(data, ZLIB_LEVEL)
    if codec == "lzma":
        return lzma.compress(data, preset=LZMA_PRESET)
    if codec == "lz4":
        return bytes(lz4.frame.compress(data, compression_level=LZ4_LEVEL))
    raise _unknown(codec)


class _Stream(Protocol):
    def decompress(self, data: bytes) -> bytes: ...


class Decompressor:
    """Streaming decoder of one download: `feed(block)` returns the bytes it produced.

    `finish()` raises `CompressionError` when the stream ended early; `feed` raises it for
    corrupt data or data after the end of the stream.
    """

    def __init__(self, codec: str) -> None:
        """A decoder for `codec` (raises ConfigurationError for an unknown one)."""
        self.codec = codec
        self._stream: _Stream
        if codec == "zlib":
            self._zlib = zlib.decompressobj()
            self._stream = self._zlib
        elif codec == "lzma":
            self._lzma = lzma.LZMADecompressor()
            self._stream = self._lzma
        elif codec == "lz4":
            self._lz4 = lz4.frame.LZ4FrameDecompressor()
            self._stream = self._lz4
        else:
            raise _unknown(codec)

    @property
    def eof(self) -> bool:
        """True once the end of the compressed stream was decoded."""
        if self.codec == "zlib":
            return bool(self._zlib.eof)
        if self.codec == "lzma":
            return bool(self._lzma.eof)
        return bool(self._lz4.eof)

    def feed(self, block: bytes) -> bytes:
        """Decode the next block of the stream."""
        if self.eof:
            if block:
                raise CompressionError(
                    f"{len(block)} bytes after the end of the {self.codec} stream"
                )
            return b""
        try:
            return bytes(self._stream.decompress(block))
        except (zlib.error, lzma.LZMAError, RuntimeError) as exc:
            raise CompressionError(f"corrupt {self.codec} stream: {exc}") from exc

    def finish(self) -> None:
        """Raise `CompressionError` unless the stream ended."""
        if not self.eof:
            raise CompressionError(f"the {self.codec} stream ended early")


def stream_lengths(codec: str | None, segments: Sequence[bytes]) -> list[int]:
    """Per segment, the bytes its download stream holds (compressed with `codec`, or as is)."""
    if codec is None:
        return [len(data) for data in segments]
    return [len(compress(codec, bytes(data))) for data in segments]
