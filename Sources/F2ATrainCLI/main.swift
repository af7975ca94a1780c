// f2a-train (issue 4): being written.
import Glibc
print("f2a-train: not built yet")
exit(1)
