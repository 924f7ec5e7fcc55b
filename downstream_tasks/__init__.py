"""Downstream evaluation of exported BERT models: MedNLI and the i2b2 NER tasks.

The name is the original clinicalBERT repository's folder. Modules, one job each:
`data` (readers/writers of the task files), `i2b2` (raw i2b2 releases -> CoNLL),
`synthetic` (tiny raw files in every format, for tests and the demo), `windows`
(sub-token encoding and overlapping windows), `scorer` (exact-span micro F1, seqeval's
default mode), `tasks` (model inputs and metrics of MedNLI and NER), `training` (the
PyTorch fine-tuning loop), `run` (the evaluation CLI) and
`compare` (paired comparison of two evaluation runs).
"""
