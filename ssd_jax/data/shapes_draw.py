"""Draws one image of the synthetic `shapes` detection data set (numpy + PIL only).

Kept free of TensorFlow so that worker processes can import it cheaply. The tfds builder
around it is `ssd_jax.data.shapes`; docs/data.md describes the generator.

Every image is a pure function of `(seed, index)`: the random generator is
`np.random.default_rng([seed, index])`.

Occlusion: objects are painted one after another (later ones on top), then a few thin
foreground strokes. An integer "owner" map records which object owns each pixel. The
ground-truth box of an object is the tight box of the pixels it still owns (its visible
extent). An object that keeps less than `HIDDEN_FRACTION` of its pixels (or fewer than
`HIDDEN_PIXELS` pixels) is not annotated at all: there is nothing left to detect.
"""

import io

import numpy as np
from PIL import Image
from PIL import ImageDraw

from ssd_jax.classes import SHAPES_CLASSES

CLASS_NAMES = SHAPES_CLASSES

IMAGE_SIZE = 300
MIN_OBJECTS, MAX_OBJECTS = 1, 12
MIN_SIZE, MAX_SIZE = 0.05, 0.9  # Longer side of an object, as a fraction of the image side.
MIN_ASPECT, MAX_ASPECT = 1 / 3, 3.0  # Width / height of an object.
MIN_SHORT_SIDE = 4  # Pixels; the shorter side of a very small, very elongated object.
HIDDEN_FRACTION = 0.15  # Visible fraction below which an object is not annotated.
HIDDEN_PIXELS = 12
DIFFICULT_FRACTION = 0.4  # Visible fraction below which an object is `difficult`.
DIFFICULT_SIZE = 18  # Pixels; visible box longer side below which an object is `difficult`.
JPEG_QUALITY = 92


def _star(points=5, inner=0.4):
  angles = np.arange(2 * points) * np.pi / points - np.pi / 2
  radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
  xs = 0.5 + 0.5 * radii * np.cos(angles)
  ys = 0.5 + 0.5 * radii * np.sin(angles)
  # Stretch to fill the unit square so the drawn extent equals the requested box.
  xs = (xs - xs.min()) / (xs.max() - xs.min())
  ys = (ys - ys.min()) / (ys.max() - ys.min())
  return list(zip(xs, ys))


_POLYGONS = {
    'triangle': [(0.5, 0.0), (1.0, 1.0), (0.0, 1.0)],
    'star': _star(),
    'cross': [(1 / 3, 0), (2 / 3, 0), (2 / 3, 1 / 3), (1, 1 / 3), (1, 2 / 3), (2 / 3, 2 / 3),
              (2 / 3, 1), (1 / 3, 1), (1 / 3, 2 / 3), (0, 2 / 3), (0, 1 / 3), (1 / 3, 1 / 3)],
    'diamond': [(0.5, 0.0), (1.0, 0.5), (0.5, 1.0), (0.0, 0.5)],
}


def _shape_mask(name, w, h, rng):
  """Boolean mask [h, w] of a shape stretched to fill a w x h box."""
  img = Image.new('L', (w, h), 0)
  d = ImageDraw.Draw(img)
  x1, y1 = w - 1, h - 1
  if name == 'ellipse':
    d.ellipse([0, 0, x1, y1], fill=1)
  elif name == 'rectangle':
    d.rectangle([0, 0, x1, y1], fill=1)
  elif name == 'ring':
    d.ellipse([0, 0, x1, y1], fill=1)
    t = rng.uniform(0.2, 0.3)
    d.ellipse([t * x1, t * y1, (1 - t) * x1, (1 - t) * y1], fill=0)
  elif name == 'frame':
    d.rectangle([0, 0, x1, y1], fill=1)
    t = rng.uniform(0.18, 0.28)
    if x1 * t >= 1 and y1 * t >= 1:
      d.rectangle([t * x1, t * y1, (1 - t) * x1, (1 - t) * y1], fill=0)
  else:
    pts = _POLYGONS[name]
    if name == 'triangle':  # Point up, down, left or right.
      k = rng.integers(4)
      if k == 1:
        pts = [(x, 1 - y) for x, y in pts]
      elif k == 2:
        pts = [(y, x) for x, y in pts]
      elif k == 3:
        pts = [(1 - y, x) for x, y in pts]
    d.polygon([(x * x1, y * y1) for x, y in pts], fill=1)
  return np.asarray(img, dtype=bool)


