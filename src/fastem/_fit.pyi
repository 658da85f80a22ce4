"""The M-step and EM iterations in nogil C; cimport only (_fit.pxd), nothing for Python."""
