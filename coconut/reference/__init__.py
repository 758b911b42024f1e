"""Independent PyTorch references the C core is checked against (tests/) and timed
against (benchmarks/): `hf_gpt2` holds a model's weights in a `transformers`
GPT2LMHeadModel, `torch_coconut` re-enacts the reference Coconut algorithm on it.

Needs the test or bench extra (`torch`, `transformers`); `import coconut` never imports
this package.
"""