def _background(rng, size):
  """Low-frequency colour field + mid-frequency texture."""
  g = rng.integers(2, 6)
  coarse = rng.uniform(0, 255, (g, g, 3)).astype(np.uint8)
  bg = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BILINEAR), np.float32)
  f = rng.choice([4, 8, 15])
  tex = rng.normal(0, rng.uniform(8, 30), (size // f + 1, size // f + 1)).astype(np.float32)
  tex = np.asarray(Image.fromarray(tex, mode='F').resize(
      ((size // f + 1) * f, (size // f + 1) * f), Image.BILINEAR))[:size, :size]
  if rng.random() < 0.3:  # Stripes.
    period = rng.uniform(6, 40)
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[:size, :size]
    tex = tex + 20 * np.sin((np.cos(angle) * xx + np.sin(angle) * yy) * 2 * np.pi / period)
  return bg + tex[..., None]


def _random_colour(rng):
  return tuple(int(c) for c in rng.integers(0, 256, 3))


def _draw_clutter(draw, rng, size, count, max_width):
  """Lines, arcs, wiggly strokes, specks and irregular blobs: no object class."""
  for _ in range(count):
    kind = rng.integers(5)
    colour = _random_colour(rng)
    width = int(rng.integers(1, max_width + 1))
    if kind == 0:
      draw.line([tuple(rng.uniform(-20, size + 20, 2)) for _ in range(2)], fill=colour,
                width=width)
    elif kind == 1:
      c = rng.uniform(0, size, 2)
      r = rng.uniform(10, size / 2)
      a0 = rng.uniform(0, 360)
      draw.arc([c[0] - r, c[1] - r, c[0] + r, c[1] + r], a0, a0 + rng.uniform(30, 200),
               fill=colour, width=width)
    elif kind == 2:
      p = rng.uniform(0, size, 2)
      steps = rng.normal(0, 8, (int(rng.integers(5, 25)), 2)).cumsum(0)
      draw.line([tuple(q) for q in p + steps], fill=colour, width=width, joint='curve')
    elif kind == 3:
      for _ in range(int(rng.integers(3, 15))):
        c = rng.uniform(0, size, 2)
        r = rng.uniform(1, 3)
        draw.ellipse([c[0] - r, c[1] - r, c[0] + r, c[1] + r], fill=_random_colour(rng))
    else:  # Irregular blob: a smooth-ish random polygon.
      c = rng.uniform(0, size, 2)
      n = int(rng.integers(7, 14))
      ang = np.sort(rng.uniform(0, 2 * np.pi, n))
      rad = rng.uniform(4, 25) * rng.uniform(0.5, 1.0, n)
      draw.polygon([(c[0] + r * np.cos(a), c[1] + r * np.sin(a)) for a, r in zip(ang, rad)],
                   fill=colour)


def draw_example(seed, index, size=IMAGE_SIZE):
  """Returns (image uint8 [size, size, 3], objects dict of numpy arrays).

  objects: bbox float32 [N, 4] normalized yxyx (tight visible extent), label int64 [N]
  (0-based index into CLASS_NAMES), is_difficult bool [N], visible_fraction float32 [N].
  """
  rng = np.random.default_rng([seed, index])
  image = _background(rng, size)
  canvas = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
  _draw_clutter(ImageDraw.Draw(canvas), rng, size, int(rng.integers(4, 20)), 4)
  image = np.asarray(canvas, np.float32).copy()

  owner = np.full((size, size), -1, np.int16)
  n = int(rng.integers(MIN_OBJECTS, MAX_OBJECTS + 1))
  labels, rects, areas = [], [], []
  for k in range(n):
    label = int(rng.integers(len(CLASS_NAMES)))
    long_side = size * np.exp(rng.uniform(np.log(MIN_SIZE), np.log(MAX_SIZE)))
    aspect = np.exp(rng.uniform(np.log(MIN_ASPECT), np.log(MAX_ASPECT)))  # w / h
    short_side = max(long_side / max(aspect, 1 / aspect), MIN_SHORT_SIDE)
    w, h = (long_side, short_side) if aspect >= 1 else (short_side, long_side)
    w, h = int(round(w)), int(round(h))
    x0 = int(rng.integers(0, size - w + 1))
    y0 = int(rng.integers(0, size - h + 1))
    mask = _shape_mask(CLASS_NAMES[label], w, h, rng)
    colour = rng.uniform(0, 255, 3).astype(np.float32)
    # Mild per-object shading so objects are not flat.
    shade = 1 + rng.uniform(-0.25, 0.25) * np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    region = image[y0:y0 + h, x0:x0 + w]
    region[mask] = (colour[None, None] * shade[..., None] *
                    np.ones((1, w, 1), np.float32))[mask]
    owner[y0:y0 + h, x0:x0 + w][mask] = k
    labels.append(label)
    rects.append((y0, x0, h, w))
    areas.append(int(mask.sum()))

  # A few thin foreground strokes across everything (partial occlusion by clutter).
  canvas = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
  fg = Image.new('L', (size, size), 0)
  for _ in range(int(rng.integers(0, 4))):
    pts = [tuple(rng.uniform(0, size, 2)) for _ in range(2)]
    width = int(rng.integers(1, 3))
    ImageDraw.Draw(canvas).line(pts, fill=_random_colour(rng), width=width)
    ImageDraw.Draw(fg).line(pts, fill=1, width=width)
  owner[np.asarray(fg, bool)] = -1
  image = np.asarray(canvas, np.float32)
  image = image + rng.normal(0, rng.uniform(2, 10), image.shape).astype(np.float32)
  image = np.clip(image, 0, 255).astype(np.uint8)

  boxes, out_labels, difficult, visible = [], [], [], []
  for k, (label, (y0, x0, h, w), area) in enumerate(zip(labels, rects, areas)):
    local = owner[y0:y0 + h, x0:x0 + w] == k
    v = int(local.sum())
    frac = v / max(area, 1)
    if v < HIDDEN_PIXELS or frac < HIDDEN_FRACTION:
      continue
    rows = np.flatnonzero(local.any(1))
    cols = np.flatnonzero(local.any(0))
    ymin, ymax = y0 + rows[0], y0 + rows[-1] + 1
    xmin, xmax = x0 + cols[0], x0 + cols[-1] + 1
    boxes.append((ymin / size, xmin / size, ymax / size, xmax / size))
    out_labels.append(label)
    difficult.append(frac < DIFFICULT_FRACTION or max(ymax - ymin, xmax - xmin) <
                     DIFFICULT_SIZE)
    visible.append(frac)
  objects = {
      'bbox': np.asarray(boxes, np.float32).reshape(-1, 4),
      'label': np.asarray(out_labels, np.int64),
      'is_difficult': np.asarray(difficult, bool),
      'visible_fraction': np.asarray(visible, np.float32),
  }
  return image, objects


def encode_jpeg(image):
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, format='JPEG', quality=JPEG_QUALITY)
  return buf.getvalue()


def make_example(args):
  """(split_seed, index) -> (key, example dict for the tfds builder). Picklable."""
  seed, index, prefix = args
  image, objects = draw_example(seed, index)
  name = f'{prefix}_{index:06d}'
  return name, {
      'image': encode_jpeg(image),
      'image/filename': name + '.jpg',
      'image/id': index,
      'objects': objects,
  }
