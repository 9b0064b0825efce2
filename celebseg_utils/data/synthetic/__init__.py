"""Synthetic faces in the CelebAMask-HQ layout: ``generator`` writes them, ``draw`` designs a
face, ``paint`` colours it. Part of the data layer, with its import rule: the ground floor,
``visualization`` and ``data``.
"""
