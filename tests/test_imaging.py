"""Bad and awkward input to the one image decoder: typed errors, never tracebacks."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from faceledger.errors import ImageTooLargeError, InvalidImageError
from faceledger.imaging import REKOGNITION_FORMATS, decode_image, sniff_format


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_zero_bytes() -> None:
    with pytest.raises(InvalidImageError, match="empty"):
        decode_image(b"")


def test_random_bytes() -> None:
    rng = np.random.default_rng(1)
    with pytest.raises(InvalidImageError, match="not a recognised image"):
        decode_image(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())


def test_truncated_jpeg(grace_hopper_bytes: bytes) -> None:
    with pytest.raises(InvalidImageError, match="truncated or corrupt"):
        decode_image(grace_hopper_bytes[: len(grace_hopper_bytes) // 3])


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def test_png_header_claiming_huge_size_is_refused_before_decoding() -> None:
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
    with pytest.raises(ImageTooLargeError, match="pixels"):
        decode_image(data + _png_chunk(b"IEND", b""))


def test_too_many_bytes() -> None:
    with pytest.raises(ImageTooLargeError):
        decode_image(b"\xff\xd8\xff" + b"\0" * 100, max_bytes=50)


def test_cmyk_jpeg_becomes_rgb() -> None:
    img = Image.new("CMYK", (40, 30), (0, 255, 255, 0))  # pure red in CMYK
    out = decode_image(encode(img, "JPEG"))
    assert out.pixels.shape == (30, 40, 3) and out.pixels.dtype == np.uint8
    r, g, b = out.pixels[15, 20].astype(int)
    assert r > 200 and g < 60 and b < 60


def test_sixteen_bit_png_is_scaled_not_clipped() -> None:
    arr = np.full((20, 30), 32768, dtype=np.uint16)
    img = Image.fromarray(arr)
    assert img.mode.startswith("I;16")
    out = decode_image(encode(img, "PNG"))
    assert out.pixels.shape == (20, 30, 3)
    assert 120 <= int(out.pixels[0, 0, 0]) <= 135


def test_sixteen_bit_png_is_converted_without_float_copies() -> None:
    # Before: three float64 copies of the image (at the pixel cap a 1.27 GB
    # peak for a 90 KB PNG); now a table lookup. numpy's allocations are traced.
    import tracemalloc

    arr = (np.arange(2000 * 2000, dtype=np.uint32) % 65536).astype(np.uint16).reshape(2000, 2000)
    data = encode(Image.fromarray(arr), "PNG", compress_level=1)
    tracemalloc.start()
    try:
        out = decode_image(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * arr.size  # uint16 view, uint8 lookup, the RGB result: ~7 bytes a pixel
    expected = np.clip(arr / 65535.0 * 255.0 + 0.5, 0, 255).astype(np.uint8)
    assert np.array_equal(out.pixels[:, :, 0], expected) and np.array_equal(out.pixels[:, :, 2], expected)


RSS_CHILD = """
import io, resource, sys
import numpy as np
from PIL import Image
from faceledger.imaging import decode_image
rgba = np.zeros((4000, 4000, 4), np.uint8)
rgba[..., 0] = np.arange(4000) % 256
rgba[..., 3] = 128
buf = io.BytesIO()
Image.fromarray(rgba).save(buf, "PNG", compress_level=1)
data = buf.getvalue()
del rgba, buf
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
pixels = decode_image(data).pixels
assert pixels[0, 200].tolist() == [227, 127, 127], pixels[0, 200]
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024 / pixels.shape[0] / pixels.shape[1])
"""


def test_rgba_png_is_composited_without_full_size_rgba_copies() -> None:
    # Before: alpha_composite over a white RGBA copy, ~16 bytes a pixel at the
    # peak (an RGBA PNG at the pixel cap: 815 MB to decode); now ~9.
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", RSS_CHILD], capture_output=True, text=True, timeout=120, check=True)
    assert float(out.stdout) < 12.5


def test_grey_and_alpha_become_rgb() -> None:
    for img in (Image.new("L", (8, 8), 90), Image.new("RGBA", (8, 8), (10, 20, 30, 0)), Image.new("LA", (8, 8))):
        out = decode_image(encode(img, "PNG"))
        assert out.pixels.shape == (8, 8, 3)
    # transparent pixels are composited on white, not left black
    assert decode_image(encode(Image.new("RGBA", (4, 4), (0, 0, 0, 0)), "PNG")).pixels.min() == 255


def test_animated_gif_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    out = decode_image(buf.getvalue())
    r, g, b = out.pixels[8, 8].astype(int)
    assert r > 200 and b < 60
    with pytest.raises(InvalidImageError, match="GIF"):
        decode_image(buf.getvalue(), allowed_formats=REKOGNITION_FORMATS)


def test_exif_orientation_is_applied() -> None:
    img = Image.new("RGB", (60, 20), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 10, 20))  # white stripe on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: viewer must rotate 90 degrees clockwise
    out = decode_image(encode(img, "JPEG", exif=exif.tobytes()))
    assert out.orientation == 6
    assert out.pixels.shape == (60, 20, 3)  # now portrait
    assert out.pixels[:8].mean() > 200  # the stripe is now at the top


def test_tiny_image_decodes() -> None:
    out = decode_image(encode(Image.new("RGB", (10, 10), (128, 128, 128)), "PNG"))
    assert out.pixels.shape == (10, 10, 3)


def test_sniffing_ignores_names_and_knows_formats() -> None:
    assert sniff_format(b"\xff\xd8\xff\xe0") == "JPEG"
    assert sniff_format(b"RIFF\0\0\0\0WEBPVP8 ") == "WEBP"
    assert sniff_format(b"BM\0\0") == "BMP"
    assert sniff_format(b"%PDF-1.4") is None


def test_webp_and_bmp_for_the_cli() -> None:
    img = Image.new("RGB", (12, 9), (1, 2, 3))
    for fmt in ("WEBP", "BMP"):
        assert decode_image(encode(img, fmt)).pixels.shape == (9, 12, 3)


def many_scan_jpeg(repeats: int) -> bytes:
    """A valid progressive JPEG whose last scan is sent ``repeats`` more times (libjpeg only warns)."""
    data = encode(Image.new("RGB", (64, 48), (120, 130, 140)), "JPEG", progressive=True)
    last = data.rindex(b"\xff\xda")
    return data[:-2] + data[last:-2] * repeats + data[-2:]


def test_jpeg_with_thousands_of_scans_is_refused_before_decoding() -> None:
    # Before: decoded, ~1.5 ms a scan at the pixel cap and ~23 bytes each, so a
    # 15 MB file held minutes of decoding outside any engine budget (limit: 100).
    with pytest.raises(ImageTooLargeError, match="scans"):
        decode_image(many_scan_jpeg(200))
    assert decode_image(many_scan_jpeg(20)).pixels.shape == (48, 64, 3)


def test_ordinary_jpegs_pass_the_scan_count(grace_hopper_bytes: bytes) -> None:
    from faceledger.imaging import jpeg_scans

    img = Image.new("RGB", (64, 48), (10, 200, 30))
    assert jpeg_scans(encode(img, "JPEG")) == 1
    assert jpeg_scans(encode(img, "JPEG", progressive=True)) == 10
    # SOS bytes inside an APPn segment are not scans
    with_app = encode(img, "JPEG", icc_profile=b"\xff\xda\x00\x0c" * 2000)
    assert jpeg_scans(with_app) == 1 and decode_image(with_app).pixels.shape == (48, 64, 3)
    assert jpeg_scans(grace_hopper_bytes) >= 1
    assert jpeg_scans(many_scan_jpeg(300)) == 101  # stops counting past the limit
