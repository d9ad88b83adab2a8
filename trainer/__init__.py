"""``mer-train``: datasets, preprocessing cache, LOSO/LOVO protocols, losses, augmentation, training,
metrics and reports, architecture search (see :mod:`realtime_mer.train.cli` for the commands)."""
