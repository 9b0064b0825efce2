"""Faces in photos: find them (``detect``, MTCNN) and take them into the CelebA-HQ frame and
back (``align``, numpy and Pillow only).

May import the ground floor only: the geometry knows nothing of models or training, so
``predict --align``, the figures and the viewer share it.
"""
