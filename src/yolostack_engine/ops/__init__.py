"""Pure NumPy/OpenCV pre- and post-processing, matching ultralytics' own functions."""
