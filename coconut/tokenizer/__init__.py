"""Tokenizers and tokenizations: GPT-2 byte-level BPE with the reference's text pieces,
and the symbolic ones (one token per graph node or word) for from-scratch CPU runs."""
from .bpe import GPT2Tokenizer
from .symbolic import (ProntoQAFactSentences, ProntoQAFactSteps, ProntoQAFactTokens, ProntoQASymbolic, ProsQAEdgeTokens,
                       ProsQASymbolic)
from .text import TextTokenization

__all__ = ["GPT2Tokenizer", "TextTokenization", "ProsQASymbolic", "ProsQAEdgeTokens", "ProntoQASymbolic",
           "ProntoQAFactTokens", "ProntoQAFactSteps", "ProntoQAFactSentences"]
