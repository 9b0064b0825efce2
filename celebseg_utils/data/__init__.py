"""The data layer: raw layout, download and archives, PNG decoding, mask fusion, splits,
prepare, stats, TFRecord shards, augmentation, the tf.data pipeline and the synthetic faces.

May import the ground floor and ``visualization``.
"""
