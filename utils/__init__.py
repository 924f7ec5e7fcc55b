"""Small helpers shared by every stage: atomic outputs and progress lines."""
