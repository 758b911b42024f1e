"""`python -m coconut.data OFFICIAL_PROSQA.json [N] [SEED]`: generated vs official ProsQA statistics."""
import sys

from coconut.data.stats import print_prosqa_comparison

if len(sys.argv) < 2:
    sys.exit("usage: python -m coconut.data OFFICIAL_PROSQA.json [N] [SEED]")
print_prosqa_comparison(sys.argv[1], *(int(a) for a in sys.argv[2:4]))
