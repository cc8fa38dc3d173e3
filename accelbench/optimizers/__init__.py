"""Model -> artifact transforms (issue 3): post-training quantization, QAT, pruning, clustering."""
