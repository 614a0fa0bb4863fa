r"""torchvision's ssd300_vgg16 (random weights) timed like `experiments.benchmark`.

Runs in its own environment (torch + torchvision; never a dependency of ssd_jax):

  /path/to/torchenv/bin/python experiments/torchvision_benchmark.py [--batch_size=8] \
      [--iters=5] [--num_classes=21] [--output=torchvision.json]
  ... --serve   # one figure per stdin line '<name> <calls>', JSON seconds per call on stdout
  ... --trained_like   # heads scaled as a trained model's, smooth images (export_benchmark)

Figures (images/s, median over `iters` calls after two warm-up calls):
  train_step     model.train(); losses = model(images, targets); backward; SGD step;
  inference      model.eval() under no_grad on a list of `batch_size` images (includes the
                 transform, the forward and postprocess_detections with NMS);
  inference_bs1  the same on one image (and latency_ms_bs1);
  forward        transform + backbone + head; postprocess: postprocess_detections alone;
  matcher_loss   SSD.forward's per-image matching loop (box_iou + proposal_matcher) and
                 compute_loss at batch 32 on random head outputs, no backward (as ours).
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torchvision
from torchvision.ops import boxes as box_ops

MATCHER_LOSS_BATCH = 32


def time_calls(fn, iters, warmup=2):
  """experiments.benchmark.time_calls, copied: this script runs in torchvision's environment,
  where the project (and JAX) cannot be imported."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(iters):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def random_targets(gen, batch_size, size, num_classes):
  """1..7 random boxes per image (xyxy pixels), like ssd_jax.data.synthetic.random_batch."""
  targets = []
  for _ in range(batch_size):
    n = int(torch.randint(1, 8, (1,), generator=gen))
    low = torch.rand(n, 2, generator=gen) * 0.7
    high = low + 0.05 + torch.rand(n, 2, generator=gen) * 0.25
    boxes = torch.cat([low, high], 1).clamp(max=1.0) * size
    targets.append({'boxes': boxes,
                    'labels': torch.randint(1, num_classes, (n,), generator=gen)})
  return targets


def scale_heads(model, gen):
  """experiments.export_benchmark.random_params on torchvision's model: every conv He-normal
  (std sqrt(2 / fan_in)), biases N(0, 0.1), the box head x0.02 and the class head x0.3 (box
  offsets of order 1, logits of a few units, as a trained model has them), so that NMS sees
  the candidate counts of a trained model on both sides."""
  with torch.no_grad():
    for name, module in model.named_modules():
      if isinstance(module, torch.nn.Conv2d):
        factor = (0.02 if 'regression_head' in name else
                  0.3 if 'classification_head' in name else 1.0)
        fan_in = module.weight[0].numel()
        module.weight.copy_(torch.randn(module.weight.shape, generator=gen) *
                            (2 / fan_in) ** 0.5 * factor)
        if module.bias is not None:
          module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1 * factor)


def smooth_images(batch_size, size):
  """experiments.export_benchmark's images: a gradient per channel, uint8, as floats in [0, 1]."""
  y, x = torch.meshgrid(torch.arange(size) / size, torch.arange(size) / size, indexing='ij')
  image = torch.stack([200 * x, 150 * y + 50, 120 + 80 * x * y]).to(torch.uint8)
  return [image.float() / 255 for _ in range(batch_size)]


