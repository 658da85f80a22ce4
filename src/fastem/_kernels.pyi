"""Fused nogil kernels: one pass over X per EM (or Lloyd) iteration."""
import enum

import numpy as np
from numpy.typing import ArrayLike, NDArray

class Assign(enum.IntEnum):
    ASSIGN_FULL = 0
    ASSIGN_TIED = 1
    ASSIGN_DIAG = 2
    ASSIGN_NEAREST = 3
    ASSIGN_GIVEN = 4

class Stats(enum.IntEnum):
    STATS_NONE = 0
    STATS_FULL = 1
    STATS_TIED = 2
    STATS_DIAG = 3

def simd_level() -> str: ...
