"""The compiled parts, each bitwise with OpenCV (see their headers): loader/kernels/hsv.c (Ultralytics' HSV jitter
in one pass) and loader/kernels/resize.c (the load-time INTER_LINEAR resize).

Optional: where they do not build, the install goes on and the CPU engine uses OpenCV for those steps
(loader/kernels/hsv.py and resize.py warn once and report ``hsv_kernel`` / ``resize_kernel`` in the engine's stats).
"""

from setuptools import Extension, setup

# no -ffast-math and no contraction: the float steps must round exactly as OpenCV's do
_FLAGS = ["-O3", "-fno-math-errno", "-ffp-contract=off"]

setup(ext_modules=[Extension(f"loader.kernels._{name}", [f"loader/kernels/{name}.c"], optional=True,
                             extra_compile_args=_FLAGS, libraries=["m"]) for name in ("hsv", "resize")])
