"""The default settings shipped with realtime-mer, installed as ``realtime_mer.configs``:
``pipeline.yaml`` (every stage of the live path) and ``train/*.yaml`` (mer-train's defaults per
model family). Copy one, edit it, and pass it with ``--config``."""
