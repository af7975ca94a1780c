// f2a-train (issue 4): being written.
print("f2a-train: not built yet")
exit(1)
