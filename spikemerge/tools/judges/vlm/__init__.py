"""The vision-language judge: per-figure reports, then a structured head decision.

``judge`` orchestrates, ``calls`` retries and classifies faults, ``messages`` builds prompts, ``images``
fits and encodes figures, ``cost`` counts tokens and money, ``model`` resolves the chat model.
"""
