"""Step ``inpaint``: batch inpainting of a test split with a fixed mask set.

``batch`` (one experiment: feed-forward models, or the latent methods, plus baselines),
``latent`` (latent optimisation, papers 001 and 002), ``baselines`` (cv2 Telea / Navier-Stokes,
mean fill).
"""
