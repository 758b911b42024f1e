"""Data: the official formats, their raw sources, and the ProsQA/ProntoQA generators."""
from coconut.data.example import Example
from coconut.data.generated import GENERATORS, generate
from coconut.data.loaders import (
    example_from_dict,
    example_to_dict,
    load_examples,
    load_gsm8k_raw,
    load_prontoqa_raw,
    prontoqa_from_raw,
    save_examples,
)
from coconut.data.name_pools import prosqa_name_pools
from coconut.data.official_splits import official, official_names, official_path
from coconut.data.prontoqa_generator import generate_prontoqa
from coconut.data.prosqa_generator import ProsQASettings, generate_prosqa
from coconut.data.stats import compare_prosqa, print_prosqa_comparison, prosqa_stats

__all__ = [
    "Example",
    "GENERATORS",
    "ProsQASettings",
    "compare_prosqa",
    "example_from_dict",
    "example_to_dict",
    "generate",
    "generate_prontoqa",
    "generate_prosqa",
    "load_examples",
    "load_gsm8k_raw",
    "load_prontoqa_raw",
    "official",
    "official_names",
    "official_path",
    "print_prosqa_comparison",
    "prontoqa_from_raw",
    "prosqa_name_pools",
    "prosqa_stats",
    "save_examples",
]
