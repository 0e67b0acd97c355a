import os

# The real clients read these at import: keep ultralytics offline, quiet and out of the user's config.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "False")

pytest_plugins = ["tests.fixtures.database", "tests.fixtures.app", "tests.fixtures.storage", "tests.fixtures.detector"]