class Steps:
  """The calls being timed, on one model and synthetic inputs."""

  def __init__(self, batch_size, num_classes, size=300, trained_like=False):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    self.model = torchvision.models.detection.ssd300_vgg16(
        weights=None, weights_backbone=None, num_classes=num_classes)
    self.images = [torch.rand(3, size, size, generator=gen) for _ in range(batch_size)]
    if trained_like:
      scale_heads(self.model, gen)
      self.images = smooth_images(batch_size, size)
    self.targets = random_targets(gen, batch_size, size, num_classes)
    self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9,
                                     weight_decay=5e-4)
    model = self.model
    model.eval()
    with torch.no_grad():
      images, _ = model.transform(self.images)
      features = list(model.backbone(images.tensors).values())
      self.head_outputs = model.head(features)
      self.anchors = model.anchor_generator(images, features)
      self.image_sizes = images.image_sizes
      num_priors = self.anchors[0].shape[0]
      self.m_outputs = {
          'bbox_regression': torch.randn(MATCHER_LOSS_BATCH, num_priors, 4, generator=gen) * .5,
          'cls_logits': torch.randn(MATCHER_LOSS_BATCH, num_priors, num_classes, generator=gen)}
    self.m_anchors = [self.anchors[0]] * MATCHER_LOSS_BATCH
    self.m_targets = random_targets(gen, MATCHER_LOSS_BATCH, size, num_classes)
    self.batch_size = batch_size

  def train_step(self):
    self.model.train()
    losses = self.model(self.images, self.targets)
    loss = sum(losses.values())
    self.optimizer.zero_grad()
    loss.backward()
    self.optimizer.step()

  @torch.no_grad()
  def inference(self, images):
    self.model.eval()
    return self.model(images)

  @torch.no_grad()
  def forward(self):
    model = self.model
    model.eval()
    images, _ = model.transform(self.images)
    return model.head(list(model.backbone(images.tensors).values()))

  @torch.no_grad()
  def postprocess(self):
    return self.model.postprocess_detections(self.head_outputs, self.anchors, self.image_sizes)

  @torch.no_grad()
  def matcher_loss(self):
    """The matching loop of SSD.forward, then compute_loss."""
    model = self.model
    matched_idxs = []
    for anchors_per_image, targets_per_image in zip(self.m_anchors, self.m_targets):
      quality = box_ops.box_iou(targets_per_image['boxes'], anchors_per_image)
      matched_idxs.append(model.proposal_matcher(quality))
    return model.compute_loss(self.m_targets, self.m_outputs, self.m_anchors, matched_idxs)

  def calls(self):
    """{name: (call, images per call)}."""
    return {
        'forward': (self.forward, self.batch_size),
        'postprocess': (self.postprocess, self.batch_size),
        'inference': (lambda: self.inference(self.images), self.batch_size),
        'inference_bs1': (lambda: self.inference(self.images[:1]), 1),
        'matcher_loss': (self.matcher_loss, MATCHER_LOSS_BATCH),
        'train_step': (self.train_step, self.batch_size),
    }


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--batch_size', type=int, default=8)
  parser.add_argument('--iters', type=int, default=5)
  parser.add_argument('--num_classes', type=int, default=21, help='Background included.')
  parser.add_argument('--output', default='torchvision.json')
  parser.add_argument('--serve', action='store_true')
  parser.add_argument('--trained_like', action='store_true',
                      help='Heads scaled and smooth images, as experiments.export_benchmark.')
  args = parser.parse_args()
  steps = Steps(args.batch_size, args.num_classes, trained_like=args.trained_like)
  calls = steps.calls()
  if args.serve:  # '<name> <calls>' -> {"name": ..., "seconds": [per call]}
    print(json.dumps({'ready': True, 'threads': torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
      name, n = line.split()
      call = calls[name][0]
      times = []
      for _ in range(int(n)):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
      print(json.dumps({'name': name, 'seconds': times}), flush=True)
    return
  seconds = {name: time_calls(call, args.iters) for name, (call, _) in calls.items()}
  result = {
      'images_per_s': {name: calls[name][1] / s for name, s in seconds.items()},
      'seconds_per_call': seconds, 'latency_ms_bs1': seconds['inference_bs1'] * 1e3,
      'batch_size': args.batch_size, 'matcher_loss_batch_size': MATCHER_LOSS_BATCH,
      'torch': torch.__version__, 'torchvision': torchvision.__version__,
      'threads': torch.get_num_threads(), 'load_average': os.getloadavg(),
  }
  for name, rate in result['images_per_s'].items():
    print(f'  {name:<14} {rate:9.2f} images/s  {seconds[name] * 1e3:9.1f} ms/call')
  print(f'  latency (batch 1, with NMS) {result["latency_ms_bs1"]:.1f} ms')
  with open(args.output, 'w') as f:
    json.dump(result, f, indent=2)
  print(f'wrote {args.output}')


if __name__ == '__main__':
  main()
