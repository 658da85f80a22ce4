"""The parallel loops of a pass; nogil C only (cimport fastem._pass), nothing for Python."""
