"""Base configuration: SSD300 on PASCAL VOC 07+12 as in the paper.

Every other config imports this one and overrides a few keys. Override any key on
the command line with `--config.<group>.<key>=<value>`.
"""

import ml_collections

from ssd_jax.classes import VOC_CLASSES


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  # --- Model -----------------------------------------------------------------------------
  config.model = ml_collections.ConfigDict()
  config.model.arch = 'ssd300'  # 'ssd300' or 'ssd512': which extra layers follow VGG16.
  config.model.input_size = 300  # Square input side in pixels.
  config.model.width = 1.0  # Channel multiplier for every conv (VGG16 and extras); 1.0 = paper.
  # Source feature maps for the heads, in prior order. None = all of the arch's maps
  # (ssd300: conv4_3, fc7, conv8_2 .. conv11_2). Small input sizes use a prefix.
  config.model.num_sources = ml_collections.config_dict.placeholder(int)
  # How many of the finest of those maps predict nothing (the paper's Table 3): the heads use
  # maps skip_sources .. num_sources - 1. Per-map anchor keys still list every map (the
  # skipped ones' entries are unused); the scale rule spreads its sizes over the used maps.
  config.model.skip_sources = 0
  # The base: 3x3 convs and channels per block conv1 .. conv5, and conv6/conv7 channels (all
  # times `width`). VGG16's; other values give a VGG-style base of another depth and channel
  # profile (converted VGG16 weights fit only VGG16's).
  config.model.vgg_convs = (2, 2, 3, 3, 3)
  config.model.vgg_channels = (64, 128, 256, 512, 512)
  config.model.fc_channels = 1024
  # Also predict from block conv3's last conv (stride 4, L2-normalized like conv4_3): a finer
  # first source map for small objects, counted by num_sources / skip_sources and the per-map
  # anchor keys like any other.
  config.model.conv3_source = False
  config.model.dtype = 'float32'  # Compute dtype: 'float32' or 'bfloat16' (params stay fp32).
  config.model.l2norm_scale = 20.0  # Initial per-channel scale of the L2Norm on conv4_3.
  # None = the paper (no normalization); 'group' (GroupNorm) or 'batch' (BatchNorm) after
  # every base/extra conv, for training from scratch.
  config.model.norm = ml_collections.config_dict.placeholder(str)

  # --- Default boxes (priors) -------------------------------------------------------------
  config.anchors = ml_collections.ConfigDict()
  # Box sizes in input pixels per source map (Caffe SSD300 VOC values). Set both to None
  # to use the paper's linear rule from s_min/s_max instead.
  config.anchors.min_sizes = (30, 60, 111, 162, 213, 264)
  config.anchors.max_sizes = (60, 111, 162, 213, 264, 315)
  config.anchors.s_min = 0.2  # Paper's scale rule (used only when min_sizes is None);
  config.anchors.s_max = 0.9
  config.anchors.first_scale = 0.1  # The rule's special scale for the first map (conv4_3).
  # Stride in input pixels between box centres per map; None = input_size / map size.
  config.anchors.steps = (8, 16, 32, 64, 100, 300)
  # Extra aspect ratios per map (1 is always present; each r also gives 1/r when flip).
  config.anchors.aspect_ratios = ((2,), (2, 3), (2, 3), (2, 3), (2,), (2,))
  config.anchors.flip = True
  # The paper's extra square box of side sqrt(min_size * max_size) on every map (its s'_k).
  config.anchors.extra_scale = True
  # More scales on a map (the paper's Table 3 keeps the box count when it removes source
  # maps by stacking their scales on the remaining ones). None, or one entry per source map
  # like aspect_ratios: a tuple of extra scales (min_size, max_size or None, aspect_ratios),
  # sizes in input pixels. Each adds, after the map's own boxes, a square of side min_size,
  # the square of side sqrt(min_size * max_size) unless max_size is None (extra_scale is for
  # the map's own scale only), and its aspect ratios (each r also 1/r when flip). E.g.
  # ((), ((11, 16, (2,)), (16, 22, (2,))), (), ...): 8 more boxes per cell on map 1.
  config.anchors.stacked_scales = ml_collections.config_dict.placeholder(tuple)
  config.anchors.clip = False  # Clip priors to [0, 1] (the paper's Caffe models do not).
  config.anchors.offset = 0.5  # Box centre offset within a cell, in cells.
  # Cap each box's height and width at the image size before clipping (torchvision's
  # DefaultBoxGenerator(clip=True)); the paper's Caffe models do not.
  config.anchors.clip_sizes = False

  # --- Matching and loss ------------------------------------------------------------------
  config.loss = ml_collections.ConfigDict()
  config.loss.iou_threshold = 0.5  # Priors with IoU >= this with a ground truth are positive.
  config.loss.neg_pos_ratio = 3  # Hard negatives kept per positive.
  config.loss.variances = (0.1, 0.1, 0.2, 0.2)  # Box coding variances (centre, size).
  config.loss.loc_weight = 1.0  # Alpha in L = (L_conf + alpha * L_loc) / N.

  # --- Input ------------------------------------------------------------------------------
  config.input = ml_collections.ConfigDict()
  # 'shapes' (embedded synthetic), 'voc', 'coco', 'voc_folder', 'coco_folder', or
  # 'synthetic': random images and boxes in memory, for throughput only (no TensorFlow;
  # ssd_jax/data/synthetic.py).
  config.input.dataset = 'voc'
  config.input.data_dir = ml_collections.config_dict.placeholder(str)  # tfds data dir.
  config.input.folder = ml_collections.config_dict.placeholder(str)  # For *_folder datasets.
  # The object classes; label i is class_names[i - 1], 0 is background. The heads predict
  # len(class_names) + 1 scores (the model's class count is this list's length).
  config.input.class_names = VOC_CLASSES
  # COCO category id of each label 1..C, or None: the labels are the data set's (class_names
  # must then be its names). Set, evaluation on coco / coco_folder data maps the detections to
  # the data set's labels by id; labels without a category there are dropped
  # (configs/torchvision_ssd300.py: ids 1..90, 'N/A' unused; ssd_jax/evaluation/label_spaces.py).
  config.input.category_ids = ml_collections.config_dict.placeholder(tuple)
  # Split names; None = the data set's default (docs/data.md): voc 07+12 trainval / 07 test.
  config.input.train_split = ml_collections.config_dict.placeholder(str)
  config.input.eval_split = ml_collections.config_dict.placeholder(str)
  config.input.on_error = 'skip'  # Folder data sets: 'skip' bad files (counted) or 'raise'.
  # The embedded 'shapes' set: images generated once per (num_train, num_validation, seed)
  # and cached by tfds under data_dir.
  config.input.shapes_num_train = 5000
  config.input.shapes_num_validation = 500
  config.input.shapes_seed = 0
  # The 'synthetic' source: distinct random batches made at start-up and cycled (its eval
  # split has as many eval batches).
  config.input.synthetic_batches = 4
  config.input.max_boxes = 64  # Ground truth per image is padded (and masked) to this.
  config.input.batch_size = 32  # Global batch size, split over all devices and hosts.
  config.input.eval_batch_size = 32  # Global, like batch_size.
  # Ground truth per eval image; None = max_boxes. (Training never needs more than max_boxes
  # targets; evaluation from batches should see every box.)
  config.input.eval_max_boxes = ml_collections.config_dict.placeholder(int)
  config.input.shuffle_buffer = 2048
  config.input.seed = 0
  # Pixel normalization: (image - mean) / std, RGB, 0..255 input.
  config.input.mean_rgb = (123.0, 117.0, 104.0)
  config.input.std_rgb = (1.0, 1.0, 1.0)
  # Training augmentation (the paper's recipe); each piece can be switched off.
  config.input.augment = ml_collections.ConfigDict()
  config.input.augment.photometric = True
  config.input.augment.expand = True
  config.input.augment.max_expand_ratio = 4.0
  config.input.augment.random_crop = True
  config.input.augment.flip = True

  # --- Optimization -----------------------------------------------------------------------
  config.optimizer = ml_collections.ConfigDict()
  config.optimizer.name = 'sgd'  # 'sgd' (momentum) or 'adamw'.
  config.optimizer.learning_rate = 1e-3
  config.optimizer.momentum = 0.9
  config.optimizer.weight_decay = 5e-4
  config.optimizer.warmup_steps = 500
  config.optimizer.boundaries = (80_000, 100_000)  # Steps where lr is multiplied by 0.1.
  config.optimizer.schedule = 'piecewise'  # 'piecewise', 'cosine' or 'linear' (to 0).
  config.optimizer.grad_clip_norm = ml_collections.config_dict.placeholder(float)
  # Evaluate (and detect, init_from) with an exponential moving average of the weights:
  # ema = d * ema + (1 - d) * params after every step, d = min(ema_decay, (1 + step) / (10 +
  # step)) so the early average forgets the random init. None = off. E.g. 0.9998. A run
  # cannot switch it on or off on resume (the checkpoint holds the average or not).
  config.optimizer.ema_decay = ml_collections.config_dict.placeholder(float)
  config.num_train_steps = 120_000

  # --- Postprocessing and evaluation ------------------------------------------------------
  config.eval = ml_collections.ConfigDict()
  config.eval.metric = 'voc07'  # 'voc07' (11-point), 'voc' (VOC2010+ area) or 'coco'.
  config.eval.score_threshold = 0.01  # Per-class confidence threshold before NMS.
  config.eval.pre_nms_top_k = 400  # Candidates per class entering NMS.
  config.eval.nms_iou = 0.45
  config.eval.max_detections = 200  # Kept per image after NMS.
  # Clip decoded boxes to the image before NMS (torchvision does; Caffe SSD does not).
  config.eval.clip_boxes = False
  # Upper bound on the decoded log-size offsets (offset * variance) before exp; None = none.
  # torchvision's box coder clamps at log(1000 / 16).
  config.eval.max_size_offset = ml_collections.config_dict.placeholder(float)
  # Multi-scale testing: ((size, first_map, end_map), ...). Each entry runs the model on the
  # image resized to size x size and keeps the detections of source maps first_map ..
  # end_map - 1 (default boxes keep their sizes in pixels); all scales' detections go through
  # one NMS. E.g. ((224, 0, 2), (128, 0, 6)): small objects also at 224 px. None = the model's
  # input size only. Maps are counted like the per-map anchor keys (model.skip_sources'
  # skipped maps included); a skipped map in a range stands for the finest predicting map.
  config.eval.scales = ml_collections.config_dict.placeholder(tuple)
  config.eval.every_steps = 5_000
  config.eval.num_images = ml_collections.config_dict.placeholder(int)  # None = whole split.
  config.eval_step = ml_collections.config_dict.placeholder(int)  # --mode=eval: which step.

  # --- Loop, checkpoints, logging ---------------------------------------------------------
  config.log_every_steps = 50
  config.checkpoint_every_steps = 5_000
  config.keep_checkpoints = 3
  # Pretrained weights to start from (a fresh run only): a workdir, its checkpoints/ folder
  # or a step folder, e.g. the output of `python -m ssd_jax.convert` (docs/weights.md).
  config.init_from = ml_collections.config_dict.placeholder(str)
  # Which parts of the model init_from loads: 'base' (VGG16 conv1_1 .. conv7), 'base+extras'
  # (also conv8 .. conv12 and the L2Norm scales), 'all_but_class_head' (also the box head) or
  # 'all' (also the class head). Within those parts every array whose path and shape match is
  # loaded; a class head of another class count is re-initialised, and every re-initialised
  # array is printed with the reason.
  config.init_parts = 'all'
  config.seed = 0
  return config
