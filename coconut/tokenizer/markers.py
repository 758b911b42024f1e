"""The marker strings: GPT-2's end of text and the tokens Coconut adds. Every
tokenization decodes to these same strings, so the scoring and the analyses read text
from any of them unchanged."""

EOS_TEXT = "<|endoftext|>"
BOT_TEXT = "<|start-latent|>"     # <bot>: latent mode begins
EOT_TEXT = "<|end-latent|>"       # <eot>: latent mode ends
LATENT_TEXT = "<|latent|>"        # a thought slot
PAUSE_TEXT = "<pause>"            # the pause-token baseline's filler
SPECIAL_TEXTS = (EOS_TEXT, BOT_TEXT, EOT_TEXT, LATENT_TEXT, PAUSE_TEXT)
