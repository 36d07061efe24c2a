"""A stand-in benchmark module for `settle bench --module` (the real one is scripts.bench)."""
import sys

print("bench: 3 payments/s (fake)", flush=True)
print("args:", " ".join(sys.argv[1:]), flush=True)
sys.exit(3 if "--fail" in sys.argv else 0)
