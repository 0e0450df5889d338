"""Model files written by other code, read without running it and turned into partcli checkpoints.

``import_checkpoint.import_adv_part_model`` is the API of ``partcli import adv-part-model``.
"""
