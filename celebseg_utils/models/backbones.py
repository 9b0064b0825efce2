"""Feature-extractor backbones for DeepLabV3+, built offline from explicit arguments.

Each backbone exists in two libraries: keras-cv (the default DeepLabV3+ of the project) and
keras-hub (its maintained successor). The architectures are spelled out here with the same
arguments the libraries' presets use, so a randomly initialised model builds without a hub
download; ``weights="imagenet"`` goes through the library's ``from_preset`` (network) and a
local preset folder (``backbone.save_to_preset(dir)``) loads offline.

Both DeepLabV3+ variants need two pyramid levels: ``P2`` (stride 4, the decoder's low-level
features) and ``P5`` (stride 32, the ASPP input).

>>> from celebseg_utils.models.backbones import BACKBONES, build_backbone
>>> sorted(BACKBONES)
['mobilenet_v3_large', 'resnet50_v2']
>>> bb = build_backbone("mobilenet_v3_large", library="keras_cv", image_size=64)
>>> sorted(bb.pyramid_level_inputs)[:2]
['P1', 'P2']
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import keras

from celebseg_utils import tf_startup
from celebseg_utils.errors import CelebsegError

#: Backbone name -> one-line description (the names ``build_model`` accepts).
BACKBONES: dict[str, str] = {
    "resnet50_v2": "ResNet50 v2 (pre-activation), ~23.6M params: the accurate default",
    "mobilenet_v3_large": "MobileNetV3-Large, ~3M params: CPU and edge use",
}
LIBRARIES = ("keras_cv", "keras_hub")

#: Pretrained presets (need network on first use; cached by kagglehub afterwards).
IMAGENET_PRESETS: dict[tuple[str, str], str] = {
    ("keras_cv", "resnet50_v2"): "resnet50_v2_imagenet",
    ("keras_cv", "mobilenet_v3_large"): "mobilenet_v3_large_imagenet",
    ("keras_hub", "resnet50_v2"): "resnet_v2_50_imagenet",
    ("keras_hub", "mobilenet_v3_large"): "mobilenet_v3_large_100_imagenet",
}

# ImageNet mean/std on 0..1 images: the normalisation keras-hub's ResNet/MobileNet presets use.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_CV_ARGS = {
    "resnet50_v2": dict(
        stackwise_filters=[64, 128, 256, 512], stackwise_blocks=[3, 4, 6, 3],
        stackwise_strides=[1, 2, 2, 2], block_type="block",
    ),
    "mobilenet_v3_large": dict(
        stackwise_expansion=[1, 4, 3, 3, 3, 3, 6, 2.5, 2.3, 2.3, 6, 6, 6, 6, 6],
        stackwise_filters=[16, 24, 24, 40, 40, 40, 80, 80, 80, 80, 112, 112, 160, 160, 160],
        stackwise_kernel_size=[3, 3, 3, 5, 5, 5, 3, 3, 3, 3, 3, 3, 5, 5, 5],
        stackwise_stride=[1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1],
        stackwise_se_ratio=[None, None, None, 0.25, 0.25, 0.25, None, None, None, None,
                            0.25, 0.25, 0.25, 0.25, 0.25],
        stackwise_activation=["relu"] * 6 + ["hard_swish"] * 9,
    ),
}

# MobileNetV3-Large in keras-hub's (timm-derived) form: expansions are absolute channels.
_HUB_MOBILENET_V3_LARGE = dict(
    input_num_filters=16, input_activation="hard_swish", output_activation="hard_swish",
    depthwise_filters=16, depthwise_stride=1, depthwise_residual=True, squeeze_and_excite=None,
    stackwise_num_blocks=[2, 3, 4, 2, 3],
    stackwise_expansion=[[64, 72], [72, 120, 120], [240, 200, 184, 184], [480, 672],
                         [672, 960, 960]],
    stackwise_num_filters=[[24, 24], [40, 40, 40], [80, 80, 80, 80], [112, 112],
                           [160, 160, 160]],
    stackwise_kernel_size=[[3, 3], [5, 5, 5], [3, 3, 3, 3], [3, 3], [5, 5, 5]],
    stackwise_num_strides=[[2, 1], [2, 1, 1], [2, 1, 1, 1], [1, 1], [2, 1, 1]],
    stackwise_se_ratio=[[None, None], [0.25] * 3, [None] * 4, [0.25] * 2, [0.25] * 3],
    stackwise_activation=[["relu"] * 2, ["relu"] * 3, ["hard_swish"] * 4,
                          ["hard_swish"] * 2, ["hard_swish"] * 3],
    stackwise_padding=[[1, 1], [2, 2, 2], [1, 1, 1, 1], [1, 1], [2, 2, 2]],
    output_num_filters=1280, last_layer_filter=960,
)


def check_names(backbone: str, library: str) -> None:
    """Raise CelebsegError unless ``backbone`` and ``library`` are known.

    >>> check_names("resnet50_v2", "keras_cv")
    """
    if library not in LIBRARIES:
        raise CelebsegError(f"unknown library {library!r}: use one of {', '.join(LIBRARIES)}")
    if backbone not in BACKBONES:
        raise CelebsegError(f"unknown backbone {backbone!r}: use one of {', '.join(BACKBONES)}")


@keras.saving.register_keras_serializable(package="celebseg")
class PyramidEncoder(keras.Model):
    """A backbone plus the ``pyramid_outputs`` dict keras-hub's DeepLabV3 needs.

    keras-hub's MobileNet backbone does not publish its pyramid levels; this wraps it and
    exposes the named layers' outputs as levels (``{"P2": layer_name, ...}``), and it
    serialises (the backbone and the names) so saved models reload.

    >>> import keras
    >>> inp = keras.Input((32, 32, 3)); x = keras.layers.Conv2D(4, 3, 4, name="c4")(inp)
    >>> bb = keras.Model(inp, keras.layers.Conv2D(4, 3, 8, name="c32")(x))
    >>> enc = PyramidEncoder(bb, {"P2": "c4", "P5": "c32"})
    >>> tuple(enc.pyramid_outputs["P2"].shape)
    (None, 8, 8, 4)
    """

    def __init__(self, backbone, levels: dict[str, str], **kwargs):
        outputs = {k: backbone.get_layer(name).output for k, name in levels.items()}
        super().__init__(inputs=backbone.inputs, outputs=outputs, **kwargs)
        self.backbone = backbone
        self.levels = dict(levels)
        self.pyramid_outputs = outputs

    def get_config(self):
        return {"name": self.name, "levels": self.levels,
                "backbone": keras.saving.serialize_keras_object(self.backbone)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.saving.deserialize_keras_object(config["backbone"])
        return cls(**config)


def _stride_levels(model, image_size: int) -> dict[str, str]:
    """Name of the last layer at stride 4 (P2) and at stride 32 (P5), by output shape.

    The backbone's own last layer is skipped: in MobileNetV3 it is the 960-channel
    classifier stem, and ASPP on it would cost ~6M parameters for nothing (keras-cv's P5 is
    the last 160-channel block too).
    """
    found: dict[str, str] = {}
    for layer in model.layers[:-1]:
        shape = getattr(layer.output, "shape", None)
        if shape is None or len(shape) != 4 or not shape[1]:
            continue
        stride = image_size // shape[1]
        if stride == 4:
            found["P2"] = layer.name
        elif stride == 32:
            found["P5"] = layer.name
    if set(found) != {"P2", "P5"}:
        raise CelebsegError(f"backbone {model.name} has no stride-4 and stride-32 features "
                            f"at image_size={image_size}: use a multiple of 32")
    return found


def is_preset_dir(weights) -> bool:
    """Whether ``weights`` names a local preset folder (not None, not ``"imagenet"``).

    >>> is_preset_dir("presets/resnet50"), is_preset_dir("imagenet"), is_preset_dir(None)
    (True, False, False)
    """
    return weights is not None and weights != "imagenet"


def build_backbone(backbone: str = "resnet50_v2", library: str = "keras_cv",
                   image_size: int = 512, weights=None):
    """The backbone model, randomly initialised or from a preset.

    ``weights``: None (random init), "imagenet" (the library's pretrained preset, needs the
    network once) or a local preset folder written by ``backbone.save_to_preset(dir)`` (then
    the architecture comes from the folder and ``backbone`` is ignored). For keras-hub the
    result always has ``pyramid_outputs`` (MobileNet is wrapped in :class:`PyramidEncoder`).

    >>> bb = build_backbone("resnet50_v2", library="keras_hub", image_size=64)
    >>> sorted(bb.pyramid_outputs)
    ['P2', 'P3', 'P4', 'P5']
    """
    check_names(backbone, library)
    shape = (image_size, image_size, 3)
    if weights is None:
        model = _build_random(backbone, library, shape)
    else:
        model = _load_preset(backbone, library, weights, shape)
    if library == "keras_hub" and not hasattr(model, "pyramid_outputs"):
        model = PyramidEncoder(model, _stride_levels(model, image_size))
    return model


def import_keras_cv():
    """The ``keras_cv`` module, imported where a keras-cv model is built or loaded only.

    Importing keras-cv imports tensorflow_datasets, which on Colab's protobuf logs a
    version-mismatch traceback into the user's notebook; that one report is dropped
    (:data:`celebseg_utils.tf_startup.TFDS_PROTOBUF_REPORT`), anything else still shows.
    """
    with tf_startup.without_log_records(tf_startup.TFDS_PROTOBUF_REPORT):
        import keras_cv
    return keras_cv


def uses_keras_cv(model_file) -> bool:
    """True when a saved ``.keras`` model names keras-cv classes (its config says so).

    >>> uses_keras_cv("no-such-file.keras")
    False
    """
    try:
        with zipfile.ZipFile(model_file) as archive:
            return b'"keras_cv' in archive.read("config.json")
    except (OSError, KeyError, zipfile.BadZipFile):
        return False


def _build_random(backbone, library, shape):
    if library == "keras_cv":
        keras_cv = import_keras_cv()
        cls = {"resnet50_v2": keras_cv.models.ResNetV2Backbone,
               "mobilenet_v3_large": keras_cv.models.MobileNetV3Backbone}[backbone]
        return cls(**_CV_ARGS[backbone], include_rescaling=True, input_shape=shape)
    import keras_hub

    if backbone == "resnet50_v2":
        return keras_hub.models.ResNetBackbone(
            input_conv_filters=[64], input_conv_kernel_sizes=[7],
            stackwise_num_filters=[64, 128, 256, 512], stackwise_num_blocks=[3, 4, 6, 3],
            stackwise_num_strides=[1, 2, 2, 2], block_type="bottleneck_block",
            use_pre_activation=True, image_shape=shape)
    return keras_hub.models.MobileNetBackbone(**_HUB_MOBILENET_V3_LARGE, image_shape=shape)


def _load_preset(backbone, library, weights, shape):
    if is_preset_dir(weights):
        folder = Path(weights)
        if not (folder / "config.json").is_file():
            raise CelebsegError(
                f"weights={weights!r} is neither 'imagenet' nor a preset folder (no "
                f"config.json in it): pass weights=None, 'imagenet', or a folder written by "
                f"`backbone.save_to_preset(folder)`")
        preset = str(folder)
    else:
        preset = IMAGENET_PRESETS[(library, backbone)]
    try:
        if library == "keras_cv":
            keras_cv = import_keras_cv()
            # The base class knows no preset names; the concrete class maps them to handles.
            cls = (keras_cv.models.Backbone if is_preset_dir(weights) else
                   {"resnet50_v2": keras_cv.models.ResNetV2Backbone,
                    "mobilenet_v3_large": keras_cv.models.MobileNetV3Backbone}[backbone])
            return cls.from_preset(preset, input_shape=shape)
        import keras_hub

        return keras_hub.models.Backbone.from_preset(preset, image_shape=shape)
    except Exception as exc:  # noqa: BLE001 - offline hub errors come in many types
        if is_preset_dir(weights):
            raise CelebsegError(f"cannot load the backbone preset folder {weights}: {exc}. "
                                f"Write it with `backbone.save_to_preset(folder)` using "
                                f"library={library!r}") from exc
        raise CelebsegError(
            f"cannot fetch the pretrained {library} preset {preset!r} ({type(exc).__name__}: "
            f"{str(exc)[:160]}). Without network: on a machine with it run `from "
            f"celebseg_utils.models.backbones import build_backbone, save_backbone_preset; "
            f"save_backbone_preset(build_backbone({backbone!r}, {library!r}, "
            f"weights='imagenet'), 'DIR')`, copy DIR here and pass weights='DIR' "
            f"(or weights=None for random init)") from exc


def save_backbone_preset(backbone, folder) -> Path:
    """Write ``backbone`` (config + weights) as a preset folder that ``weights=folder`` loads.

    keras-hub backbones have ``save_to_preset``; keras-cv 0.9 backbones do not expose one,
    so this calls keras-cv's own preset writer (the format its ``from_preset`` reads).

    >>> import tempfile
    >>> bb = build_backbone("mobilenet_v3_large", image_size=64)
    >>> (save_backbone_preset(bb, tempfile.mkdtemp()) / "config.json").is_file()
    True
    """
    folder = Path(folder)
    if hasattr(backbone, "save_to_preset"):
        backbone.save_to_preset(str(folder))
    else:
        import_keras_cv()
        from keras_cv.src.utils.preset_utils import save_to_preset

        save_to_preset(backbone, str(folder))
    return folder
