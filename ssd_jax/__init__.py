"""ssd_jax: the SSD object detector (Liu et al. 2016) in JAX/Flax."""

__version__ = '0.1.0'
