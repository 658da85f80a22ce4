# Declarations of _em.pyx, the Python layer's door into the engine: the status
# enum Python sees, and the output-pointer guard the test hooks reach.  The nogil
# layers are in _gmm.pxd (model, passes) and _fit.pxd (M-step, EM runs).
#
# The public, versioned names for other extensions are in kernels.pxd; this
# file is fastem's own and may change between releases.

from libc.stdint cimport int64_t
from cython cimport floating


cpdef enum Status:
    STATUS_OK = 0
    STATUS_NO_MEMORY = -1      # scratch could not be allocated
    STATUS_BAD_ARGUMENT = -2   # a size, stride, pointer or covariance type is invalid
    STATUS_ILL_DEFINED = -3    # a covariance is not positive definite (see reg_covar)
    STATUS_NOT_FINITE = -4     # the log-likelihood is not finite (data too far from the model)


from fastem._gmm cimport GaussianModel


# A pointer into a float64 output array (NULL if empty); raises for an array it
# would have to copy.
cdef double* _out_pointer(array) except? NULL
