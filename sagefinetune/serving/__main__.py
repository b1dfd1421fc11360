"""``python -m sagefinetune.serving MODEL_DIR [--port 8080]``: serve a model folder (see server.py)."""

from sagefinetune.serving.server import main

main()
