"""The symbolic tokenizations (one token per node, word or fact, for from-scratch CPU
runs) by the name a run config gives them (`tokenization:`)."""
from .prontoqa import ProntoQAFactSentences, ProntoQASymbolic
from .prosqa import ProsQAEdgeTokens, ProsQASymbolic

PROSQA_TOKENIZATIONS = {cls.kind: cls for cls in (ProsQASymbolic, ProsQAEdgeTokens)}
PRONTOQA_TOKENIZATIONS = {cls.kind: cls for cls in (ProntoQASymbolic, ProntoQAFactSentences)}
