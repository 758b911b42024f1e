"""ProsQA analyses of the paper (Hao et al. 2024, section 5), in pure Python/NumPy: the
graph helpers (re-exported from coconut.data.prosqa_graph), sentence parsing,
reasoning-path classes, the latent value probe and attention statistics of continuous
thoughts."""
from .attention_stats import attention_mass, attention_summary, span_masks
from coconut.data.prosqa_graph import (
    adjacency,
    distances,
    edge_list,
    edge_sentence,
    edge_set,
    frontier,
    frontier_edges,
    is_reachable,
    num_nodes,
    optimal_path_edges,
    optimal_path_nodes,
    parents,
    path_edges_of,
    reachable,
    shortest_distance,
    shortest_paths,
)
from .path_classes import (
    PATH_CLASSES,
    Classification,
    class_counts,
    class_fractions,
    classify,
    classify_detailed,
)
from .probe import (
    aggregate_depth_profiles,
    aggregate_value_summaries,
    depth_profile,
    frontier_value_summary,
    node_token_map,
    node_values,
    shared_first_tokens,
    softmax,
)
from .sentences import (
    ParsedOutput,
    lookup_symbol,
    parse_output,
    parse_sentence_names,
    question_edge_spans,
    sentence_edge,
    split_sentences,
    symbol_index,
)

__all__ = [
    "PATH_CLASSES", "Classification", "ParsedOutput",
    "adjacency", "aggregate_depth_profiles", "aggregate_value_summaries", "attention_mass",
    "attention_summary", "class_counts", "class_fractions", "classify", "classify_detailed", "depth_profile",
    "distances", "edge_list", "edge_sentence", "edge_set", "frontier",
    "frontier_edges", "frontier_value_summary", "is_reachable", "lookup_symbol",
    "node_token_map", "node_values", "num_nodes", "optimal_path_edges", "optimal_path_nodes",
    "parents", "parse_output", "parse_sentence_names", "path_edges_of", "question_edge_spans",
    "reachable", "sentence_edge", "shared_first_tokens", "shortest_distance", "shortest_paths",
    "softmax", "span_masks", "split_sentences", "symbol_index",
]
