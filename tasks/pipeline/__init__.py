"""The plumbing every step shares: ``caching`` (cache keys over file bytes and code),
``dvc`` (DVC commands under one repository lock), ``git``, ``stages`` (a paper's DVC stages,
planned from params.yaml and dvc.yaml), ``nightly`` (the nightly retraining's pure helpers).
"""
