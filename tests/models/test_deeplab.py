"""DeepLabV3+ factory: both libraries x both backbones, logits contract, mixed precision,
preprocessing inside, .keras round trip, preset folders, offline errors."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest

from celebseg_utils.models import backbones, deeplab as models
from celebseg_utils.errors import CelebsegError

# keras-cv's get_weights() trips a NumPy 2 deprecation inside Keras; not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

COMBOS = [(lib, bb) for lib in ("keras_cv", "keras_hub")
          for bb in ("resnet50_v2", "mobilenet_v3_large")]
IMAGES = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)


def find_layer(model, name):
    """A layer by name anywhere in the model (keras-cv nests the head in a Sequential)."""
    for layer in model._flatten_layers(include_self=False):
        if layer.name == name:
            return layer
    raise AssertionError(f"no layer {name} in {model.name}")


@pytest.fixture(scope="module")
def built():
    """The four float32 models at 64x64, built once for the module."""
    return {combo: models.build_model(backbone=combo[1], library=combo[0], image_size=64)
            for combo in COMBOS}


@pytest.fixture(scope="module")
def built_mixed():
    """The four models built under mixed_float16 (the global policy is restored after)."""
    keras.config.set_dtype_policy("mixed_float16")
    try:
        return {combo: models.build_model(backbone=combo[1], library=combo[0], image_size=64)
                for combo in COMBOS}
    finally:
        keras.config.set_dtype_policy("float32")


def check_logits(model):
    out = model(IMAGES, training=False)
    assert tuple(out.shape) == (2, 64, 64, 19)
    assert out.dtype == "float32"
    out = np.asarray(out)
    assert np.isfinite(out).all()
    # Logits, not probabilities: negative values and sums far from 1 over the classes.
    assert out.min() < 0
    assert np.abs(out.sum(-1) - 1).mean() > 0.1
    logits = find_layer(model, "logits")
    assert logits.activation is keras.activations.linear
    assert logits.dtype_policy.compute_dtype == "float32"


@pytest.mark.slow
@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: "-".join(c))
def test_float32_models_return_full_resolution_logits(built, combo):
    check_logits(built[combo])


@pytest.mark.slow
@pytest.mark.parametrize("combo", COMBOS, ids=lambda c: "-".join(c))
def test_mixed_float16_models_still_return_float32_logits(built_mixed, combo):
    model = built_mixed[combo]
    assert keras.config.dtype_policy().name == "float32"  # the fixture restored it
    check_logits(model)
    # ... while the body really runs in float16.
    convs = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.Conv2D)]
    assert convs[0].dtype_policy.compute_dtype == "float16"


@pytest.mark.slow
def test_backbone_preprocessing_is_inside_the_model(built):
    cv = built[("keras_cv", "mobilenet_v3_large")]
    rescale = [l for l in cv._flatten_layers() if isinstance(l, keras.layers.Rescaling)][0]
    assert rescale.scale == pytest.approx(1 / 255.0)
    hub = built[("keras_hub", "mobilenet_v3_large")]
    converter = hub.get_layer("image_converter")
    out = np.asarray(converter(np.full((1, 2, 2, 3), 255.0, np.float32)))[0, 0, 0]
    expected = [(1 - m) / s for m, s in zip(backbones.IMAGENET_MEAN, backbones.IMAGENET_STD)]
    assert out == pytest.approx(expected, rel=1e-5)


def test_parameter_counts_match_the_published_backbones():
    # keras-cv ResNet50V2 and keras-hub MobileNetV3-Large: the presets' own "params".
    assert backbones.build_backbone("resnet50_v2", "keras_cv", 64).count_params() == 23_564_800
    encoder = backbones.build_backbone("mobilenet_v3_large", "keras_hub", 64)
    assert encoder.backbone.count_params() == 2_996_352
    # DeepLab reads P2 and P5 only, so the encoder leaves out the backbone's 960-channel
    # head (1x1 conv 160->960, then batch norm). The wrapper's own count_params differs by
    # Keras version (3.13 counts the graph it uses, 3.15 every tracked weight): count the
    # graph itself, which is what trains.
    used = keras.Model(encoder.inputs, encoder.outputs).count_params()
    assert used == 2_996_352 - (160 * 960 + 4 * 960)


@pytest.mark.slow
@pytest.mark.parametrize("combo", [("keras_cv", "mobilenet_v3_large"),
                                   ("keras_hub", "mobilenet_v3_large"),
                                   ("keras_hub", "resnet50_v2")], ids=lambda c: "-".join(c))
def test_saves_to_keras_file_and_reloads_with_identical_outputs(built, combo, tmp_path):
    model = built[combo]
    path = tmp_path / "model.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_array_equal(np.asarray(again(IMAGES)), np.asarray(model(IMAGES)))
    # load_trained_model imports keras-cv (quietly) only for the models that need it.
    assert backbones.uses_keras_cv(path) == (combo[0] == "keras_cv")


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Gradients do not exist:UserWarning")
def test_trains_mixed_with_our_loss_and_metric_and_reloads_compiled(built_mixed, tmp_path):
    # mixed_float16 is the riskier path (loss scaling, float16 body); float32 training is
    # covered by the tiny models of test_losses and test_metrics.
    from celebseg_utils.models import losses, metrics

    policy = "mixed_float16"
    model = built_mixed[("keras_cv", "mobilenet_v3_large")]
    model.compile(optimizer="adam", loss=losses.get_loss("ce_dice"),
                  metrics=[metrics.MeanIoU()])
    labels = np.random.default_rng(2).integers(0, 19, (2, 64, 64, 1))
    history = model.fit(IMAGES, labels, epochs=1, batch_size=2, verbose=0).history
    assert np.isfinite(history["loss"]).all() and 0 <= history["miou"][-1] <= 1
    model.save(tmp_path / "m.keras")
    # Reloaded under the policy it was trained with, the optimizer state comes back too
    # (a mixed model loaded under float32 gets a plain optimizer and drops its state).
    keras.config.set_dtype_policy(policy)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            again = keras.saving.load_model(tmp_path / "m.keras")
    finally:
        keras.config.set_dtype_policy("float32")
    assert not [w for w in caught if "Skipping variable loading" in str(w.message)]
    assert isinstance(again.loss, losses.CEDiceLoss)
    np.testing.assert_array_equal(np.asarray(again(IMAGES)), np.asarray(model(IMAGES)))


def tiny_cv_backbone():
    import keras_cv

    return keras_cv.models.ResNetV2Backbone(
        stackwise_filters=[8, 8, 8, 8], stackwise_blocks=[2, 2, 2, 2],
        stackwise_strides=[1, 2, 2, 2], include_rescaling=True)


def tiny_hub_backbone():
    import keras_hub

    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[8], input_conv_kernel_sizes=[7], stackwise_num_filters=[64, 8, 8, 8],
        stackwise_num_blocks=[1, 1, 1, 1], stackwise_num_strides=[1, 2, 2, 2],
        block_type="bottleneck_block", use_pre_activation=True)


@pytest.mark.parametrize("library,make", [("keras_cv", tiny_cv_backbone),
                                          ("keras_hub", tiny_hub_backbone)])
def test_local_preset_folder_loads_offline_with_its_weights(library, make, tmp_path):
    keras.utils.set_random_seed(1)
    tiny = make()
    folder = backbones.save_backbone_preset(tiny, tmp_path / "preset")
    model = models.build_model(image_size=64, library=library, weights=str(folder))
    if library == "keras_cv":
        encoder = model.backbone
    else:
        encoder = next(l for l in model.layers if hasattr(l, "image_encoder")).image_encoder
    saved, loaded = tiny.get_weights(), encoder.get_weights()
    assert len(saved) == len(loaded) > 10
    for a, b in zip(saved, loaded):
        np.testing.assert_array_equal(a, b)
    assert model(IMAGES).shape == (2, 64, 64, 19)


def test_keras_hub_model_uses_the_preset_image_converter(tmp_path):
    import keras_hub

    tiny_hub_backbone().save_to_preset(str(tmp_path))
    keras_hub.layers.ResNetImageConverter(scale=0.5, offset=-3.0).save_to_preset(str(tmp_path))
    model = models.build_model(image_size=64, library="keras_hub", weights=str(tmp_path))
    converter = model.get_layer("image_converter")
    out = np.asarray(converter(np.full((1, 2, 2, 3), 10.0, np.float32)))
    np.testing.assert_allclose(out, 2.0)  # 10 * 0.5 - 3


@pytest.mark.parametrize("library,target", [
    ("keras_cv", "keras_cv.models.ResNetV2Backbone"),
    ("keras_hub", "keras_hub.models.Backbone"),
])
def test_imagenet_without_network_fails_at_once_saying_how_to_use_a_folder(
        library, target, monkeypatch):
    def offline(*args, **kwargs):
        raise ConnectionError("Max retries exceeded (NameResolutionError)")

    module, cls = target.rsplit(".", 1)
    monkeypatch.setattr(getattr(__import__(module.split(".")[0]).models, cls), "from_preset",
                        classmethod(lambda cls_, *a, **k: offline()))
    with pytest.raises(CelebsegError, match="weights='DIR'.*save_backbone_preset|"
                                            "save_backbone_preset.*weights='DIR'"):
        models.build_model(image_size=64, library=library, weights="imagenet")


def test_bad_arguments_raise_celebseg_errors(tmp_path):
    with pytest.raises(CelebsegError, match="unknown backbone 'resnet51'"):
        models.build_model(backbone="resnet51")
    with pytest.raises(CelebsegError, match="unknown library"):
        models.build_model(library="torchvision")
    with pytest.raises(CelebsegError, match="multiple of 32"):
        models.build_model(image_size=100)
    with pytest.raises(CelebsegError, match="no config.json"):
        models.build_model(image_size=64, weights=str(tmp_path))
