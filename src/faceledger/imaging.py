"""Bytes to pixels: the one door every image comes through.

``decode_image`` sniffs the format from the content (never the file name),
applies EXIF orientation, converts grey, alpha, palette, CMYK and 16-bit
images to 8-bit RGB, takes the first frame of animations, and refuses empty,
truncated, unknown and oversized input with a typed error. It never sees a
model and knows nothing about faces.
"""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageTooLargeError, InvalidImageError

# Formats by the magic bytes they start with. The Rekognition surface accepts
# only JPEG and PNG; the CLI also takes the rest.
REKOGNITION_FORMATS = frozenset({"JPEG", "PNG"})
CLI_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "GIF"})

DEFAULT_MAX_PIXELS = 40_000_000  # ~ 7,700 x 5,200; well above any camera JPEG under 15 MB
DEFAULT_MAX_BYTES = 15 * 1024 * 1024
# A progressive JPEG is decoded scan by scan, each a pass over the whole
# coefficient buffer: 1.5-25 ms of CPU a scan at the pixel cap, and a scan can
# cost as little as 23-65 bytes, so a 15 MB file could hold hundreds of
# thousands (5,000 chroma scans took 7 s, 500 luma ones 12 s). Encoders write 1
# (baseline) to about 10 (libjpeg's progression) or 20 (mozjpeg's optimised
# scans); more than this is refused before decoding (100 at the cap: ~2.7 s).
MAX_JPEG_SCANS = 100
# Any marker: 0xFF then a byte that is not a stuffed 0x00, a restart (RSTn) or fill.
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


@dataclass(frozen=True)
class DecodedImage:
    """An RGB uint8 image of shape (H, W, 3) and what we learned decoding it."""

    pixels: np.ndarray
    format: str
    orientation: int  # the EXIF orientation tag that was applied (1 = none)

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def sniff_format(data: bytes) -> str | None:
    """The image format from magic bytes, or None when it is not one we know."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:2] == b"BM":
        return "BMP"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    return None


def decode_image(
    data: bytes,
    *,
    allowed_formats: frozenset[str] = CLI_FORMATS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> DecodedImage:
    """Decode ``data`` into an upright RGB uint8 array or raise a typed error."""
    if not data:
        raise InvalidImageError("The image is empty (0 bytes). Send JPEG or PNG bytes.")
    if len(data) > max_bytes:
        raise ImageTooLargeError(
            f"The image is {len(data):,} bytes; the limit is {max_bytes:,} bytes."
        )
    fmt = sniff_format(data)
    if fmt is None or fmt not in allowed_formats:
        names = ", ".join(sorted(allowed_formats))
        what = "not a recognised image" if fmt is None else f"a {fmt} image"
        raise InvalidImageError(f"The input is {what}; accepted formats are {names}.")
    if fmt == "JPEG":
        _check_jpeg_scans(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img: Image.Image = Image.open(io.BytesIO(data), formats=[fmt])
            _check_pixels(img.size, max_pixels)
            if getattr(img, "n_frames", 1) > 1:
                img.seek(0)  # first frame of an animation
            img.load()
            orientation = _orientation(img)
            if orientation != 1:  # (exif_transpose copies even an upright image)
                img = ImageOps.exif_transpose(img) or img
            rgb = _to_rgb(img)
            del img  # the decoded original, before the RGB copy below
    except (ImageTooLargeError, InvalidImageError):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(
            f"The image has too many pixels (limit {max_pixels:,})."
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImageError(
            f"The {fmt} image could not be decoded ({_short(exc)}); it may be truncated or corrupt."
        ) from exc
    pixels = np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
    if pixels.ndim != 3 or pixels.shape[2] != 3 or min(pixels.shape[:2]) < 1:
        raise InvalidImageError("The image decoded to an unexpected shape.")
    return DecodedImage(pixels=pixels, format=fmt, orientation=orientation)


def _check_pixels(size: tuple[int, int], max_pixels: int) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise InvalidImageError("The image header declares an empty size.")
    if w * h > max_pixels:
        raise ImageTooLargeError(
            f"The image is {w}x{h} = {w * h:,} pixels; the limit is {max_pixels:,}."
        )


def jpeg_scans(data: bytes, stop_after: int = MAX_JPEG_SCANS) -> int:
    """The number of scans (SOS markers) in the JPEG's main image, counting at most ``stop_after + 1``.

    Walks the marker segments and skips each scan's entropy-coded data to the
    next marker, so bytes inside APPn segments (EXIF thumbnails, ICC profiles)
    and anything after the end-of-image marker (MPF previews) are not counted.
    """
    i, n, end = 2, 0, len(data)
    while i + 4 <= end and n <= stop_after:
        if data[i] != 0xFF:
            break  # corrupt: the decoder will say so
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte before a marker
            i += 1
            continue
        if marker == 0xD9:  # end of image
            break
        if 0xD0 <= marker <= 0xD8 or marker == 0x01:  # markers without a length
            i += 2
            continue
        i += 2 + int.from_bytes(data[i + 2:i + 4], "big")
        if marker == 0xDA:
            n += 1
            found = _JPEG_MARKER.search(data, i)
            if found is None:
                break
            i = found.start()
    return n


def _check_jpeg_scans(data: bytes) -> None:
    scans = jpeg_scans(data)
    if scans > MAX_JPEG_SCANS:
        raise ImageTooLargeError(
            f"The JPEG has more than {MAX_JPEG_SCANS} scans (encoders write at most about 20); "
            "decoding it would take minutes. Re-encode it as a baseline or standard progressive JPEG."
        )


def _orientation(img: Image.Image) -> int:
    try:
        value = img.getexif().get(0x0112, 1)
        return int(value) if value in range(1, 9) else 1
    except Exception:  # malformed EXIF must not make a good image unreadable
        return 1


# 16-bit level -> 8-bit level, scaled (not clipped) and rounded
_SIXTEEN_TO_EIGHT = np.clip(np.arange(65536) / 65535.0 * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB; 16-bit and float greys are scaled, not clipped."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        # a table lookup: no float copy of the image (at the pixel cap a
        # float64 one is 320 MB, and the arithmetic made three: 1.27 GB peak)
        return Image.fromarray(_SIXTEEN_TO_EIGHT[np.asarray(img)]).convert("RGB")
    if mode in ("I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = max(float(arr.max()), 1.0)
        if mode == "I" and arr.max() <= 255:
            hi = 255.0
        grey = np.clip(arr / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        # composited on white by pasting through the alpha channel: the same
        # pixels as alpha_composite over an opaque white RGBA image, without its
        # three full-size RGBA images (an RGBA PNG at the cap peaked at 1 GB)
        rgba = img if mode == "RGBA" else img.convert("RGBA")
        out = Image.new("RGB", rgba.size, (255, 255, 255))
        out.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
        return out
    if mode == "CMYK":
        return img.convert("RGB")
    if mode != "RGB":
        return img.convert("RGB")
    return img


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:120]


def read_image_file(path: str, **kwargs: object) -> DecodedImage:
    """Read and decode a file; unreadable paths are an ``InvalidImageError``."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(DEFAULT_MAX_BYTES * 4 + 1)
    except OSError as exc:
        raise InvalidImageError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    return decode_image(data, **kwargs)  # type: ignore[arg-type]
