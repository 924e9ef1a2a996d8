"""The compiled parts (see their headers): loader/kernels/hsv.c (Ultralytics' HSV jitter in one pass),
loader/kernels/resize.c (the load-time INTER_LINEAR resize) and loader/kernels/warp.c (the mosaic warp read from
the tiles in place), each bitwise with OpenCV; loader/kernels/jpeg.c (JPEG decode through the system's
libjpeg-turbo into the caller's array: cv2.imdecode's bytes, checked at first use).

Optional: where one does not build (no C compiler; for jpeg.c, no libjpeg-turbo headers: libjpeg-turbo8-dev or
libjpeg62-turbo-dev), the install goes on and the CPU engine uses OpenCV for that step (loader/kernels/hsv.py,
resize.py, warp.py and jpeg.py warn once and report ``hsv_kernel`` / ``resize_kernel`` / ``warp_kernel`` /
``jpeg_decoder`` in the engine's stats).
"""

from setuptools import Extension, setup

# no -ffast-math and no contraction: the float steps must round exactly as OpenCV's do
_FLAGS = ["-O3", "-fno-math-errno", "-ffp-contract=off"]
_LIBS = {"hsv": ["m"], "resize": ["m"], "warp": ["m"], "jpeg": ["jpeg"]}

setup(ext_modules=[Extension(f"loader.kernels._{name}", [f"loader/kernels/{name}.c"], optional=True,
                             depends=["loader/kernels/cpu.h"], extra_compile_args=_FLAGS, libraries=libs)
                   for name, libs in _LIBS.items()])
