"""fastem's C-level API module; its functions are reachable from Cython (kernels.pxd)
and C (fastem.h), not from Python."""
from typing import Final

API_VERSION: Final[int]
API_MINOR: Final[int]
COVARIANCE_TYPES: Final[dict[str, int]]
STATUS_CODES: Final[dict[str, int]]
_C_API: object
