"""The DeepLabV3+ model factory: keras-cv (default) or keras-hub, two backbones.

Every model built here has one contract, whatever the library, backbone or dtype policy:

- input: float32 images in 0..255, shape (B, image_size, image_size, 3); the backbone's own
  preprocessing is inside the model (keras-cv: ``include_rescaling``, x/255; keras-hub: an
  ``ImageConverter`` layer with the preset's scale/offset, else ImageNet mean/std);
- output: float32 **logits** (no softmax) of shape (B, image_size, image_size, num_classes),
  also under the ``mixed_float16`` policy: the classifier and the final upsampling run in
  float32.

keras-cv's own DeepLabV3+ head ends in a softmax; a custom head replaces it entirely (its 4x
upsampling included), so ours restores the upsampling, on the logits (19 channels are
cheaper to upsample than 256 features; this is also what the reference DeepLab does).
keras-hub's ``DeepLabV3Backbone`` upsamples its 256 features to full size itself; our 1x1
float32 classifier follows it (about 2.5 GFLOPs more per 512x512 image).

The decoder reads the backbone at stride 4 (P2) and 32 (P5); layers after P5 (ResNet's
``post_bn``, MobileNetV3's 960-channel 1x1 conv) stay in the model, so presets load, but get
no gradient: Keras's one-time "Gradients do not exist" warning at ``fit`` is expected.
To resume a mixed-precision model with its optimizer state, set the policy before
``keras.saving.load_model``.

``image_size`` must be a multiple of 32 (the decoder joins stride-4 and stride-32 features).

>>> from celebseg_utils.models.deeplab import build_model
>>> m = build_model(backbone="mobilenet_v3_large", image_size=64)
>>> tuple(m.output.shape), m.output.dtype
((None, 64, 64, 19), 'float32')
"""

from __future__ import annotations

import keras

from celebseg_utils.models import backbones as bb
from celebseg_utils.errors import CelebsegError
from celebseg_utils.labels import NUM_CLASSES


def build_model(num_classes: int = NUM_CLASSES, backbone: str = "resnet50_v2",
                image_size: int = 512, library: str = "keras_cv", weights=None,
                bn_momentum: float | None = 0.99, aspp_rates=None, aspp: str = "keras_cv",
                aspp_channels: int = 256, decoder_channels: int = 256) -> keras.Model:
    """DeepLabV3+ returning float32 logits (B, H, W, num_classes) for 0..255 images.

    ``weights``: None (random init), "imagenet" (the library's pretrained backbone; needs the
    network the first time and otherwise raises CelebsegError saying how to use a local
    preset folder), or a local preset folder (written by
    ``backbones.save_backbone_preset``, or a keras-hub ``save_to_preset``), which works
    offline; its architecture replaces ``backbone``'s. The decoder and classifier always
    start from random init.

    ``bn_momentum`` replaces the momentum of every BatchNormalization layer (None keeps the
    library's). keras-cv's MobileNetV3 uses 0.999, made for ImageNet's 100k+ steps: after a
    few hundred steps its moving statistics are still mostly the initial ones, so inference
    (validation, evaluation) sees a different network than training did. 0.99 (Keras's
    default) suits fine-tuning; short runs from scratch (the CPU demo) want 0.9.

    ``aspp_rates``: the dilation rates of the ASPP's three 3x3 branches (None: DeepLab's
    (6, 12, 18), made for a 33x33 stride-16 map of a 513 px input). On a small map most
    taps of a large rate fall in the padding, so the branch is a costly 1x1 conv: at 128 px
    the stride-32 map is 4x4, and (6, 12, 18) made the ASPP's forward and backward pass
    17-34x slower on this project's CPU than (1, 2, 3), for a batch of 8
    (``scripts/bench_aspp.py``).

    ``aspp`` (keras-cv library only): "keras_cv" (keras-cv's ``SpatialPyramidPooling``, which
    keeps XLA off), "standard" (the same branches from :mod:`~celebseg_utils.models.aspp`,
    which XLA compiles) or "separable" (DeepLabV3+'s atrous separable convolutions in the
    3x3 branches). ``aspp_channels``: the ASPP's branch and output channels;
    ``decoder_channels``: the decoder's 1x1 convolution after the stride-4 skip is joined
    (DeepLab: 256 for both).

    >>> import numpy as np
    >>> m = build_model(backbone="mobilenet_v3_large", image_size=64, library="keras_hub")
    >>> m(np.zeros((1, 64, 64, 3), "float32")).shape
    TensorShape([1, 64, 64, 19])
    """
    bb.check_names(backbone, library)
    if image_size % 32 or image_size < 32:
        raise CelebsegError(f"image_size={image_size} must be a positive multiple of 32 "
                            f"(DeepLabV3+ joins stride-4 and stride-32 features)")
    rates = [6, 12, 18] if aspp_rates is None else [int(r) for r in aspp_rates]
    if len(rates) != 3 or min(rates) < 1:
        raise CelebsegError(f"aspp_rates={aspp_rates}: give three dilation rates >= 1, e.g. [6, 12, 18]")
    from celebseg_utils.models.aspp import ASPP_KINDS

    if aspp not in ASPP_KINDS:
        raise CelebsegError(f"aspp={aspp!r}: use one of {', '.join(ASPP_KINDS)}")
    if int(aspp_channels) < 1 or int(decoder_channels) < 1:
        raise CelebsegError(f"aspp_channels={aspp_channels} and decoder_channels="
                            f"{decoder_channels} must be positive")
    if library != "keras_cv" and (aspp, aspp_channels, decoder_channels) != ("keras_cv", 256, 256):
        raise CelebsegError(f"aspp, aspp_channels and decoder_channels choose keras-cv's head; "
                            f"library={library} builds keras-hub's DeepLabV3 with its own")
    encoder = bb.build_backbone(backbone, library, image_size, weights)
    name = f"deeplabv3plus_{backbone}_{library}"
    if library == "keras_cv":
        model = _keras_cv_model(encoder, num_classes, name, rates, aspp, int(aspp_channels),
                                int(decoder_channels))
    else:
        model = _keras_hub_model(encoder, num_classes, image_size, name, weights, backbone, rates)
    if bn_momentum is not None:
        set_bn_momentum(model, bn_momentum)
    return model


