"""Nogil kernels of fastem's Gaussian passes; cimport only (_blocks.pxd), nothing for Python."""
