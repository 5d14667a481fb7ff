"""Step ``blend``: ``poisson``, Poisson blending of the latent methods' results."""
