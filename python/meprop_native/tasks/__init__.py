"""The paper's experiments, each a function from parsed options to a summary."""
