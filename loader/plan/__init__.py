"""Plans: every random number of the augmentation chain and the resulting boxes, drawn once on the CPU."""

from .geometry import (affine_matrix, box_candidates, clip_boxes, letterbox_params, mosaic_layout,
                       rect_batch_shapes, transform_boxes, xywh2xyxy, xyxy2xywh)
from .hyp import Hyp, UnsupportedHyp
from .planner import Plan, Planner, Tile, load_size

__all__ = ["Hyp", "UnsupportedHyp", "Plan", "Planner", "Tile", "load_size", "affine_matrix", "box_candidates",
           "clip_boxes", "letterbox_params", "mosaic_layout", "rect_batch_shapes", "transform_boxes", "xywh2xyxy",
           "xyxy2xywh"]
