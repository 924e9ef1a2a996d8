# Training as the README shows it, in a plain script (no __main__ guard):
#   python plain_trainer.py DATA.yaml IMGSZ BATCH CACHE PROJECT
import sys

from ultralytics import YOLO

from integration.ultralytics import FastDetectionTrainer

data, imgsz, batch, cache, project = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
print("top-level code ran", flush=True)
model = YOLO("yolo11n.yaml")
model.train(data=data, trainer=FastDetectionTrainer, epochs=1, imgsz=imgsz, batch=batch, workers=2, device="cpu",
            cache=False if cache == "none" else cache, plots=False, amp=False, project=project, name="scale",
            exist_ok=True, verbose=False)
m = model.trainer.metrics
print("trained", m.get("metrics/mAP50(B)"), flush=True)
