"""The one compiled part: loader/kernels/hsv.c (Ultralytics' HSV jitter in one pass, see its header).

Optional: where it does not build, the install goes on and the CPU engine uses OpenCV's three passes for HSV
(loader/kernels/hsv.py warns once and reports ``hsv_kernel`` in the engine's stats).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension(
    "loader.kernels._hsv", ["loader/kernels/hsv.c"], optional=True,
    # no -ffast-math and no contraction: the float steps must round exactly as OpenCV's do
    extra_compile_args=["-O3", "-fno-math-errno", "-ffp-contract=off"], libraries=["m"])])
