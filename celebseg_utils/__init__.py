"""celebseg_utils: face parsing on CelebAMask-HQ with DeepLabV3+ in Keras."""
__version__ = "0.1.0"
