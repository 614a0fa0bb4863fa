"""Data: tfds sources, SSD augmentation and batching (see docs/data.md).

Kept import-free: the shapes generator's worker processes import `ssd_jax.data.shapes_draw`
without TensorFlow. Use `from ssd_jax.data import input_pipeline`.
"""
