"""Build script: only the extension list, compiler flags and the OpenMP probe.

All metadata lives in pyproject.toml.

Environment switches (read at build time):

FASTEM_DISABLE_OPENMP=1
    Build the kernels serial on purpose.  The package then reports
    ``fastem.openmp_disabled_by_build() == True`` and the OpenMP test accepts it.
FASTEM_DEBUG_CHECKS=1
    Compile with Cython bounds/wraparound checks on, to hunt a crash.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import warnings

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools._distutils.ccompiler import new_compiler
from setuptools._distutils.sysconfig import customize_compiler

OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return n > 0 ? 0 : 1;
    }
    """
)


def _env_flag(name):
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _openmp_flags():
    """Return (compile_args, link_args) that enable OpenMP, or None if the compiler lacks it."""
    compiler = new_compiler()
    customize_compiler(compiler)
    candidates = [(["-fopenmp"], ["-fopenmp"]), (["/openmp"], [])]
    tmp = tempfile.mkdtemp(prefix="fastem-omp-probe-")
    try:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w") as fh:
            fh.write(OPENMP_PROBE)
        for cflags, ldflags in candidates:
            try:
                objects = compiler.compile([source], output_dir=tmp, extra_postargs=cflags)
                compiler.link_executable(
                    objects, "probe", output_dir=tmp, extra_postargs=ldflags
                )
            except Exception:  # any compiler or linker failure means "not this flag"
                continue
            return cflags, ldflags
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return None


def _extensions():
    define_macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
    # -ffp-contract=off: never fuse a*b+c, so the AVX2 and baseline clones of the
    # SIMD loops (see _simd_math.h) round identically and results do not depend
    # on the CPU.  -fno-trapping-math lets selections vectorise (no result
    # changes).  No -march or -ffast-math: the wheel must run on any x86-64.
    compile_args = (
        ["-O3", "-ffp-contract=off", "-fno-trapping-math"] if sys.platform != "win32" else ["/O2"]
    )
    link_args = []
    if _env_flag("FASTEM_DISABLE_OPENMP"):
        define_macros.append(("FASTEM_OPENMP_DISABLED_BY_BUILD", "1"))
        print("fastem: FASTEM_DISABLE_OPENMP is set, building serial kernels")
    else:
        flags = _openmp_flags()
        if flags is None:
            warnings.warn(
                "fastem: the C compiler does not support OpenMP; building serial "
                "kernels. fastem.built_with_openmp() will return False and the "
                "test suite will flag it (set FASTEM_DISABLE_OPENMP=1 to opt out on purpose).",
                stacklevel=1,
            )
        else:
            compile_args += flags[0]
            link_args += flags[1]
    include_dirs = [numpy.get_include(), os.path.join("src", "fastem")]
    names = ["_openmp_info", "_pass", "_rows", "_columns", "_blocks", "_kernels", "_gmm", "_missing", "_fit", "_em", "_hmm", "kernels", "_testing"]
    return [
        Extension(
            f"fastem.{name}",
            [os.path.join("src", "fastem", f"{name}.pyx")],
            include_dirs=include_dirs,
            define_macros=define_macros,
            extra_compile_args=compile_args,
            extra_link_args=link_args,
        )
        for name in names
    ]


debug_checks = _env_flag("FASTEM_DEBUG_CHECKS")
compiler_directives = {
    "language_level": 3,
    "boundscheck": debug_checks,
    "wraparound": debug_checks,
    "initializedcheck": debug_checks,
    "cdivision": True,
    "embedsignature": True,
}

setup(ext_modules=cythonize(_extensions(), compiler_directives=compiler_directives))
