"""The model layer: backbones, DeepLabV3+ (``deeplab.build_model``), losses and metrics.

May import the ground floor, ``visualization`` and ``data``.
"""
