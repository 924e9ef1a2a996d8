"""Kernels: plans executed on pixels, side by side and independent of each other.

* ``opencv``: one plan at a time into a host buffer (the CPU engine; the reference), its colour step in
  ``hsv`` (Ultralytics' ``RandomHSV`` bytes; ``hsv.c``, compiled, does it in one pass);
* ``warp``: the mosaic warp read from the tiles in place, for matrices without rotation or shear (Ultralytics'
  default augmentation): ``cv2.warpAffine``'s bytes of the composed canvas without composing it (``warp.c``,
  compiled), called by ``opencv.BatchGeometry``;
* ``resize``: the load-time INTER_LINEAR resize every decoded image takes (``cv2.resize``'s bytes; ``resize.c``,
  compiled, ~1.3x faster), called by ``loader.images.decode``;
* ``jpeg``: JPEG decode with ``cv2.imdecode``'s bytes through libjpeg-turbo into the output rows (``jpeg.c``,
  compiled, ~20% faster), called by ``loader.images.decode``; what it does not decode as OpenCV does goes to
  ``cv2.imdecode``, counted;
* ``torch_paint``: the same plans with tensor ops on any device (the DALI engine's colour step and its
  perspective plans on a GPU);
* ``dali_decode`` / ``dali_paint``: batched JPEG decode + resize, and one DALI graph that paints a batch
  of affine plans (GPU, or DALI's CPU-only mode).

The canvas geometry they share is ``loader.plan.layout``. Nothing here draws a random number or
computes a box. Modules are imported by the engine that uses them (torch and DALI only when needed).
"""
