"""Tokenizers and tokenizations: GPT-2 byte-level BPE with the reference's text pieces,
and the symbolic ones (one token per graph node, word or fact) for from-scratch CPU runs."""
from .bpe import GPT2Tokenizer
from .prontoqa import ProntoQAFactSentences, ProntoQASymbolic
from .prosqa import ProsQAEdgeTokens, ProsQASymbolic
from .text import TextTokenization

__all__ = ["GPT2Tokenizer", "TextTokenization", "ProsQASymbolic", "ProsQAEdgeTokens", "ProntoQASymbolic",
           "ProntoQAFactSentences"]
