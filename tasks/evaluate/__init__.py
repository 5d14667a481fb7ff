"""Step ``evaluate``: every result scored from disk.

``metrics`` (each metric defined once), ``scoring`` (images paired and scored, binned by hole
ratio), ``scores`` (an experiment's results and the metrics JSON), ``fid`` (Frechet Inception
distance, and fetching its weights).
"""
