"""Plans: every random number of the augmentation chain and the resulting boxes, drawn once on the CPU;
the canvas geometry every painter shares (``layout``)."""

from .batch import PlanBatch
from .geometry import (affine_matrix, box_candidates, clip_boxes, letterbox_batch, letterbox_params, mosaic_layout,
                       rect_batch_shapes, transform_boxes, xywh2xyxy, xyxy2xywh)
from .hyp import Hyp, UnsupportedHyp
from .layout import FILL, paste_regions, translate, visible_window, visible_windows, window_pastes
from .plan import Plan, Tile
from .planner import Planner, load_size

__all__ = ["Hyp", "UnsupportedHyp", "Plan", "PlanBatch", "Planner", "Tile", "letterbox_batch", "load_size", "affine_matrix", "box_candidates",
           "clip_boxes", "letterbox_params", "mosaic_layout", "rect_batch_shapes", "transform_boxes", "xywh2xyxy",
           "xyxy2xywh", "FILL", "translate", "visible_window", "visible_windows", "window_pastes",
           "paste_regions"]
