"""The clinicalBERT recipe, end to end: notes -> sections/sentences -> TFRecords ->
pretraining -> Hugging Face export -> comparison. `run_pretraining.sh` calls
`python -m recipe`; each step runs one of the project's stage CLIs as a subprocess, so
every step can also be run alone with the command it prints.
"""
