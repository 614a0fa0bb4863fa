"""Pixels of an image file as people see them: 8-bit RGB in the displayed orientation.

Every path that reads image files (detect and its `--draw`, the VOC and COCO folder builders,
whose records feed training, evaluation and its drawn previews) goes through `to_rgb8`:

- EXIF orientation is applied (`PIL.ImageOps.exif_transpose`): a phone photo stored 512x320
  with orientation 6 is read 320 wide and 512 high, as every viewer shows it, and annotation
  sizes and boxes are in that displayed frame.
- 16-bit samples (PNG `I;16`) are scaled to 8 bits (v / 257, rounded: 0 -> 0, 65535 -> 255),
  not clipped. 32-bit integer or float pixels (`I`, `F`: some TIFFs) have no agreed 8-bit
  scale and raise `UnsupportedPixels`, which callers report in one line.
- Greyscale is replicated to RGB; alpha is dropped.
"""

import numpy as np
from PIL import Image
from PIL import ImageOps

EXIF_ORIENTATION = 0x0112


class UnsupportedPixels(ValueError):
  """Pixels without a defined 8-bit RGB reading (32-bit integer or float samples)."""


def orientation(image: Image.Image) -> int:
  """The EXIF orientation tag of `image` (1, the stored frame, when absent or unreadable)."""
  try:
    return int(image.getexif().get(EXIF_ORIENTATION, 1))
  except (TypeError, ValueError, SyntaxError):  # A malformed EXIF block: as stored.
    return 1


def to_rgb8(image: Image.Image) -> Image.Image:
  """`image` (loaded) as 8-bit RGB in its displayed orientation (see the module docstring)."""
  if orientation(image) != 1:
    image = ImageOps.exif_transpose(image)
  if image.mode.startswith('I;16'):
    samples = np.asarray(image).astype(np.float64)
    image = Image.fromarray(np.round(samples / 257.0).astype(np.uint8), 'L')
  elif image.mode in ('I', 'F'):
    raise UnsupportedPixels(f'{"32-bit integer" if image.mode == "I" else "floating-point"} '
                            'pixels have no defined 8-bit reading; convert the file to 8-bit '
                            'RGB (or 16-bit PNG)')
  return image if image.mode == 'RGB' else image.convert('RGB')
