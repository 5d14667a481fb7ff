"""One readable file per paper (see ../shared/STYLE.md); filled by the models issue."""
