"""Nogil kernels of fastem's Gaussian passes; cimport only (_rows.pxd), nothing for Python."""
