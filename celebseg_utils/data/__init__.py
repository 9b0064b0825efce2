"""The data layer: raw and prepared layout (``layout``: the one reader of ``prepare.json``
and split files, local or ``gs://`` through ``storage``), download and archives, PNG
decoding, mask fusion, splits, prepare, class statistics (``stats``) and per-pixel weight
maps (``weight_maps``), TFRecord shards, augmentation, the tf.data pipeline and the
synthetic faces.

May import the ground floor and ``visualization``.
"""
