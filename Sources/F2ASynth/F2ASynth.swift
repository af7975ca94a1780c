// Synthetic flash/ambient pair renderer (issue 5): being written.
