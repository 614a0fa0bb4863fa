"""What an evaluation scored: image ids that cross processes, a fingerprint of the ground truth.

- `encode_ids` / `decode_ids`: eval batches are gathered over processes
  (`multihost_utils.process_allgather`), which moves numeric arrays only; image ids (COCO's
  ints, or file stems as bytes) travel as int64 or as fixed rows of 64 bytes.
- `Fingerprint`: sha256 over the ground truth of every scored image, sorted by image id: equal
  for the same images and boxes in any batch order, batch size or process count; different
  when an image, a box, a label or a difficult/crowd flag differs. Evaluation files record it
  (`ssd_jax.run_files`), so a result names the data it was computed on.
"""

import hashlib

import numpy as np

ID_BYTES = 64  # File stems longer than this are cut (in the gathered copy only).


def encode_ids(ids: np.ndarray) -> np.ndarray:
  """Image ids (int or bytes) [N] -> int64 [N], or uint8 [N, ID_BYTES] for bytes."""
  ids = np.asarray(ids)
  if ids.dtype.kind in 'iu':
    return ids.astype(np.int64)
  return np.asarray(ids, dtype=f'S{ID_BYTES}').view(np.uint8).reshape(len(ids), ID_BYTES)


def decode_ids(ids: np.ndarray) -> np.ndarray:
  """The inverse of `encode_ids`: int64 [N] stays, uint8 [N, ID_BYTES] -> bytes [N]."""
  ids = np.asarray(ids)
  if ids.ndim == 1:
    return ids
  return np.ascontiguousarray(ids).view(f'S{ID_BYTES}').reshape(-1)


def _id_bytes(image_id) -> bytes:
  if isinstance(image_id, bytes):
    return image_id
  if isinstance(image_id, str):
    return image_id.encode()
  return str(int(image_id)).encode()


class Fingerprint:
  """Accumulates eval batches; `hexdigest()` is the ground truth's sha256, `num_images` the
  number of images seen.

  A batch is what the evaluators get: `image_id` [B], `boxes` [B, M, 4], `labels` [B, M]
  (0 = padding), `difficult` [B, M], `crowd` [B, M], optionally `example_mask` [B] (False =
  padding image).
  """

  def __init__(self):
    self._images = []  # (id bytes, sha256 of the image's ground truth)

  def add_batch(self, batch) -> None:
    ids = np.asarray(batch['image_id']).tolist()
    keep = np.asarray(batch.get('example_mask', np.ones(len(ids), bool)), bool)
    labels = np.asarray(batch['labels'])
    boxes = np.asarray(batch['boxes'], np.float32)
    difficult = np.asarray(batch['difficult'], bool)
    crowd = np.asarray(batch['crowd'], bool)
    for i in np.flatnonzero(keep):
      real = labels[i] > 0
      digest = hashlib.sha256()
      for part in (labels[i][real].astype('<i8'), boxes[i][real].astype('<f4'),
                   difficult[i][real], crowd[i][real]):
        digest.update(np.ascontiguousarray(part).tobytes())
      self._images.append((_id_bytes(ids[i]), digest.digest()))

  @property
  def num_images(self) -> int:
    return len(self._images)

  def hexdigest(self) -> str:
    digest = hashlib.sha256()
    for image_id, image_digest in sorted(self._images):
      digest.update(len(image_id).to_bytes(4, 'little') + image_id + image_digest)
    return digest.hexdigest()
