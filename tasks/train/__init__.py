"""Step ``train``: ``engine``, the training loop every paper's recipe runs in (checkpoints,
resume, logging, the code fingerprint)."""