def set_bn_momentum(model: keras.Model, momentum: float) -> int:
    """Set the moving-average momentum of every BatchNormalization layer; returns how many.

    >>> m = build_model(backbone="mobilenet_v3_large", image_size=64, bn_momentum=None)
    >>> set_bn_momentum(m, 0.9) > 10
    True
    """
    if not 0.0 <= momentum < 1.0:
        raise CelebsegError(f"bn_momentum={momentum} must be in [0, 1)")
    layers = [layer for layer in _all_layers(model)
              if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in layers:
        layer.momentum = float(momentum)
    return len(layers)


def _all_layers(layer):
    for sub in getattr(layer, "_flatten_layers", lambda **_: [])(include_self=False, recursive=True):
        yield sub


def _keras_cv_model(encoder, num_classes, name, rates, aspp_kind="keras_cv", aspp_channels=256,
                    decoder_channels=256):
    from celebseg_utils.models.aspp import AtrousSpatialPyramidPooling

    keras_cv = bb.import_keras_cv()

    head = keras.Sequential([
        keras.layers.Conv2D(decoder_channels, 1, padding="same", use_bias=False, name="segmentation_head_conv"),
        keras.layers.BatchNormalization(name="segmentation_head_norm"),
        keras.layers.ReLU(name="segmentation_head_relu"),
        # float32 from here on: logits must not overflow or lose precision in float16.
        keras.layers.Conv2D(num_classes, 1, name="logits", dtype="float32"),
        keras.layers.UpSampling2D(4, interpolation="bilinear", name="logits_upsampling",
                                  dtype="float32"),
    ], name="segmentation_head")
    if aspp_kind == "keras_cv":
        aspp = keras_cv.layers.SpatialPyramidPooling(dilation_rates=rates,
                                                     num_channels=aspp_channels)
    else:
        aspp = AtrousSpatialPyramidPooling(rates, aspp_channels, separable=aspp_kind == "separable",
                                           name="spatial_pyramid_pooling")
    return keras_cv.models.DeepLabV3Plus(backbone=encoder, num_classes=num_classes,
                                         spatial_pyramid_pooling=aspp,
                                         segmentation_head=head, name=name)


def _keras_hub_model(encoder, num_classes, image_size, name, weights, backbone, rates):
    import keras_hub

    converter = _hub_image_converter(weights, backbone)
    deeplab = keras_hub.models.DeepLabV3Backbone(
        image_encoder=encoder, spatial_pyramid_pooling_key="P5", upsampling_size=8,
        dilation_rates=rates, low_level_feature_key="P2", projection_filters=48,
        image_shape=(image_size, image_size, 3))
    inputs = keras.Input((image_size, image_size, 3), name="images")
    features = deeplab(converter(inputs))
    logits = keras.layers.Conv2D(num_classes, 1, name="logits", dtype="float32")(features)
    return keras.Model(inputs, logits, name=name)


def _hub_image_converter(weights, backbone):
    """keras-hub's normalisation layer: from the preset when it has one, else ImageNet's."""
    import keras_hub

    if weights is not None:
        preset = (str(weights) if bb.is_preset_dir(weights)
                  else bb.IMAGENET_PRESETS[("keras_hub", backbone)])
        try:
            found = keras_hub.layers.ImageConverter.from_preset(preset, image_size=None)
        except Exception:  # noqa: BLE001 - a backbone-only preset has no converter
            found = None
        if found is not None:
            return keras_hub.layers.ImageConverter(image_size=None, scale=found.scale,
                                                   offset=found.offset, name="image_converter")
    scale = [1.0 / (255.0 * s) for s in bb.IMAGENET_STD]
    offset = [-m / s for m, s in zip(bb.IMAGENET_MEAN, bb.IMAGENET_STD)]
    return keras_hub.layers.ImageConverter(image_size=None, scale=scale, offset=offset,
                                           name="image_converter")

