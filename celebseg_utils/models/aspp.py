"""Atrous spatial pyramid pooling (ASPP) that XLA can compile, with atrous separable branches.

keras-cv's ``SpatialPyramidPooling`` declares ``supports_jit = False`` under TensorFlow (its
image-pooling branch builds a ``Resizing`` layer inside ``call``), and Keras then silently
turns XLA off for the whole model. This layer computes the same five branches:

- a 1x1 convolution;
- three 3x3 convolutions with dilation rates ``rates``;
- image pooling: the global average, a 1x1 convolution, spread back over the map. A 1x1 map
  resized bilinearly to HxW is that value everywhere, so it is broadcast, not resized: the
  same numbers with nothing XLA cannot compile;

each with BatchNorm and ReLU, concatenated and projected to ``channels`` by a 1x1
convolution. ``separable=True`` makes each 3x3 branch the *atrous separable convolution* of
DeepLabV3+ (Chen et al. 2018, section 3.2): a dilated 3x3 depthwise convolution, BatchNorm,
ReLU, then a 1x1 pointwise convolution, BatchNorm, ReLU. On a 960-channel map with 256
output channels it has 9 x 960 + 960 x 256 multiply-adds a pixel against 9 x 960 x 256: 8.7x
fewer.

>>> import numpy as np
>>> aspp = AtrousSpatialPyramidPooling(rates=(1, 2, 3), channels=32, separable=True)
>>> aspp(np.zeros((2, 4, 4, 16), "float32")).shape
TensorShape([2, 4, 4, 32])
"""

from __future__ import annotations

import keras

#: ``model.aspp`` choices: keras-cv's layer, or this module's with plain or separable branches.
ASPP_KINDS = ("keras_cv", "standard", "separable")


def _conv_bn_relu(filters, kernel, name, dilation=1):
    return [keras.layers.Conv2D(filters, kernel, padding="same", dilation_rate=dilation,
                                use_bias=False, name=f"{name}_conv"),
            keras.layers.BatchNormalization(name=f"{name}_bn"),
            keras.layers.ReLU(name=f"{name}_relu")]


@keras.saving.register_keras_serializable(package="celebseg")
class AtrousSpatialPyramidPooling(keras.layers.Layer):
    """DeepLab's ASPP on a (B, H, W, C) feature map -> (B, H, W, ``channels``); see the module doc."""

    def __init__(self, rates=(6, 12, 18), channels: int = 256, separable: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.rates = [int(r) for r in rates]
        self.channels = int(channels)
        self.separable = bool(separable)

    def build(self, input_shape):
        c = self.channels
        self.branches = [keras.Sequential(_conv_bn_relu(c, 1, "aspp_1x1"), name="aspp_1x1")]
        for rate in self.rates:
            name = f"aspp_rate{rate}"
            if self.separable:
                layers = [keras.layers.DepthwiseConv2D(3, padding="same", dilation_rate=rate,
                                                       use_bias=False, name=f"{name}_depthwise"),
                          keras.layers.BatchNormalization(name=f"{name}_depthwise_bn"),
                          keras.layers.ReLU(name=f"{name}_depthwise_relu"),
                          *_conv_bn_relu(c, 1, f"{name}_pointwise")]
            else:
                layers = _conv_bn_relu(c, 3, name, dilation=rate)
            self.branches.append(keras.Sequential(layers, name=name))
        for branch in self.branches:
            branch.build(input_shape)
        self.pool_projection = keras.Sequential(_conv_bn_relu(c, 1, "aspp_pool"), name="aspp_pool")
        self.pool_projection.build((input_shape[0], 1, 1, input_shape[-1]))
        self.projection = keras.Sequential(_conv_bn_relu(c, 1, "aspp_projection"),
                                           name="aspp_projection")
        self.projection.build(tuple(input_shape[:-1]) + ((len(self.rates) + 2) * c,))
        self.built = True

    def call(self, inputs, training=None):
        ops = keras.ops
        outputs = [branch(inputs, training=training) for branch in self.branches]
        pooled = ops.mean(inputs, axis=(1, 2), keepdims=True)
        pooled = self.pool_projection(pooled, training=training)
        shape = ops.shape(outputs[0])
        outputs.append(ops.broadcast_to(pooled, (shape[0], shape[1], shape[2], self.channels)))
        return self.projection(ops.concatenate(outputs, axis=-1), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.channels,)

    def get_config(self):
        return {**super().get_config(), "rates": self.rates, "channels": self.channels,
                "separable": self.separable}
