"""PNG, JPEG and TIFF images (a TIFF's frames are pages) read by OCR, inside a parser child (see pdf.py)."""

from pathlib import Path

from PIL import Image

from .errors import (
    DecompressionBombError,
    IngestionError,
    MalformedDocumentError,
    OcrOffError,
    TooManyPagesError,
)
from .ocr import OcrMode, recognize
from .pdf_worker import Send

# Dimensions are checked here, before any pixel is decoded, against the caller's bound.
Image.MAX_IMAGE_PIXELS = None


def image_job(send: Send, path: Path, ocr: OcrMode, max_pages: int, max_pixels: int) -> None:
    """Recognise every frame's text; send the pages."""
    if ocr is OcrMode.off:
        raise OcrOffError("The file is an image, which has no text without OCR, and OCR is off.")
    try:
        with Image.open(path) as image:
            frames = getattr(image, "n_frames", 1)
            if frames > max_pages:
                raise TooManyPagesError(
                    f"The image has {frames:,} pages; at most {max_pages:,} are accepted."
                )
            texts = []
            for index in range(frames):
                image.seek(index)
                if image.width * image.height > max_pixels:
                    raise DecompressionBombError(
                        f"Page {index + 1} of the image is {image.width:,} x {image.height:,} pixels, over "
                        f"the {max_pixels:,} accepted (a decompression bomb?); it was not processed."
                    )
                image.load()
                texts.append(recognize(image))
    except IngestionError:
        raise
    except Exception as error:  # Pillow's damaged and truncated files, and whatever else a hostile one trips
        raise MalformedDocumentError(f"The image is damaged and could not be read ({error}).") from None
    send(("pages", 0, [(text, "ocr") for text in texts]))
