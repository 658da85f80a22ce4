"""Nogil kernels of fastem's Gaussian passes; cimport only (_columns.pxd), nothing for Python."""
