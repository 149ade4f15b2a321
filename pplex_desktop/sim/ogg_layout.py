"""Reproduce the PersonaPlex server's Ogg layout from sphn 0.2 output.

Kyutai's server sends what sphn 0.2 writes: headers glued to the first audio, two 40 ms pages a
message, granules in 48 kHz units. PersonaPlex (sphn 0.1) sends OpusHead and OpusTags as messages
of their own, then one page per 80 ms with granules counting 24 kHz samples. Clients must cope
with both, so the simulator rewrites pages to match whichever flavour it plays.
"""

from __future__ import annotations

import random

from pplex_desktop.moshi.codec import FRAME_SAMPLES
from pplex_desktop.moshi.ogg import FLAG_BOS, OggPage, split_pages


class PersonaPlexLayout:
    def __init__(self, head_body: bytes, tags_body: bytes) -> None:
        self._serial = random.getrandbits(32)
        self._sequence = 0
        self._granule = 0
        self._head_body = head_body
        self._tags_body = tags_body

    def _page(self, header_type: int, granule: int, lacing: bytes, body: bytes) -> bytes:
        page = OggPage(header_type, granule, self._serial, self._sequence, lacing, body)
        self._sequence += 1
        return page.to_bytes()

    @staticmethod
    def _lacing_for(size: int) -> bytes:
        return bytes([255] * (size // 255) + [size % 255])

    def header_messages(self) -> list[bytes]:
        """The two header pages, each to be sent as its own message."""
        head = self._page(FLAG_BOS, 0, self._lacing_for(len(self._head_body)), self._head_body)
        tags = self._page(0, 0, self._lacing_for(len(self._tags_body)), self._tags_body)
        return [head, tags]

    def audio_message(self, encoded: bytes) -> bytes:
        """Merge the audio pages of one encoded frame into a single page."""
        pages = [p for p in split_pages(encoded) if not (p.is_opus_head or p.is_opus_tags)]
        lacing = b"".join(p.lacing for p in pages)
        body = b"".join(p.body for p in pages)
        self._granule += FRAME_SAMPLES
        if len(lacing) > 255:
            return b"".join(self._page(0, self._granule, p.lacing, p.body) for p in pages)
        return self._page(0, self._granule, lacing, body)
