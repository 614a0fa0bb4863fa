r"""CPU milliseconds per image of JPEG decode (500x375) and bilinear resize to 300x300, one thread.

  python -m experiments.input_ops_cost

The two fixed per-image operations of the SSD300 input pipeline, timed alone (64 generated
VOC-sized JPEGs, 5 passes, eager tf.function per image); docs/results/host_input.md.
"""
import io, time
import numpy as np
from PIL import Image
import tensorflow as tf
from ssd_jax.data import shapes_draw
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
blobs = []
for i in range(64):
  image, _ = shapes_draw.draw_example(0, i)
  buf = io.BytesIO()
  Image.fromarray(image).resize((500, 375), Image.BILINEAR).save(buf, 'JPEG', quality=90)
  blobs.append(buf.getvalue())
decode = tf.function(lambda b: tf.io.decode_jpeg(b, channels=3))
resize = tf.function(lambda x: tf.image.resize(tf.cast(x, tf.float32), [300, 300], method='bilinear'))
images = [decode(b) for b in blobs]
resize(images[0])
for name, fn, args in (('decode', decode, blobs), ('resize', resize, images)):
  cpu = time.process_time()
  for _ in range(5):
    for a in args:
      fn(a).numpy()
  cpu = time.process_time() - cpu
  print(f'{name}: {1e3 * cpu / (5 * len(args)):.2f} ms CPU per image', flush=True)
