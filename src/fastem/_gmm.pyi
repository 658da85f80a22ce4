"""Nogil passes over a Gaussian mixture model; cimport only (_gmm.pxd), nothing for Python."""
