"""One typed config tree per experiment (`<experiment>.py`: the tree, its presets as functions, and how the
experiment's flags fill it), and the parts they share (`common.py`)."""
