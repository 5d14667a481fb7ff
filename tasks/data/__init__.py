"""Step ``data``: a dataset from its source to a prepared folder.

Read in this order: ``datasets`` (the registry: where each dataset comes from, its crops and
split rules), ``sources`` (a source resolved to local files: download, then extraction, in one
pass), ``download`` (resumable checksummed HTTP and safe archive extraction), ``prepare``
(decode, crop, resize, manifest), ``synthetic_faces`` (the offline CelebA stand-in).
"""
