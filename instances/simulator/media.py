"""Bytes the simulated phones send: QR images, tiny valid files per media kind, multipart parsing.

No imaging library is installed, so PNGs are written by hand (zlib + CRC chunks); ``qrcode`` only
computes the module matrix. Stickers are PNG bytes labelled ``image/webp`` and videos are an MP4
header without frames: enough for storing and forwarding, not for rendering.
"""

import base64
import hashlib
import struct
import zlib
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import HTTP

import qrcode

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(rows: list[bytes], *, width: int, color: bool) -> bytes:
    """8-bit greyscale (1 byte per pixel) or RGB (3 bytes per pixel) rows, no filtering."""
    header = struct.pack(">IIBBBBB", width, len(rows), 8, 2 if color else 0, 0, 0, 0)
    raw = b"".join(b"\x00" + row for row in rows)
    return (
        PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw, 9))
        + _png_chunk(b"IEND", b"")
    )


def qr_png(code: str, *, scale: int = 6) -> bytes:
    qr = qrcode.QRCode(border=2, error_correction=qrcode.constants.ERROR_CORRECT_M)
    qr.add_data(code)
    qr.make(fit=True)
    rows = []
    for matrix_row in qr.get_matrix():
        row = b"".join((b"\x00" if dark else b"\xff") * scale for dark in matrix_row)
        rows.extend([row] * scale)
    return encode_png(rows, width=len(rows[0]), color=False)


def qr_data_uri(code: str) -> str:
    return "data:image/png;base64," + base64.b64encode(qr_png(code)).decode()


def sample_png(size: int = 16) -> bytes:
    rows = [bytes(v for x in range(size) for v in (x * 255 // size, y * 255 // size, 160)) for y in range(size)]
    return encode_png(rows, width=size, color=True)


# -- Ogg Opus (a real container: two header pages and one page of silent 20 ms frames) -----
def _ogg_crc_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
        table.append(crc & 0xFFFFFFFF)
    return table


_OGG_CRC = _ogg_crc_table()


def _ogg_page(packets: list[bytes], *, sequence: int, granule: int, flags: int) -> bytes:
    lacing = b""
    for packet in packets:
        lacing += b"\xff" * (len(packet) // 255) + bytes([len(packet) % 255])
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, 0x53494D00, sequence, 0, len(lacing))
    page = bytearray(header + lacing + b"".join(packets))
    crc = 0
    for byte in page:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _OGG_CRC[((crc >> 24) & 0xFF) ^ byte]
    page[22:26] = struct.pack("<I", crc)
    return bytes(page)


def sample_ogg(frames: int = 50) -> bytes:
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 312, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 9) + b"simulator" + struct.pack("<I", 0)
    silence = b"\xf8\xff\xfe"  # CELT 20 ms silent frame
    return (
        _ogg_page([head], sequence=0, granule=0, flags=0x02)
        + _ogg_page([tags], sequence=1, granule=0, flags=0x00)
        + _ogg_page([silence] * frames, sequence=2, granule=312 + 960 * frames, flags=0x04)
    )


def sample_pdf(text: str = "Elsehub simulator") -> bytes:
    stream = f"BT /F1 18 Tf 40 100 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def sample_mp4() -> bytes:
    ftyp = b"ftypisom" + struct.pack(">I", 512) + b"isomiso2avc1mp41"
    free = b"free" + b"elsehub simulator video placeholder".ljust(40, b"\x00")
    return struct.pack(">I", len(ftyp) + 4) + ftyp + struct.pack(">I", len(free) + 4) + free


@dataclass(frozen=True)
class Sample:
    content: bytes
    mime_type: str
    file_name: str
    width: int | None = None
    height: int | None = None
    seconds: int | None = None


def sample_media(kind: str) -> Sample:
    """A small valid file for an inbound ``image|video|audio|voice|document|sticker``."""
    if kind == "image":
        return Sample(sample_png(), "image/png", "image.png", width=16, height=16)
    if kind == "sticker":
        return Sample(sample_png(32), "image/webp", "sticker.webp", width=32, height=32)
    if kind == "video":
        return Sample(sample_mp4(), "video/mp4", "video.mp4", width=16, height=16, seconds=1)
    if kind in {"audio", "voice"}:
        return Sample(sample_ogg(), "audio/ogg; codecs=opus", "audio.ogg", seconds=1)
    if kind == "document":
        return Sample(sample_pdf(), "application/pdf", "document.pdf")
    raise ValueError(f"no media for kind {kind!r}")


def sha256_hex(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def sha256_b64(content: bytes) -> str:
    return base64.b64encode(hashlib.sha256(content).digest()).decode()


def extension_for(mime_type: str) -> str:
    base = mime_type.split(";")[0].strip()
    return {
        "image/png": "png",
        "image/jpeg": "jpeg",
        "image/webp": "webp",
        "video/mp4": "mp4",
        "audio/ogg": "oga",
        "audio/mpeg": "mp3",
        "audio/mp4": "m4a",
        "application/pdf": "pdf",
    }.get(base, "bin")


def decode_base64_media(value: str) -> bytes | None:
    """Evolution's ``media`` field: base64 (optionally a data URI) or a URL (-> None)."""
    if not value or value.startswith(("http://", "https://")):
        return None
    if value.startswith("data:") and "," in value:
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        return None


@dataclass(frozen=True)
class Part:
    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None


def parse_multipart(content_type: str, body: bytes) -> dict[str, Part]:
    """``multipart/form-data`` via the email parser (``cgi`` is gone from recent Pythons)."""
    message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if not message.is_multipart():
        return {}
    parts = {}
    for item in message.iter_parts():
        name = item.get_param("name", header="content-disposition")
        if not name:
            continue
        filename = item.get_filename()
        data = item.get_payload(decode=True) or b""
        content = item.get_content_type() if item.get("Content-Type") else None
        parts[name] = Part(name=name, data=data, filename=filename, content_type=content)
    return parts
